import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An error of a session on the machine dts runs on.
public enum LocalSessionError: PartialOutputError, Sendable, CustomStringConvertible {
    /// A program could not be started.
    case spawnFailed(program: String, errno: Int32)
    /// `exec` did not finish in time; the command's process group was killed. Carries the output so far.
    case timeout(command: String, after: Duration, stdout: String, stderr: String)
    /// `sendExpect` did not see what it expected in time. Carries the output so far.
    case expectTimeout(command: String, expected: Expectation, after: Duration, output: String)
    /// The shell exited (or was closed) while waiting for output.
    case shellExited(command: String, output: String)
    /// Two operations were started at once on one shell.
    case shellBusy
    /// A regular expression given to `sendExpect` is invalid.
    case invalidRegex(String)
    /// A file operation failed.
    case io(operation: String, path: String, errno: Int32)
    /// The PTY could not be set up.
    case pty(step: String, errno: Int32)

    public var description: String {
        switch self {
        case .spawnFailed(let program, let errno):
            return "local: cannot start \(program): \(String(cString: strerror(errno)))"
        case .timeout(let command, let after, let stdout, let stderr):
            return "local: '\(command)' did not finish within \(after); killed. stdout so far: \(Self.tail(stdout)) stderr so far: \(Self.tail(stderr))"
        case .expectTimeout(let command, let expected, let after, let output):
            return "local shell: \(expected) not seen within \(after) after '\(command)'; output so far: \(Self.tail(output))"
        case .shellExited(let command, let output):
            return "local shell exited while running '\(command)'; output so far: \(Self.tail(output))"
        case .shellBusy:
            return "local shell: another operation is in progress on this shell"
        case .invalidRegex(let pattern):
            return "invalid regular expression /\(pattern)/"
        case .io(let operation, let path, let errno):
            return "local: \(operation) \(path): \(String(cString: strerror(errno)))"
        case .pty(let step, let errno):
            return "local shell: \(step) failed: \(String(cString: strerror(errno)))"
        }
    }

    /// The output received before the error, for timeouts and an exited shell (an exec's standard output).
    public var partialOutput: String? {
        switch self {
        case .timeout(_, _, let stdout, _): return stdout
        case .expectTimeout(_, _, _, let output), .shellExited(_, let output): return output
        default: return nil
        }
    }

    static func tail(_ text: String, limit: Int = 2000) -> String {
        let quoted = text.count > limit ? "…" + String(text.suffix(limit)) : text
        return "'" + quoted + "'"
    }
}
