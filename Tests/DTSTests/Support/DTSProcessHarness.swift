import DTS
import DTSProcess
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The built `dts` started in the background, as a user starts it in a terminal, for the
/// end-to-end tests that interrupt it: `start`, wait for the run to reach the point under test
/// (``waitUntil(timeout:every:_:)``), press Ctrl-C (``interrupt(waitingUpTo:)``), check what is
/// left. Standard output and error go to one log file, standard input is `/dev/null`, the working
/// directory is the package root. Call ``killIfRunning()`` in a `defer`.
struct DTSProcessHarness: Sendable {
    /// The supervised `dts` process (its own process group).
    let process: ChildProcess
    /// Where its standard output and error go.
    let logPath: String

    /// Starts `dts arguments...` with `environment` added to this process's environment.
    static func start(_ arguments: [String], environment: [String: String] = [:], log: String) throws -> DTSProcessHarness {
        let process = try ChildProcess.spawn(
            [DTSBinary.path] + arguments, stdout: log, stderr: log, directory: DTSBinary.packageRoot,
            environment: ProcessInfo.processInfo.environment.merging(environment) { $1 })
        return DTSProcessHarness(process: process, logPath: log)
    }

    /// Whether dts still runs.
    var isRunning: Bool { process.isRunning }

    /// What dts printed so far (standard output and error).
    var output: String { String(decoding: FileManager.default.contents(atPath: logPath) ?? Data(), as: UTF8.self) }

    /// Evaluates `condition` every `interval` until it holds; gives up after `timeout`, once dts
    /// has exited, or when the task is cancelled. Returns whether it held.
    func waitUntil(timeout: Duration, every interval: Duration = .milliseconds(100),
                   _ condition: () throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while try !condition() {
            guard isRunning else { return try condition() }
            guard ContinuousClock.now < deadline, !Task.isCancelled else { return false }
            try? await Task.sleep(for: interval)
        }
        return true
    }

    /// Sends SIGINT to dts, as Ctrl-C does, and waits up to `timeout` for it to exit. Returns its
    /// exit status (`nil` while it still runs) and how long it took to exit.
    func interrupt(waitingUpTo timeout: Duration) async -> (status: Int32?, elapsed: Duration) {
        let sent = ContinuousClock.now
        kill(process.pid, SIGINT)
        let status = await process.waitForExit(timeout: timeout)
        return (status, ContinuousClock.now - sent)
    }

    /// Kills dts and its process group if it still runs, and waits until it is reaped.
    func killIfRunning() {
        guard isRunning else { return }
        process.signal(SIGKILL)
        process.waitUntilExit()
    }
}
