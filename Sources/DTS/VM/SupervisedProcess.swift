import DTSProcess
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process dts started and watches: own process group, output to files, reaped by a
/// dedicated thread so that its exit is seen at once. Started with ``Spawn/start(_:_:)`` (DTSProcess).
///
/// The thread that spawns the child is the one that waits for it, so `--pdeathsig` (when asked
/// for) fires exactly when dts itself dies, never earlier.
public final class SupervisedProcess: @unchecked Sendable {
    /// Why spawning failed.
    public struct SpawnError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// The child's pid (also its process group id).
    public let pid: pid_t
    /// The argv it was started with.
    public let argv: [String]

    private let lock = NSLock()
    private var status: Int32?
    private var waiters: [CheckedContinuation<Int32, Never>] = []

    private init(pid: pid_t, argv: [String]) {
        self.pid = pid
        self.argv = argv
    }

    /// Starts `argv` with stdin from /dev/null and stdout/stderr appended to the given files, in
    /// its own process group (see ``Spawn/start(_:_:)`` for the child's signal and descriptor state).
    ///
    /// - Parameters:
    ///   - directory: the child's working directory (the output paths are opened before changing to it).
    ///   - environment: the child's whole environment; `nil` passes dts's.
    ///   - dieWithParent: run under `setpriv --pdeathsig SIGKILL` so the child dies with dts.
    public static func spawn(_ argv: [String], stdout: String, stderr: String, directory: String? = nil,
                             environment: [String: String]? = nil, dieWithParent: Bool = false) throws -> SupervisedProcess {
        guard !argv.isEmpty else { throw SpawnError(description: "empty command") }
        let options = SpawnOptions(environment: environment, directory: directory, processGroup: .newGroup,
                                   standardInput: .null, standardOutput: .append(stdout), standardError: .append(stderr),
                                   parentDeathSignal: dieWithParent ? SIGKILL : nil)
        let started = DispatchSemaphore(value: 0)
        let box = SpawnBox()
        // The spawning thread is the reaper: it lives exactly as long as the child.
        let thread = Thread {
            let result = Result { () throws(DTSProcess.SpawnError) in try Spawn.start(argv, options) }
            box.set(result)
            started.signal()
            guard case .success(let child) = result else { return }
            let status = WaitStatus.wait(for: child) ?? 0
            box.process?.finish(status)
        }
        thread.name = "dts-reaper-\(argv[0].split(separator: "/").last ?? "")"
        thread.start()
        started.wait()
        let pid: pid_t
        switch box.get() {
        case .success(let child): pid = child
        case .failure(let error): throw SpawnError(description: error.description)
        }
        let process = SupervisedProcess(pid: pid, argv: argv)
        box.attach(process)
        return process
    }

    /// The exit status once the child has exited: its exit code, or 128 + signal number.
    public var exitStatus: Int32? { lock.withLock { status } }

    /// Whether the child is still running.
    public var isRunning: Bool { exitStatus == nil }

    /// Waits until the child exits and returns its status.
    public func waitForExit() async -> Int32 {
        await withCheckedContinuation { continuation in
            lock.lock()
            if let status { lock.unlock(); continuation.resume(returning: status); return }
            waiters.append(continuation)
            lock.unlock()
        }
    }

    /// Waits up to `timeout`; returns the status, or `nil` if the child still runs.
    public func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        // A cancelled Task.sleep returns at once: stop on cancellation instead of spinning.
        while ContinuousClock.now < deadline, !Task.isCancelled {
            if let status = exitStatus { return status }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return exitStatus
    }

    /// Sends `signal` to the child's whole process group.
    public func signal(_ signal: Int32) {
        guard isRunning else { return }
        _ = kill(-pid, signal)
    }

    /// SIGTERM to the process group, up to `grace` to exit, then SIGKILL; returns the status.
    @discardableResult
    public func terminate(grace: Duration = .seconds(5)) async -> Int32 {
        if let status = exitStatus { return status }
        signal(SIGTERM)
        if let status = await waitForExit(timeout: grace) { return status }
        signal(SIGKILL)
        return await waitForExit()
    }

    fileprivate func finish(_ decoded: Int32) {
        lock.lock()
        status = decoded
        let pending = waiters
        waiters = []
        lock.unlock()
        for waiter in pending { waiter.resume(returning: decoded) }
    }
}

/// Hands the pid and the process object between the spawning thread and the caller.
private final class SpawnBox: @unchecked Sendable {
    private let lock = NSCondition()
    private var result: Result<pid_t, DTSProcess.SpawnError> = .success(0)
    private var attached: SupervisedProcess?
    private var exitedEarly: Int32?

    func set(_ result: Result<pid_t, DTSProcess.SpawnError>) { lock.withLock { self.result = result } }
    func get() -> Result<pid_t, DTSProcess.SpawnError> { lock.withLock { result } }

    /// The process object, waiting for the caller to create it if the child exits very fast.
    var process: SupervisedProcess? {
        lock.lock()
        defer { lock.unlock() }
        while attached == nil { lock.wait() }
        return attached
    }

    func attach(_ process: SupervisedProcess) {
        lock.lock()
        attached = process
        lock.broadcast()
        lock.unlock()
    }
}
