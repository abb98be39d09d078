/// The API a test author uses to talk to any DUT: the host DUT (local or remote) and a VM DUT.
///
/// DTS users know these verbs as `send_expect`, `send_command`, `get_session_before`,
/// `session.copy_file_to`. Every transport (libssh2, a local shell) implements the same
/// protocols, so suite code reads the same whatever it talks to.

/// The outcome of one non-interactive command.
public struct ExecResult: Sendable, Equatable {
    /// The command's exit status (`128 + signal` if it was killed by a signal).
    public var status: Int32
    /// Raw standard output.
    public var stdout: [UInt8]
    /// Raw standard error.
    public var stderr: [UInt8]

    public init(status: Int32, stdout: [UInt8], stderr: [UInt8]) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }

    /// Standard output decoded as UTF-8 (invalid sequences replaced).
    public var output: String { String(decoding: stdout, as: UTF8.self) }
    /// Standard error decoded as UTF-8 (invalid sequences replaced).
    public var errorOutput: String { String(decoding: stderr, as: UTF8.self) }
    /// `true` when the command exited with status 0.
    public var succeeded: Bool { status == 0 }
}

/// What `sendExpect` waits for.
public enum Expectation: Sendable, Equatable, CustomStringConvertible {
    /// A literal string, matched anywhere in the output (DTS's prompt strings: `"# "`, `"testpmd> "`).
    case literal(String)
    /// A regular expression (ICU/Foundation syntax) matched against the output.
    case regex(String)

    public var description: String {
        switch self {
        case .literal(let s): return "\"\(s)\""
        case .regex(let r): return "/\(r)/"
        }
    }
}

extension Expectation: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .literal(value) }
}

/// A file copy's progress: bytes done out of the total.
public typealias CopyProgress = @Sendable (_ done: Int64, _ total: Int64) -> Void

/// An interactive shell on a DUT (a PTY), for DTS-style `send_expect` work.
public protocol InteractiveSession: AnyObject, Sendable {
    /// Sends `command` and a newline, waits until `expected` appears, and returns what arrived
    /// before it, without the echoed command. A timeout throws an error carrying the output so far.
    func sendExpect(_ command: String, _ expected: Expectation, timeout: Duration) async throws -> String
    /// Sends `command` and a newline and returns whatever arrives within `timeout`.
    func sendCommand(_ command: String, timeout: Duration) async throws -> String
    /// Returns what arrives within `timeout` without sending anything.
    func getSessionBefore(timeout: Duration) async throws -> String
    /// Sends Ctrl-C (ETX) to the foreground program.
    func sendControlC() async throws
    /// Closes the shell. Idempotent.
    func close() async
}

/// Where a session's commands run.
public enum SessionLocation: Sendable, Equatable {
    /// This machine, the one dts runs on.
    case local
    /// Over a connection to `host` (`dut_ip` for a remote host DUT; a VM's forwarded address,
    /// which may be this machine's loopback): the commands run wherever that leads.
    case remote(host: String)
}

/// An error that carries what a command or shell had printed when it was raised (a timeout, a
/// shell that exited), whatever the transport.
public protocol PartialOutputError: Error {
    /// The output so far (for a shell, normalized as ``ShellText`` says); `nil` when the error is
    /// not about output.
    var partialOutput: String? { get }
}

/// A connection to a DUT: commands, shells and file copy.
public protocol DUTSession: AnyObject, Sendable {
    /// A short human-readable name for logs and errors, e.g. `root@127.0.0.1:6022`.
    var endpoint: String { get }
    /// Where the commands run: this machine or another one.
    var location: SessionLocation { get }
    /// The sink this session records its commands and output to by itself, or `nil` if it does not
    /// log (wrap it in a ``LoggingSession`` to log it).
    var sessionLog: (any SessionLogSink)? { get }
    /// Runs `command` through the remote user's shell and returns its status and output.
    func exec(_ command: String, timeout: Duration) async throws -> ExecResult
    /// Opens a new interactive shell (its own channel). A DUT may have several.
    func openShell() async throws -> any InteractiveSession
    /// Copies a local file to the DUT, keeping `mode` (or the local file's mode if `nil`).
    func upload(localPath: String, remotePath: String, mode: Int32?, progress: CopyProgress?) async throws
    /// Copies a file from the DUT to a local path.
    func download(remotePath: String, localPath: String, progress: CopyProgress?) async throws
    /// Closes the connection and every shell opened on it. Idempotent.
    func close() async
}

extension DUTSession {
    /// Runs an argument vector: every argument is quoted for a POSIX shell, so values from
    /// configs never become shell syntax.
    public func exec(argv: [String], timeout: Duration) async throws -> ExecResult {
        try await exec(ShellQuoting.join(argv), timeout: timeout)
    }
}

/// POSIX shell quoting for argument vectors sent to a remote shell.
///
/// Works on Unicode scalars, never on `Character`s: a `'` followed by a combining mark is one
/// Swift `Character` that does not compare equal to `"'"`, yet the shell reads its bytes as a
/// quote followed by other bytes. Scanning by `Character` would let such a value end the quoting.
public enum ShellQuoting {
    /// Quotes one argument so that `sh` reads it back unchanged, byte for byte.
    public static func quote(_ argument: String) -> String {
        let scalars = argument.unicodeScalars
        if !scalars.isEmpty, scalars.allSatisfy({ safe.contains($0) }) { return argument }
        var quoted = String.UnicodeScalarView()
        quoted.append("'")
        for scalar in scalars {
            if scalar == "'" { quoted.append(contentsOf: "'\\''".unicodeScalars) } else { quoted.append(scalar) }
        }
        quoted.append("'")
        return String(quoted)
    }

    /// Quotes each argument and joins them with spaces.
    public static func join(_ argv: [String]) -> String {
        argv.map(quote).joined(separator: " ")
    }

    private static let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_".unicodeScalars)
}
