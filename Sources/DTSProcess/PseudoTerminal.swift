import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// A pseudo-terminal: the master side this process reads and writes, the slave side a child gets
/// as its terminal.
///
/// A child started in a new session (``ProcessGroupChoice/newSession``) with the slave path opened
/// as standard input (`.open(slavePath, flags: O_RDWR)`, then `.sameAs(0)` for output and error)
/// has it as its controlling terminal: Ctrl-C written to the master reaches its foreground job.
public struct PseudoTerminal: Sendable {
    /// The master side, open read-write, close-on-exec; the caller closes it.
    public let master: Int32
    /// The slave device (`/dev/pts/N`).
    public let slavePath: String

    /// Opens a PTY; with `echo` off, the terminal does not echo what is written to it.
    public static func open(echo: Bool) throws(SystemCallError) -> PseudoTerminal {
        let master = dts_posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard master >= 0 else { throw SystemCallError(operation: "posix_openpt", code: errno) }
        guard dts_grantpt(master) == 0, dts_unlockpt(master) == 0 else {
            let code = errno
            close(master)
            throw SystemCallError(operation: "grantpt/unlockpt", code: code)
        }
        var name = [CChar](repeating: 0, count: 128)
        let rc = dts_ptsname_r(master, &name, name.count)
        guard rc == 0 else {
            close(master)
            throw SystemCallError(operation: "ptsname_r", code: rc)
        }
        if !echo {
            var attributes = termios()
            if tcgetattr(master, &attributes) == 0 {
                attributes.c_lflag &= ~tcflag_t(ECHO | ECHOE | ECHOK | ECHONL)
                _ = tcsetattr(master, TCSANOW, &attributes)
            }
        }
        let path = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return PseudoTerminal(master: master, slavePath: path)
    }
}
