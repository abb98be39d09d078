import DTSProcess
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The private directory of one dts run: every VM's sockets, pid file and logs live under it, in
/// `<run>/<vm>/`. It records its owner (pid and process start time) so that a later run can tell
/// a live run from the leftovers of one that was killed, and the processes the run started (pid
/// and start time again, in `processes`) so that the later run kills those, and nothing else.
public final class RunDirectory: Sendable {
    /// The root that holds every run's directory: `/run/dts` for root, else
    /// `$XDG_RUNTIME_DIR/dts`, else `/tmp/dts-<uid>`; `DTS_RUN_ROOT` overrides. Whichever it is,
    /// it must be the user's own directory with mode 0700 (``prepareRoot(_:)``).
    public static var defaultRoot: String {
        let env = ProcessInfo.processInfo.environment
        if let root = env["DTS_RUN_ROOT"], !root.isEmpty { return root }
        if getuid() == 0 { return "/run/dts" }
        if let xdg = env["XDG_RUNTIME_DIR"], !xdg.isEmpty { return xdg + "/dts" }
        return "/tmp/dts-\(getuid())"
    }

    /// What a run directory under the default root looks like, for commands that only print
    /// paths (`dts vm cmdline`): `<root>/run-XXXXXX`. Nothing is made there.
    public static var placeholderPath: String { defaultRoot + "/run-XXXXXX" }

    /// The run's directory.
    public let path: String
    /// The root it lives in.
    public let root: String
    /// A short id, unique among runs (used to salt MAC addresses).
    public let id: String

    /// Creates a fresh run directory (mode 0700) under `root`, which must be this user's own
    /// (``prepareRoot(_:)``).
    public init(root: String = RunDirectory.defaultRoot) throws {
        self.root = root
        try Self.prepareRoot(root)
        // Made under a temporary name and renamed once its owner record is in place, so that a
        // concurrent cleanStale never sees a run directory without an owner.
        var template = Array("\(root)/.new-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw ResourceError("cannot create a run directory in \(root): \(String(cString: strerror(errno)))")
        }
        let staging = String(cString: made)
        id = String(staging.suffix(6))
        let owner = "\(getpid()) \(ProcessTable.startTime(of: getpid()) ?? 0)\n"
        try owner.write(toFile: staging + "/owner", atomically: false, encoding: .utf8)
        path = "\(root)/run-\(id)"
        guard rename(staging, path) == 0 else {
            throw ResourceError("cannot create run directory \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Makes `root` (mode 0700) if it is missing, and checks that it is this user's own: a
    /// directory, not a symbolic link, owned by the effective user, with mode 0700. On a shared
    /// host another user may have made `/tmp/dts-<uid>` first, or left a root writable: runs
    /// planted there would be trusted (their pid files, sockets and mounts).
    /// - Throws: ``ResourceError`` naming the path, its owner and its mode.
    public static func prepareRoot(_ root: String) throws(ResourceError) {
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw ResourceError("cannot create the run root \(root): \(error.localizedDescription)")
        }
        if let problem = rootProblem(root) { throw ResourceError(problem) }
    }

    /// Makes a fresh run root `/tmp/<prefix>-XXXXXX` (mode 0700) that no one else knows about.
    public static func makeTemporaryRoot(prefix: String) throws(ResourceError) -> String {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw ResourceError("cannot create a run root /tmp/\(prefix)-XXXXXX: \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }

    /// Why `root` may not serve as this user's run root, or `nil` if it may.
    static func rootProblem(_ root: String) -> String? {
        var info = stat()
        guard lstat(root, &info) == 0 else { return "cannot read the run root \(root): \(String(cString: strerror(errno)))" }
        let me = geteuid()
        let mode = info.st_mode & 0o7777
        let isDirectory = info.st_mode & S_IFMT == S_IFDIR
        guard !isDirectory || info.st_uid != me || mode != 0o700 else { return nil }
        let kind = info.st_mode & S_IFMT == S_IFLNK ? "a symbolic link" : isDirectory ? "a directory" : "not a directory"
        return "the run root \(root) is \(kind) with owner \(userName(info.st_uid)) and mode \(String(format: "%04o", mode)); "
            + "dts keeps its runs' sockets and pid files there and trusts what it finds, so it must be a directory owned by "
            + "\(userName(me)) with mode 0700. Remove it, or set DTS_RUN_ROOT (or XDG_RUNTIME_DIR) to such a directory"
    }

    /// `name (uid N)`, or `uid N` for a user without a name.
    static func userName(_ uid: uid_t) -> String {
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return "uid \(uid)" }
        return "\(String(cString: name)) (uid \(uid))"
    }

    /// The directory of VM `vm` (created on demand by ``vmDirectory(_:)``).
    public func vmPath(_ vm: String) -> String { "\(path)/\(vm)" }

    /// Creates and returns the directory of VM `vm`.
    public func vmDirectory(_ vm: String) throws -> String {
        let dir = vmPath(vm)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return dir
    }

    /// Removes the run directory.
    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// What ``cleanStale(root:logger:)`` did.
    public struct CleanupReport: Sendable, Equatable {
        /// Run directories removed.
        public var removedRuns: [String] = []
        /// QEMU (or other) processes killed, by pid.
        public var killedProcesses: [Int32] = []
    }

    /// This machine's id (`/etc/machine-id`, else its host name): marks what a run leaves on a remote DUT.
    public static let machineID: String = {
        let id = (try? String(contentsOfFile: "/etc/machine-id", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return id.isEmpty ? ProcessInfo.processInfo.hostName : id
    }()

    /// Cleans up after runs that died: for every run directory whose owner is gone, kills the
    /// processes the run recorded (``recordProcess(_:_:)``) that still run with the start time
    /// recorded for them, unmounts what is mounted inside, and removes the directory. A pid file
    /// alone never gets a process killed: a pid may have been reused, or the run planted.
    @discardableResult
    public static func cleanStale(root: String = RunDirectory.defaultRoot, logger: Logger = Logger(label: "dts.run")) -> CleanupReport {
        var report = CleanupReport()
        // Runs found in a root that is not this user's own may have been planted: touch nothing.
        if FileManager.default.fileExists(atPath: root), let problem = rootProblem(root) {
            logger.warning("not cleaning up stale runs: \(problem)")
            return report
        }
        removeOldPortLocks(root: root)
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: root) else { return report }
        for entry in entries where entry.hasPrefix("run-") {
            let run = "\(root)/\(entry)"
            if let owner = (try? String(contentsOfFile: run + "/owner", encoding: .utf8)).flatMap(ProcessRecord.init), owner.isRunning {
                continue // the owner is alive
            }
            for record in processRecords(in: run) where record.pid > 1 && record.pid != getpid() && record.isRunning {
                kill(record.pid, SIGKILL)
                report.killedProcesses.append(record.pid)
                logger.warning("killed leftover process \(record.pid) (\(record.what)) of dead run \(run)")
            }
            // Mounts a dead run made (hugetlbfs for a backend) go before the directory does.
            for mount in mounts(under: run).reversed() {
                if umount2(mount, Int32(MNT_DETACH)) == 0 { logger.warning("unmounted \(mount) of dead run \(run)") }
            }
            try? FileManager.default.removeItem(atPath: run)
            report.removedRuns.append(run)
            logger.info("removed stale run directory \(run)")
        }
        return report
    }

    /// Removes the port lock files (`<root>/locks/port-N.lock`) that dts versions before the
    /// abstract-socket reservations (``HostResourceAllocator``) made and never removed: each one
    /// no process holds, then the directory once empty.
    static func removeOldPortLocks(root: String) {
        let directory = root + "/locks"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.hasPrefix("port-") && name.hasSuffix(".lock") {
            let fd = open(directory + "/" + name, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { continue }
            // Unlinked while locked: an older dts holding it keeps it; one that opens it later locks a new file.
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { unlink(directory + "/" + name) }
            close(fd)
        }
        rmdir(directory)
    }

    // MARK: The run's processes

    /// A process as a run records it: pid, start time (``ProcessTable/startTime(of:)``), and what it is.
    struct ProcessRecord: Equatable {
        var pid: Int32
        var startTime: UInt64
        var what: String

        /// Parses `pid starttime what...` (the owner file has no `what`).
        init?(_ line: some StringProtocol) {
            let fields = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count >= 2, let pid = Int32(fields[0]),
                  let start = UInt64(fields[1].trimmingCharacters(in: .whitespacesAndNewlines)) else { return nil }
            self.pid = pid
            startTime = start
            what = fields.count > 2 ? fields[2].trimmingCharacters(in: .newlines) : ""
        }

        /// Whether the process still runs: its pid exists and started at the recorded time.
        var isRunning: Bool { ProcessTable.startTime(of: pid) == startTime }
    }

    /// The file of the processes a run started, one `pid starttime what` line each.
    static let processesFile = "processes"

    /// Records that process `pid` on this machine belongs to the run, with its start time, so that
    /// a later run cleans it up should this dts die (``cleanStale(root:logger:)``), and never kills
    /// a process that reused the pid. Call it as soon as the pid is known: after starting a
    /// process, or on first reading a pid file the process wrote itself. Does nothing if the
    /// process is already gone.
    public func recordProcess(_ pid: Int32, _ what: String) {
        Self.append(pid: pid, what: what, toRun: path)
    }

    /// Records the process named by `pidFile` with the run whose directory holds that file (as
    /// ``recordProcess(_:_:)``), the first time the file is read. A file outside any run
    /// directory is not recorded. For programs that write their own pid files (OVS, testpmd).
    public static func recordProcess(_ pid: Int32, pidFile: String) {
        var directory = (pidFile as NSString).deletingLastPathComponent
        while directory.count > 1 {
            let name = (directory as NSString).lastPathComponent
            if name.hasPrefix("run-"), FileManager.default.fileExists(atPath: directory + "/owner") {
                // The first reading counts: a later one may see a pid the process no longer has.
                guard !processRecords(in: directory).contains(where: { $0.what == pidFile }) else { return }
                append(pid: pid, what: pidFile, toRun: directory)
                return
            }
            directory = (directory as NSString).deletingLastPathComponent
        }
    }

    private static func append(pid: Int32, what: String, toRun run: String) {
        guard pid > 1, let start = ProcessTable.startTime(of: pid) else { return }
        let line = Array("\(pid) \(start) \(what.replacingOccurrences(of: "\n", with: " "))\n".utf8)
        // One write(2) of a short line with O_APPEND: concurrent records never interleave.
        let fd = open(run + "/" + processesFile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// The processes recorded in run directory `run`.
    static func processRecords(in run: String) -> [ProcessRecord] {
        guard let text = try? String(contentsOfFile: run + "/" + processesFile, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap(ProcessRecord.init)
    }

    static func mounts(under run: String) -> [String] {
        guard let text = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 1 else { return nil }
            let point = String(fields[1])
            return point.hasPrefix(run + "/") ? point : nil
        }
    }
}
