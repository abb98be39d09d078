import DTSSSH
import DTSSession
import DTSTestSupport
import Foundation
import Testing

@Suite("Closing a shell")
struct ShellCloseTests {
    /// A shell whose foreground program reads no input (the terminal not in line mode) stops taking
    /// bytes: the PTY's input queue fills, dropbear stops granting window, and the `exit` written
    /// by `close()` cannot go out.
    /// The close must still end within its own deadline and give back its transient count, or
    /// (under the dropbear#321 rule) every later channel open on the connection waits forever.
    @Test("a shell that takes no input: close() ends, and later execs still start")
    func closeWithFullWindow() async throws {
        try await withServer { _, ssh, _ in
            let shell = try await ssh.openSSHShell()
            _ = try await shell.sendCommand("stty -icanon; sleep 90", timeout: .milliseconds(300))
            // Far more than the PTY queue plus dropbear's window (24 KiB) can take: times out unsent.
            let flood = String(repeating: "x", count: 512 * 1024)
            _ = try await shell.sendCommand(flood, timeout: .seconds(1))
            let start = ContinuousClock.now
            await shell.close()
            // The close's own deadline is a few seconds; the bounds leave room for a loaded machine
            // and stay far below the 90 s a close waiting on the program would take.
            #expect(elapsed(since: start) < .seconds(20))
            let result = try await ssh.exec("echo after", timeout: .seconds(10))
            #expect(result.output == "after\n")
            #expect(elapsed(since: start) < .seconds(30), "the exec waited on a channel count the close never gave back")
        }
    }
}
