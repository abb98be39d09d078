import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process dts started and watches: own process group, output to files, reaped by a
/// dedicated thread so that its exit is seen at once.
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

    /// Starts `argv` with stdin from /dev/null and stdout/stderr appended to the given files.
    ///
    /// - Parameters:
    ///   - dieWithParent: run under `setpriv --pdeathsig SIGKILL` so the child dies with dts.
    public static func spawn(_ argv: [String], stdout: String, stderr: String, directory: String? = nil,
                             environment: [String: String]? = nil, dieWithParent: Bool = false) throws -> SupervisedProcess {
        guard !argv.isEmpty else { throw SpawnError(description: "empty command") }
        var command = dieWithParent ? ["/usr/bin/setpriv", "--pdeathsig", "SIGKILL", "--"] + argv : argv
        // posix_spawn_file_actions_addchdir_np is not visible from Swift: let env(1) change directory.
        if let directory { command = ["/usr/bin/env", "-C", directory, "--"] + command }
        let spawned = command
        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }

        let started = DispatchSemaphore(value: 0)
        let box = SpawnBox()
        let thread = Thread {
            var child: pid_t = 0
            let result = spawnChild(spawned, env: env, stdout: stdout, stderr: stderr, pid: &child)
            box.set(pid: child, error: result)
            started.signal()
            guard result == 0 else { return }
            var raw: Int32 = 0
            while waitpid(child, &raw, 0) < 0 && errno == EINTR {}
            box.process?.finish(raw)
        }
        thread.name = "dts-reaper-\(argv[0].split(separator: "/").last ?? "")"
        thread.start()
        started.wait()
        let (pid, error) = box.get()
        guard error == 0 else {
            throw SpawnError(description: "cannot start \(command[0]): \(String(cString: strerror(error)))")
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

    fileprivate func finish(_ raw: Int32) {
        let decoded: Int32
        if raw & 0x7f == 0 { decoded = (raw >> 8) & 0xff } else { decoded = 128 + (raw & 0x7f) }
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
    private var pid: pid_t = 0
    private var error: Int32 = 0
    private var attached: SupervisedProcess?
    private var exitedEarly: Int32?

    func set(pid: pid_t, error: Int32) { lock.withLock { self.pid = pid; self.error = error } }
    func get() -> (pid_t, Int32) { lock.withLock { (pid, error) } }

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

/// posix_spawn with its own process group, default signal handling, /dev/null stdin and output
/// appended to files. Returns 0 or an errno value.
private func spawnChild(_ argv: [String], env: [String], stdout: String, stderr: String, pid: inout pid_t) -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_APPEND, 0o644)

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for sig in [SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGQUIT, SIGCHLD] { sigaddset(&defaults, sig) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setpgroup(&attributes, 0)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

    let cArgs = argv.map { strdup($0) } + [nil]
    let cEnv = env.map { strdup($0) } + [nil]
    defer {
        cArgs.forEach { free($0) }
        cEnv.forEach { free($0) }
    }
    return posix_spawnp(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
}
