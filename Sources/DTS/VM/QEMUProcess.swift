import DTSProcess
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// QEMU once a ``VMHost`` launched it, as the lifecycle watches and stops it, however it runs: a
/// supervised child of dts (``SupervisedQEMU``) or a daemon known by its pid (``DaemonQEMU``).
protocol QEMUProcess: AnyObject, Sendable {
    /// QEMU's pid on the VM's host.
    var pid: Int32 { get }
    /// The process dts started on this machine: QEMU itself, or the launcher of a daemonized QEMU.
    var localProcess: ChildProcess? { get }
    /// Returns once QEMU is up far enough to be reached: its QMP socket `path` exists. Throws
    /// ``VMStartError/Reason/qemuExited(status:)`` if QEMU exits first.
    func waitUntilListening(qmpSocket path: String) async throws
    /// Whether QEMU still runs.
    func isRunning() async -> Bool
    /// Waits until QEMU exits; returns its status (0 when it cannot be known), or `nil` when the
    /// waiting task is cancelled first.
    func waitForExit() async -> Int32?
    /// Waits up to `timeout` for QEMU to exit; returns whether it did.
    func waitForExit(within timeout: Duration) async -> Bool
    /// Sends `signal` to QEMU (to its process group, for a child of dts).
    func signal(_ signal: Int32) async
}

/// QEMU as a supervised child of dts: its own process group, output to files, reaped at once.
final class SupervisedQEMU: QEMUProcess {
    let process: ChildProcess

    init(_ process: ChildProcess) { self.process = process }

    var pid: Int32 { process.pid }
    var localProcess: ChildProcess? { process }

    func waitUntilListening(qmpSocket path: String) async throws {
        // QEMU creates its QMP socket before the machine starts.
        while !FileManager.default.fileExists(atPath: path) {
            if let status = process.exitStatus { throw VMStartError.Reason.qemuExited(status: status) }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    func isRunning() async -> Bool { process.isRunning }
    func waitForExit() async -> Int32? {
        // Timed waits return at once on cancellation; a plain wait would not.
        while !Task.isCancelled {
            if let status = await process.waitForExit(timeout: .seconds(3600)) { return status }
        }
        return nil
    }
    func waitForExit(within timeout: Duration) async -> Bool { await process.waitForExit(timeout: timeout) != nil }
    func signal(_ signal: Int32) async { process.signal(signal) }
}

/// A daemonized QEMU, known by the pid in its pid file and watched through its host (on this
/// machine, or on a remote DUT over SSH). Its exit status cannot be known: 0 is reported.
final class DaemonQEMU: QEMUProcess {
    let pid: Int32
    let host: any VMHost
    /// The launcher (on this machine), which exited once QEMU daemonized.
    let launcher: ChildProcess?
    /// How often to ask the host whether QEMU still runs: while watching it (during the start and
    /// while it is up), and while waiting for it to stop.
    let watchInterval, stopInterval: Duration

    init(pid: Int32, host: any VMHost, launcher: ChildProcess?, watchInterval: Duration, stopInterval: Duration) {
        self.pid = pid
        self.host = host
        self.launcher = launcher
        self.watchInterval = watchInterval
        self.stopInterval = stopInterval
    }

    var localProcess: ChildProcess? { launcher }

    /// A daemon has done its set-up, the QMP socket included, before the launcher returns.
    func waitUntilListening(qmpSocket path: String) async throws {}

    func isRunning() async -> Bool { await host.isAlive(pid) }

    func waitForExit() async -> Int32? {
        while !Task.isCancelled, await host.isAlive(pid) { try? await Task.sleep(for: watchInterval) }
        return Task.isCancelled ? nil : 0
    }

    func waitForExit(within timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while await host.isAlive(pid) {
            if ContinuousClock.now >= deadline || Task.isCancelled { return false }
            try? await Task.sleep(for: stopInterval)
        }
        return true
    }

    func signal(_ signal: Int32) async { await host.signal(pid, signal) }
}
