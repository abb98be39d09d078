import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// How ``Spawn/start(_:_:)`` sets up one of the child's standard descriptors (0, 1 or 2).
///
/// Paths are opened by the child before it changes to ``SpawnOptions/directory``, so a relative
/// path is relative to this process's working directory.
public enum Redirection: Sendable, Equatable {
    /// The child shares this process's descriptor.
    case inherit
    /// `/dev/null`: read-only as standard input, write-only as standard output or error.
    case null
    /// `path` opened for writing at its end (`O_APPEND`), created with mode 0644 if missing. Several
    /// processes, or one child's output and error, can share one log file this way.
    case append(String)
    /// `path` opened with `flags` (`O_RDWR`, ...) and, when `flags` create it, `mode`.
    case open(String, flags: Int32, mode: mode_t = 0o644)
    /// A copy of this process's descriptor `fd`. Open `fd` close-on-exec: the child's copy is made
    /// without the flag, and no other child inherits the original.
    case descriptor(Int32)
    /// The same open file as the child's standard descriptor `fd` as already set up. Standard input
    /// is set up first, then output, then error: `.sameAs(1)` as standard error is the shell's `2>&1`.
    case sameAs(Int32)
}

/// Which process group a child joins.
public enum ProcessGroupChoice: Sendable, Equatable {
    /// This process's group: a terminal's Ctrl-C reaches the child too.
    case inherit
    /// A new group led by the child (its process group id is its pid): `kill(-pid, signal)`
    /// reaches it and every descendant that stays in the group.
    case newGroup
    /// A new session (and group) led by the child, without a controlling terminal until it opens
    /// one as standard input (a PTY's slave side), which then becomes its controlling terminal.
    case newSession
}

/// What ``Spawn/start(_:_:)`` does besides running the program.
public struct SpawnOptions: Sendable, Equatable {
    /// The whole environment of the child; `nil` passes this process's environment.
    public var environment: [String: String]?
    /// The working directory of the child; `nil` keeps this process's.
    public var directory: String?
    /// The process group the child joins.
    public var processGroup: ProcessGroupChoice
    /// Descriptor 0.
    public var standardInput: Redirection
    /// Descriptor 1.
    public var standardOutput: Redirection
    /// Descriptor 2.
    public var standardError: Redirection
    /// A signal the child receives when the thread that spawned it exits (Linux's "parent death
    /// signal"), e.g. `SIGKILL` so that it dies with this process. The program then runs under
    /// `/usr/bin/setpriv --pdeathsig SIG... --` (util-linux), which sets it and execs the program
    /// in the same process; the pid stays the program's. Spawn from a thread that lives as long as
    /// the child should: the signal fires when that thread ends, not only when the process does.
    public var parentDeathSignal: Int32?

    /// Creates options; by default the child reads `/dev/null`, shares this process's standard
    /// output, error, environment, working directory and process group.
    public init(environment: [String: String]? = nil, directory: String? = nil, processGroup: ProcessGroupChoice = .inherit,
                standardInput: Redirection = .null, standardOutput: Redirection = .inherit,
                standardError: Redirection = .inherit, parentDeathSignal: Int32? = nil) {
        self.environment = environment
        self.directory = directory
        self.processGroup = processGroup
        self.standardInput = standardInput
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.parentDeathSignal = parentDeathSignal
    }

    /// `/dev/null` as standard input, standard output and error both appended to `log`.
    public static func output(to log: String, processGroup: ProcessGroupChoice = .inherit) -> SpawnOptions {
        SpawnOptions(processGroup: processGroup, standardOutput: .append(log), standardError: .sameAs(1))
    }
}

/// A program could not be started.
public struct SpawnError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The program that was to be executed (`/usr/bin/setpriv` when a parent death signal was asked for).
    public var program: String
    /// The `errno` value posix_spawn reported.
    public var code: Int32

    /// Creates an error.
    public init(program: String, code: Int32) {
        self.program = program
        self.code = code
    }

    public var description: String { "cannot start \(program): \(String(cString: strerror(code)))" }
}

/// The one way dts and its tests start child processes: `posix_spawn`, so that nothing runs
/// between fork and exec in a multi-threaded process.
///
/// Every child starts in a known state, whatever this process did to its own:
/// - every signal has its default disposition and none is blocked (dts ignores SIGINT and SIGTERM
///   to handle them itself, and `swift test` blocks SIGCHLD; a child must inherit neither);
/// - it has descriptors 0, 1 and 2 as ``SpawnOptions`` says and no other: descriptors from 3 up
///   are closed in the child, so a descriptor another thread opened without close-on-exec does
///   not leak into it either (dts opens every descriptor close-on-exec all the same).
///
/// The caller reaps the child (``WaitStatus/wait(for:)``); dts itself starts children as a
/// ``ChildProcess``, which does.
public enum Spawn {
    /// Starts `argv` (`argv[0]` is the program: a path, or a name looked up in this process's
    /// `PATH`) and returns its pid.
    /// - Throws: ``SpawnError`` when `argv` is empty, a redirection is invalid, or posix_spawn
    ///   fails (no such program, a file that cannot be opened, a directory that does not exist).
    public static func start(_ argv: [String], _ options: SpawnOptions = SpawnOptions()) throws(SpawnError) -> pid_t {
        guard let first = argv.first else { throw SpawnError(program: "", code: EINVAL) }
        var command = argv
        if let signal = options.parentDeathSignal {
            guard let name = SignalName.abbreviation(of: signal) else { throw SpawnError(program: first, code: EINVAL) }
            command = ["/usr/bin/setpriv", "--pdeathsig", "SIG" + name, "--"] + argv
        }
        let program = command[0]

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let standard: [(Int32, Redirection)] = [
            (0, options.standardInput), (1, options.standardOutput), (2, options.standardError),
        ]
        for (fd, redirection) in standard {
            let rc: Int32
            switch redirection {
            case .inherit: rc = 0
            case .null: rc = posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
            case .append(let path): rc = posix_spawn_file_actions_addopen(&actions, fd, path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            case .open(let path, let flags, let mode): rc = posix_spawn_file_actions_addopen(&actions, fd, path, flags, mode)
            case .descriptor(let source): rc = posix_spawn_file_actions_adddup2(&actions, source, fd)
            case .sameAs(let other):
                rc = (0...2).contains(other) && other != fd ? posix_spawn_file_actions_adddup2(&actions, other, fd) : EINVAL
            }
            guard rc == 0 else { throw SpawnError(program: program, code: rc) }
        }
        if let directory = options.directory {
            let rc = dts_spawn_file_actions_addchdir(&actions, directory)
            guard rc == 0 else { throw SpawnError(program: program, code: rc) }
        }
        let closeRest = dts_spawn_file_actions_addclosefrom(&actions, 3)
        guard closeRest == 0 else { throw SpawnError(program: program, code: closeRest) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var everySignal = sigset_t()
        sigfillset(&everySignal)
        posix_spawnattr_setsigdefault(&attributes, &everySignal)
        var noSignal = sigset_t()
        sigemptyset(&noSignal)
        posix_spawnattr_setsigmask(&attributes, &noSignal)
        var flags = Int32(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)
        switch options.processGroup {
        case .inherit: break
        case .newGroup:
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
        case .newSession:
            flags |= dts_spawn_setsid_flag()
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let cArguments: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let rc: Int32
        if let environment = options.environment {
            let cEnvironment: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { cEnvironment.forEach { free($0) } }
            rc = posix_spawnp(&pid, program, &actions, &attributes, cArguments, cEnvironment)
        } else {
            rc = posix_spawnp(&pid, program, &actions, &attributes, cArguments, environ)
        }
        guard rc == 0 else { throw SpawnError(program: program, code: rc) }
        return pid
    }
}

/// Waiting for children and reading their status as a shell reports it.
public enum WaitStatus {
    /// The exit code of a `waitpid` status, or 128 + the signal number when a signal ended the child.
    public static func decode(_ raw: Int32) -> Int32 {
        raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
    }

    /// Blocks until child `pid` exits, reaps it and returns its decoded status; `nil` if `pid` is
    /// not a child of this process (or was reaped already).
    public static func wait(for pid: pid_t) -> Int32? {
        var raw: Int32 = 0
        while true {
            if waitpid(pid, &raw, 0) == pid { return decode(raw) }
            if errno != EINTR { return nil }
        }
    }

    /// Reaps child `pid` if it has exited and returns its decoded status; `nil` while it runs
    /// (or if it is not a child of this process). Never blocks.
    public static func reapIfExited(_ pid: pid_t) -> Int32? {
        var raw: Int32 = 0
        return waitpid(pid, &raw, WNOHANG) == pid ? decode(raw) : nil
    }
}
