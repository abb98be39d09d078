import DTSProcess
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What a program run by ``runProgram(_:_:environment:directory:)`` did.
public struct ProgramResult: Sendable {
    /// Its exit status (128 + the signal number if a signal ended it).
    public var status: Int32
    /// Its standard output.
    public var stdout: String
    /// Its standard error.
    public var stderr: String

    /// Standard output followed by standard error, for messages.
    public var output: String { stdout + stderr }
}

/// Runs `program` with `arguments` to completion, as a ``ChildProcess`` (never Foundation's
/// `Process`, see docs/platform-notes.md), with its output in unlinked files (no pipe to fill up)
/// and standard input from `/dev/null`. Waits without blocking a thread: a test that blocked a
/// thread of Swift's cooperative pool (two on a 2-core machine) would stall every other test's
/// async work meanwhile, and timing-sensitive tests then fail for no reason of their own.
///
/// - Parameters:
///   - environment: added to (or replacing entries of) this process's environment.
///   - directory: the working directory; `nil` keeps this process's.
public func runProgram(_ program: String, _ arguments: [String], environment: [String: String] = [:],
                       directory: String? = nil) async throws -> ProgramResult {
    let started = try StartedProgram(program, arguments, environment: environment, directory: directory)
    return started.result(status: await started.child.waitForExit())
}

/// ``runProgram(_:_:environment:directory:)`` blocking the calling thread: only for programs that
/// finish in milliseconds (`ip`, `ss`, key generators) where an async caller is not at hand, such
/// as a test server's initialiser.
public func runQuickProgram(_ program: String, _ arguments: [String], environment: [String: String] = [:],
                            directory: String? = nil) throws -> ProgramResult {
    let started = try StartedProgram(program, arguments, environment: environment, directory: directory)
    return started.result(status: started.child.waitUntilExit())
}

/// A program started with its output captured.
private struct StartedProgram {
    let child: ChildProcess
    let out: CaptureFile
    let err: CaptureFile

    init(_ program: String, _ arguments: [String], environment: [String: String], directory: String?) throws {
        out = try CaptureFile()
        err = try CaptureFile()
        child = try ChildProcess.spawn([program] + arguments, SpawnOptions(
            environment: environment.isEmpty ? nil : ProcessInfo.processInfo.environment.merging(environment) { $1 },
            directory: directory, standardInput: .null, standardOutput: .descriptor(out.fd), standardError: .descriptor(err.fd)))
    }

    func result(status: Int32) -> ProgramResult {
        ProgramResult(status: status, stdout: String(decoding: out.readAll(), as: UTF8.self),
                      stderr: String(decoding: err.readAll(), as: UTF8.self))
    }
}

/// The processes other than this one whose argv (read from `/proc`) satisfies `predicate`.
public func processes(where predicate: ([String]) -> Bool) -> [pid_t] {
    ProcessTable.entries().map(\.pid).filter { $0 != getpid() && predicate(ProcessTable.commandLine(of: $0)) }
}
