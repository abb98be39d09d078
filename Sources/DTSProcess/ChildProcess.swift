import DTSSession
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Which processes a signal sent to a ``ChildProcess`` reaches.
public enum SignalScope: Sendable, Equatable {
    /// The child alone.
    case process
    /// The child's process group (`kill(-pid, ...)`): the child and every descendant that stayed in it.
    case group
    /// Every process of the child's session: its group and any job groups a shell made in it.
    case session
}

/// A child process dts started, watched until it exits: the one child type of dts, its tests and
/// its benchmarks (QEMU, local commands and shells, test servers).
///
/// ``spawn(_:_:)`` starts the program with ``Spawn/start(_:_:)`` on a thread of its own, which
/// then waits for the child and reaps it, so:
/// - the exit is seen at once (``exitStatus``, ``waitForExit()``, ``waitForExit(timeout:)`` wake
///   up on it; nothing polls);
/// - a parent death signal (``SpawnOptions/parentDeathSignal``) fires exactly when dts dies: the
///   spawning thread lives exactly as long as the child;
/// - a signal never reaches a reused pid: the child is only reaped once it is marked as exited,
///   and ``signal(_:)`` sends nothing after that.
public final class ChildProcess: Sendable {
    /// The child's pid (also its process group id, and session id, when it leads one).
    public let pid: pid_t
    /// The argv it was started with.
    public let argv: [String]
    /// What ``signal(_:)`` and ``terminate(grace:)`` reach: the session or group the child leads
    /// (``ProcessGroupChoice/newSession``, ``ProcessGroupChoice/newGroup``), else the child alone.
    public let scope: SignalScope
    private let state: ExitState

    private init(pid: pid_t, argv: [String], scope: SignalScope, state: ExitState) {
        self.pid = pid
        self.argv = argv
        self.scope = scope
        self.state = state
    }

    /// Starts `argv` as ``Spawn/start(_:_:)`` does and watches it.
    /// - Throws: ``SpawnError`` when the program cannot be started.
    public static func spawn(_ argv: [String], _ options: SpawnOptions = SpawnOptions()) throws(SpawnError) -> ChildProcess {
        let state = ExitState()
        let thread = Thread {
            let started = Result { () throws(SpawnError) in try Spawn.start(argv, options) }
            state.started(started)
            if case .success(let pid) = started { state.reap(pid) }
        }
        thread.name = "dts-child-\(argv.first?.split(separator: "/").last ?? "")"
        thread.start()
        let pid = try state.awaitStart().get()
        let scope: SignalScope = switch options.processGroup {
        case .inherit: .process
        case .newGroup: .group
        case .newSession: .session
        }
        return ChildProcess(pid: pid, argv: argv, scope: scope, state: state)
    }

    /// Starts `argv` with standard input from `/dev/null` and standard output and error appended
    /// to the given files (one file may be given for both), in its own process group.
    ///
    /// - Parameters:
    ///   - directory: the child's working directory (the output paths are opened before changing to it).
    ///   - environment: the child's whole environment; `nil` passes this process's.
    ///   - dieWithParent: the child gets SIGKILL when this process dies (`setpriv --pdeathsig`).
    public static func spawn(_ argv: [String], stdout: String, stderr: String, directory: String? = nil,
                             environment: [String: String]? = nil, dieWithParent: Bool = false) throws(SpawnError) -> ChildProcess {
        try spawn(argv, SpawnOptions(environment: environment, directory: directory, processGroup: .newGroup,
                                     standardInput: .null, standardOutput: .append(stdout), standardError: .append(stderr),
                                     parentDeathSignal: dieWithParent ? SIGKILL : nil))
    }

    /// The exit status once the child has exited: its exit code, or 128 + the signal number.
    public var exitStatus: Int32? { state.status }

    /// Whether the child still runs (has not been reaped).
    public var isRunning: Bool { exitStatus == nil }

    /// Waits until the child exits and returns its status.
    public func waitForExit() async -> Int32 { await state.exited.wait() }

    /// Waits until the child exits, up to `timeout`; returns its status, or `nil` if it still runs
    /// at the deadline or the calling task is cancelled (both return at once, nothing polls).
    public func waitForExit(timeout: Duration) async -> Int32? { await state.exited.wait(timeout: timeout) }

    /// Blocks the calling thread until the child exits; for synchronous cleanup paths (a `defer`)
    /// after SIGKILL. Never call it on Swift's cooperative pool while the child may keep running.
    @discardableResult
    public func waitUntilExit() -> Int32 { state.block() }

    /// Sends `signal` to ``scope`` (the group or session the child leads, else the child).
    public func signal(_ signal: Int32) { self.signal(signal, to: scope) }

    /// Sends `signal` to the child, its process group, or every process of its session. Nothing is
    /// sent to the child (or its group) once it has been reaped; members of its session that
    /// outlived it are still reached.
    public func signal(_ signal: Int32, to scope: SignalScope) {
        state.whileUnreaped { running in
            switch scope {
            case .process:
                if running { _ = kill(pid, signal) }
            case .group:
                if running { _ = kill(-pid, signal) }
            case .session:
                if running { _ = kill(-pid, signal) }
                for member in ProcessTable.members(ofSession: pid) where member != pid { _ = kill(member, signal) }
            }
        }
    }

    /// SIGTERM to ``scope``, up to `grace` to exit, then SIGKILL; returns the exit status.
    @discardableResult
    public func terminate(grace: Duration = .seconds(5)) async -> Int32 {
        if let status = exitStatus { return status }
        signal(SIGTERM)
        if let status = await waitForExit(timeout: grace) { return status }
        signal(SIGKILL)
        return await waitForExit()
    }
}

/// A child's start result and exit status, shared by the thread that spawns and reaps it and the
/// ``ChildProcess`` callers.
private final class ExitState: @unchecked Sendable {
    // Not a Mutex: the caller of `spawn` and `waitUntilExit` block their thread until the
    // spawning thread signals the start or the exit.
    private let condition = NSCondition()
    private var start: Result<pid_t, SpawnError>?
    private var exit: Int32?
    /// The exit status, for the tasks that wait for it.
    let exited = Latch<Int32>()

    func started(_ result: Result<pid_t, SpawnError>) {
        condition.withLock {
            start = result
            condition.broadcast()
        }
    }

    func awaitStart() -> Result<pid_t, SpawnError> {
        condition.withLock {
            while start == nil { condition.wait() }
            return start!
        }
    }

    /// Waits for the child without reaping it, marks it exited, then reaps it, all under the lock:
    /// ``whileUnreaped(_:)`` never sees a reaped pid as running.
    func reap(_ pid: pid_t) {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1 && errno == EINTR {}
        let status: Int32 = condition.withLock {
            exit = WaitStatus.wait(for: pid) ?? 0
            condition.broadcast()
            return exit!
        }
        exited.set(status)
    }

    var status: Int32? { condition.withLock { exit } }

    func block() -> Int32 {
        condition.withLock {
            while exit == nil { condition.wait() }
            return exit!
        }
    }

    /// Runs `body` under the lock with whether the child is still unreaped.
    func whileUnreaped(_ body: (Bool) -> Void) {
        condition.withLock { body(exit == nil) }
    }
}
