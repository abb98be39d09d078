import DTSProcess
import DTSSSH
import DTSSession
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A remote host DUT as the VM host: QEMU runs on the DUT, launched through the DUT's SSH session.
///
/// - QEMU always daemonizes there (`-daemonize`, pid file in the VM's directory on the DUT), its
///   output going to files in that directory: the launching command returns once QEMU runs.
/// - Every run gets a private directory on the DUT, `/tmp/dts-vms.XXXXXXXX` (mode 0700), holding
///   an `owner` file (this machine's id, dts's pid and start time) and one directory per VM.
///   Directories of runs from this machine whose dts is gone are cleaned up (QEMU killed, files
///   removed) when the next run first starts a VM on that DUT.
/// - QMP and the guest agent are reached through local sockets in the VM's local directory, each
///   connection relayed over the DUT's SSH connection to `socat - UNIX-CONNECT:<socket>` on the
///   DUT (libssh2 has no streamlocal forwarding): the DUT needs `socat`.
/// - Forwarded ports (the guest's SSH, VNC, telnet console) are bound on the DUT's address
///   (`dut_ip`), and chosen among ports the DUT does not listen on.
/// - A guest image under the local image directory (`kernel = guest_image=NAME`) is copied to the
///   DUT's `~/.cache/dts/images/NAME` when missing there or different (size and modification time).
/// - On stop the console log and QEMU's output are copied back into the VM's local log directory,
///   then the VM's directory on the DUT is removed.
/// - Warm boot keeps the DUT's snapshots in the DUT user's `~/.cache/dts/snapshots`
///   (``RemoteSnapshotStore``), with the size cap of this machine's cache.
final class RemoteVMHost: VMHost, Sendable {
    /// What dts learns about the DUT once.
    struct Facts: Sendable, Equatable {
        var architecture: String
        var home: String
        var onlineCPUs: [Int]
        var hugetlbfsMount: String?
        var hasSocat: Bool

        /// Reads the `key=value` lines the facts script prints.
        static func parse(_ text: String) -> Facts {
            var values: [String: String] = [:]
            for line in text.split(separator: "\n") {
                guard let eq = line.firstIndex(of: "=") else { continue }
                values[String(line[..<eq])] = String(line[line.index(after: eq)...]).trimmingCharacters(in: .whitespaces)
            }
            let mount = values["hugetlbfs"].flatMap { $0.isEmpty ? nil : $0 }
            return Facts(architecture: values["arch"] ?? "", home: values["home"] ?? "",
                         onlineCPUs: ValueKind.parseCPUList(values["cpus"] ?? "") ?? [],
                         hugetlbfsMount: mount, hasSocat: !(values["socat"] ?? "").isEmpty)
        }
    }

    static let factsScript = """
        echo "arch=$(uname -m)"; echo "home=$HOME"; echo "cpus=$(cat /sys/devices/system/cpu/online)"
        echo "hugetlbfs=$(awk '$3 == "hugetlbfs" { print $2; exit }' /proc/mounts)"
        echo "socat=$(command -v socat)"
        """

    let dut: Dut
    let run: Run
    /// The DUT's SSH connection, or the one ``usableConnection()`` opened after it broke.
    var connection: SSHConnection { link.withLock { $0.connection } }
    private let link: Mutex<(connection: SSHConnection, lastAttempt: ContinuousClock.Instant?)>
    /// The DUT session's connection (closed with the DUT).
    private let original: SSHConnection
    let facts: Facts
    /// The run's directory on the DUT.
    let root: String
    let remoteAllocator: RemoteResourceAllocator
    var allocator: any VMResourceAllocator { remoteAllocator }
    var launchesDaemonized: Bool { true }
    let label: String
    let snapshots: (any SnapshotStore)?
    /// The socket forwards of each VM, and whether ``remove()`` ran.
    private let state = Mutex((forwards: [String: [SSHSocketForward]](), removed: false))

    private init(dut: Dut, salt: String, connection: SSHConnection, facts: Facts, root: String, address: String) {
        self.dut = dut
        self.run = dut.run
        self.link = Mutex((connection: connection, lastAttempt: nil))
        self.original = connection
        self.facts = facts
        self.root = root
        self.label = "DUT [\(dut.name)] at \(dut.address)"
        self.remoteAllocator = RemoteResourceAllocator(root: root, listenAddress: address, hugepageMount: facts.hugetlbfsMount,
                                                       onlineCPUs: facts.onlineCPUs,
                                                       imageDirectory: facts.home + "/.cache/dts/images",
                                                       hostArchitecture: facts.architecture, salt: salt)
        self.snapshots = RemoteSnapshotStore(exec: { argv in try await connection.exec(ShellQuoting.join(argv), timeout: .seconds(300)) },
                                             directory: facts.home + "/.cache/dts/snapshots",
                                             capacity: dut.settings.snapshots.capacity, label: label)
    }

    /// The remote host of `dut`: created (and the run's directory made on the DUT) on first use,
    /// then shared by every VM of the DUT's run there.
    static func host(for dut: Dut) async throws -> RemoteVMHost {
        try await dut.vmHost.host {
            let made = try await make(dut: dut)
            // Torn down after the DUT's VMs (cleanups run newest first).
            await dut.run.register("VM directory \(made.root) on DUT [\(dut.name)]") { await made.remove() }
            return made
        }
    }

    private static func make(dut: Dut) async throws -> RemoteVMHost {
        let run = dut.run
        guard let remote = dut.underlyingSession as? RemoteHostSession else {
            throw ResourceError("DUT [\(dut.name)]: VMs on a remote DUT need its SSH session")
        }
        let connection = remote.connection
        let label = "DUT [\(dut.name)] at \(dut.address)"
        let factsResult = try await connection.exec(factsScript, timeout: .seconds(30))
        let facts = Facts.parse(factsResult.output)
        guard factsResult.succeeded, !facts.home.isEmpty, !facts.architecture.isEmpty else {
            throw ResourceError("\(label): cannot read the DUT's facts (status \(factsResult.status)): \(factsResult.output) \(factsResult.errorOutput)")
        }
        guard facts.hasSocat else {
            throw ResourceError("\(label): socat is missing on the DUT; dts reaches QEMU's QMP and guest-agent sockets there through it (apt-get install socat)")
        }
        guard let address = resolveIPv4(dut.address) else {
            throw ResourceError("\(label): dut_ip \(dut.address) is not an IPv4 address or a name that resolves to one (QEMU binds forwarded ports on it)")
        }
        await cleanStale(on: connection, label: label, run: run)
        let owner = "\(RunDirectory.machineID) \(getpid()) \(ProcessTable.startTime(of: getpid()) ?? 0)"
        let made = try await connection.exec(ShellQuoting.join([
            "sh", "-c", "d=$(mktemp -d /tmp/dts-vms.XXXXXXXX) && printf '%s\\n' \"$1\" > \"$d/owner\" && echo \"$d\"", "sh", owner,
        ]), timeout: .seconds(30))
        let root = made.output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard made.succeeded, root.hasPrefix("/tmp/dts-vms.") else {
            throw ResourceError("\(label): cannot make the run's directory under /tmp: \(made.output) \(made.errorOutput)")
        }
        run.logger.info("VMs on \(label) use \(root) there")
        return RemoteVMHost(dut: dut, salt: try run.directory.id, connection: connection, facts: facts, root: root, address: address)
    }

    /// Kills the QEMUs and removes the directories that runs from this machine left on the DUT
    /// when their dts died (their owner's pid and start time no longer match a live process here).
    /// Only the processes the dead run recorded in its `processes` file (at launch: pid and start
    /// time) are killed, and only while they still run with that start time. A daemonized QEMU
    /// leads its own session, so its whole process group goes.
    static func cleanStale(on connection: SSHConnection, label: String, run: Run) async {
        let listing = try? await connection.exec(
            "for d in /tmp/dts-vms.*; do [ -f \"$d/owner\" ] && echo \"$d $(cat \"$d/owner\")\"; done; true", timeout: .seconds(30))
        for line in (listing?.output ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count == 4, fields[0].hasPrefix("/tmp/dts-vms."), fields[1] == RunDirectory.machineID,
                  let pid = Int32(fields[2]), let start = UInt64(fields[3]) else { continue }
            if ProcessTable.startTime(of: pid) == start { continue } // that run is alive
            let script = "if [ -f \"$1/processes\" ]; then while read -r p s rest; do [ \"$p\" -gt 1 ] 2>/dev/null || continue; "
                + "[ \"$(\(startTimeOfP))\" = \"$s\" ] || continue; "
                + "{ kill -9 -\"$p\" 2>/dev/null || kill -9 \"$p\"; } && echo \"killed $p ($rest)\"; done < \"$1/processes\"; fi; rm -rf -- \"$1\""
            let result = try? await connection.exec(ShellQuoting.join(["sh", "-c", script, "sh", fields[0]]), timeout: .seconds(30))
            run.logger.warning("\(label): removed \(fields[0]) of a dead run from this machine\((result?.output ?? "").isEmpty ? "" : ": " + (result?.output ?? "").replacingOccurrences(of: "\n", with: " "))")
        }
    }

    /// Shell text printing the start time of process `$p` (field 22 of `/proc/$p/stat`, counted
    /// after the command name, which may hold spaces and parentheses), as ``ProcessTable`` reads it.
    static let startTimeOfP = "sed 's/.*) //' /proc/\"$p\"/stat 2>/dev/null | cut -d' ' -f20"

    /// `address` as an IPv4 literal (resolved if it is a name).
    static func resolveIPv4(_ address: String) -> String? {
        var probe = in_addr()
        if inet_pton(AF_INET, address, &probe) == 1 { return address }
        var hints = addrinfo()
        hints.ai_family = AF_INET
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address, nil, &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(result) }
        guard let sockaddr = first.pointee.ai_addr else { return nil }
        var ipv4 = sockaddr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
        var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        guard inet_ntop(AF_INET, &ipv4, &buffer, socklen_t(INET_ADDRSTRLEN)) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs `argv` on the DUT through its (logged) session.
    private func run(_ argv: [String], timeout: Duration = .seconds(30)) async throws -> ExecResult {
        try await dut.session.exec(argv: argv, timeout: timeout)
    }

    // MARK: VMHost

    func execute(_ argv: [String], timeout: Duration) async throws -> ExecResult { try await run(argv, timeout: timeout) }

    func refresh() async throws {
        let result = try await connection.exec("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null; true", timeout: .seconds(30))
        remoteAllocator.setListening(RemoteResourceAllocator.listeningPorts(procNetTCP: result.output))
    }

    func prepare(vm: String, command: QEMUCommandLine) async throws {
        if let taken = command.fixedPorts.first(where: { remoteAllocator.isListening($0.port) }) {
            throw ResourceError(taken.taken(on: "\(label) (\(remoteAllocator.listenAddress))"))
        }
        let dir = command.paths.runtimeDirectory
        let sockets = [command.paths.qmpSocket, command.paths.guestAgentSocket, command.paths.monitorSocket,
                       command.paths.serialSocket, command.paths.pidFile].compactMap { $0 }
        let made = try await run(["sh", "-c", "mkdir -p -m 0700 \"$1\" && shift && rm -f -- \"$@\"", "sh", dir] + sockets)
        guard made.succeeded else { throw ResourceError("\(label): cannot make \(dir): \(made.errorOutput)") }
        try await syncImages(command)
        // One round trip for every file: the script prints the ones it cannot read.
        let files = command.filesQEMUOpens
        if !files.isEmpty {
            let test = try await connection.exec(ShellQuoting.join(["sh", "-c", "for f; do [ -r \"$f\" ] || echo \"$f\"; done", "sh"] + files.map(\.path)),
                                                 timeout: .seconds(30))
            let unreadable = Set(test.output.split(separator: "\n").map(String.init))
            let missing = files.filter { unreadable.contains($0.path) }.map { "\($0.option) \($0.path)" }
            if !missing.isEmpty { throw ResourceError("\(label): no such file on the DUT: \(missing.joined(separator: ", "))") }
        }
        if let mount = command.hugepageMount, let memoryMiB = command.memoryMiB {
            let script = "k=$(($(stat -f -c %S \"$1\") / 1024)); echo \"$k $(cat /sys/kernel/mm/hugepages/hugepages-${k}kB/free_hugepages)\""
            let counts = try await connection.exec(ShellQuoting.join(["sh", "-c", script, "sh", mount]), timeout: .seconds(30))
            let numbers = counts.output.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
            guard counts.succeeded, numbers.count == 2 else {
                throw ResourceError("\(label): cannot read the hugepages of \(mount): \(counts.output) \(counts.errorOutput)")
            }
            try Hugepages.check(memoryMiB: memoryMiB, mount: mount, pageKB: numbers[0], free: numbers[1])
        }
    }

    func probeExecutables(_ paths: [String]) async {
        guard let found = try? await dut.executableFiles(paths) else { return }
        remoteAllocator.learnExecutables(paths, found: found)
    }

    /// Copies the guest image files the command line uses to the DUT when they are missing there
    /// or differ from the local ones (size or modification time, as rsync's quick check).
    private func syncImages(_ command: QEMUCommandLine) async throws {
        let remoteImages = remoteAllocator.imageDirectory
        let localImages = HostFacts.imageDirectory
        for path in command.filesQEMUOpens.map(\.path) where path.hasPrefix(remoteImages + "/") {
            let local = localImages + path.dropFirst(remoteImages.count)
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: local),
                  let size = (attributes[.size] as? NSNumber)?.int64Value,
                  let modified = attributes[.modificationDate] as? Date else { continue }
            let mtime = Int64(modified.timeIntervalSince1970)
            let stat = try await connection.exec(ShellQuoting.join(["stat", "-c", "%s %Y", path]), timeout: .seconds(30))
            if stat.succeeded, stat.output.trimmingCharacters(in: .whitespacesAndNewlines) == "\(size) \(mtime)" { continue }
            run.logger.info("\(label): copying guest image file \(local) to \(path)")
            // A name of its own: VMs starting at once may copy the same file.
            let partial = path + ".partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let parent = (path as NSString).deletingLastPathComponent
            _ = try await run(["mkdir", "-p", parent])
            do {
                try await dut.session.upload(localPath: local, remotePath: partial, mode: 0o644, progress: nil)
                let done = try await run(["sh", "-c", "touch -d \"@$1\" \"$2\" && mv -f \"$2\" \"$3\"", "sh", String(mtime), partial, path])
                guard done.succeeded else { throw ResourceError("\(label): cannot install \(path): \(done.errorOutput)") }
            } catch {
                _ = try? await run(["rm", "-f", "--", partial])
                throw error
            }
        }
    }

    func launch(vm: String, command: QEMUCommandLine, localDirectory: String, timeout: Duration) async throws -> any QEMUProcess {
        let dir = command.paths.runtimeDirectory
        guard let pidFile = command.paths.pidFile else { throw VMStartError.Reason.failed("no pid file configured") }
        // QEMU daemonizes once it is set up; its output goes to files (a daemon holding the
        // channel's pipes would keep the command from ending).
        let script = "cd \"$1\" && shift && exec \"$@\" > qemu.stdout 2> qemu.stderr < /dev/null"
        let result = try await run(["sh", "-c", script, "sh", dir] + command.command, timeout: timeout)
        guard result.succeeded else { throw VMStartError.Reason.qemuExited(status: result.status) }
        // The pid, recorded with its start time in the run's directory there for a later run's
        // stale cleanup (``cleanStale(on:label:run:)``).
        let record = "p=$(cat \"$1\") || exit 1; s=$(\(Self.startTimeOfP)); "
            + "[ -n \"$s\" ] && printf '%s %s %s\\n' \"$p\" \"$s\" \"$3\" >> \"$2/processes\"; echo \"$p\""
        let text = try await connection.exec(ShellQuoting.join(["sh", "-c", record, "sh", pidFile, root, "qemu \(vm)"]), timeout: .seconds(30))
        guard let pid = Int32(text.output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw VMStartError.Reason.failed("QEMU daemonized on the DUT but wrote no pid file \(pidFile)")
        }
        // Each probe is a round trip to the DUT: ask less often than on this machine.
        return DaemonQEMU(pid: pid, host: self, launcher: nil, watchInterval: .milliseconds(500), stopInterval: .milliseconds(200))
    }

    func isAlive(_ pid: Int32) async -> Bool {
        var lastError: (any Error)?
        // A connection that breaks during the probe is reconnected once and the probe asked again.
        for _ in 0..<2 {
            let connection = await usableConnection()
            do {
                return try await connection.exec("kill -0 \(pid)", timeout: .seconds(10)).succeeded
            } catch {
                // A probe that merely failed counts as alive: the stop sequence escalates anyway.
                if await connection.isUsable { return true }
                lastError = error
            }
        }
        // With the DUT unreachable nothing more can be done from here: say so and stop waiting
        // (the next run from this machine on that DUT kills what this one left).
        run.logger.error("\(label): lost the SSH connection; QEMU pid \(pid) may still run there (\(root)): \(lastError.map { "\($0)" } ?? "")")
        return false
    }

    /// The DUT's connection; once it broke (a network blip, a timed-out send), a new one with the
    /// same options, so that QEMU is still watched, stopped and cleaned up there. One attempt per
    /// 5 s at most; the broken connection is returned when the DUT cannot be reached again. QMP and
    /// guest-agent relays of the broken connection are not restored.
    func usableConnection() async -> SSHConnection {
        let current = connection
        if await current.isUsable { return current }
        let now = ContinuousClock.now
        let attempt = link.withLock { link -> Bool in
            guard link.connection === current, link.lastAttempt.map({ now - $0 >= .seconds(5) }) ?? true else { return false }
            link.lastAttempt = now
            return true
        }
        guard attempt else { return connection }
        do {
            let fresh = try await SSHConnection.connect(current.options)
            link.withLock { $0.connection = fresh }
            run.logger.warning("\(label): the SSH connection broke; reconnected to watch and clean up the VMs there")
            return fresh
        } catch {
            run.logger.error("\(label): the SSH connection broke and reconnecting failed: \(error)")
            return current
        }
    }

    /// One round trip: `grep` for the whole file (a console log stays small); `offset` is unused.
    func search(_ path: String, for text: String, from offset: UInt64) async -> (line: String?, next: UInt64) {
        let result = try? await connection.exec(ShellQuoting.join(["grep", "-a", "-m1", "-F", "--", text, path]), timeout: .seconds(10))
        let line = result.flatMap { $0.succeeded ? $0.output.split(separator: "\n").first.map(String.init) : nil }
        return (line, offset)
    }

    func signal(_ pid: Int32, _ signal: Int32) async {
        await runForCleanup(["kill", "-\(signal)", String(pid)], timeout: .seconds(10))
    }

    /// A clean-up command: through the DUT's logged session, or, when that fails (its connection
    /// broke), through ``usableConnection()``.
    private func runForCleanup(_ argv: [String], timeout: Duration) async {
        if (try? await run(argv, timeout: timeout)) == nil {
            _ = try? await usableConnection().exec(argv: argv, timeout: timeout)
        }
    }

    func tail(of path: String) async -> String {
        let result = try? await connection.exec(ShellQuoting.join(["tail", "-n", "20", path]), timeout: .seconds(10))
        return (result?.output ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func reachSocket(_ path: String, vm: String, localDirectory: String) async throws -> String {
        let local = localDirectory + "/" + (path as NSString).lastPathComponent
        let forward = try await connection.forwardUnixSocket(localPath: local, remoteCommand: ShellQuoting.join(["socat", "-", "UNIX-CONNECT:" + path]))
        state.withLock { $0.forwards[vm, default: []].append(forward) }
        return local
    }

    func pin(pid: Int32, thread: Int32, cpu: Int) async throws -> [Int] {
        let result = try await run(["sh", "-c", "taskset -p -c \"$1\" \"$2\" > /dev/null && grep Cpus_allowed_list \"/proc/$3/task/$2/status\"",
                                    "sh", String(cpu), String(thread), String(pid)])
        guard result.succeeded, let colon = result.output.firstIndex(of: ":") else {
            throw ResourceError("\(label): cannot pin thread \(thread) to CPU \(cpu): \(result.output) \(result.errorOutput)")
        }
        return ValueKind.parseCPUList(result.output[result.output.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)) ?? []
    }

    func release(vm: String) { remoteAllocator.release(vm: vm) }

    func finish(vm: String, command: QEMUCommandLine, localDirectory: String) async {
        let open = state.withLock { $0.forwards.removeValue(forKey: vm) ?? [] }
        for forward in open { await forward.close() }
        let dir = command.paths.runtimeDirectory
        let connection = await usableConnection()
        for file in ["console.log", "qemu.stderr", "qemu.stdout"] {
            try? await connection.download(remotePath: dir + "/" + file, localPath: localDirectory + "/" + file)
        }
        await runForCleanup(["rm", "-rf", "--", dir], timeout: .seconds(30))
        remoteAllocator.release(vm: vm)
    }

    /// Removes the run's directory on the DUT (after its VMs stopped). Idempotent. A later VM start
    /// on the DUT in the same run makes a new one.
    func remove() async {
        let first = state.withLock { state -> Bool in defer { state.removed = true }; return !state.removed }
        guard first else { return }
        dut.vmHost.forget()
        let connection = await usableConnection()
        _ = try? await connection.exec(ShellQuoting.join(["rm", "-rf", "--", root]), timeout: .seconds(30))
        // A connection opened after the DUT's own broke is this host's to close.
        if connection !== original { await connection.close() }
    }
}

/// Ports, paths and MACs for VMs on a remote DUT. Ports are picked among those the DUT does not
/// listen on (``setListening(_:)``, from its `/proc/net/tcp`) and this run did not hand out; a
/// port another process takes in between makes QEMU fail to bind, and the start retries with
/// fresh ports.
final class RemoteResourceAllocator: VMResourceAllocator, Sendable {
    let root: String
    let listenAddress: String
    let hugepageMount: String?
    let imageDirectory: String
    let hostArchitecture: String
    /// The DUT's online CPUs: `cpu cpupin=` uses those listed that are online.
    let onlineCPUs: [Int]?
    private let salt: String
    private let ranges = HostResourceAllocator.Ranges()
    /// The ports the DUT listens on, and those handed out per VM.
    private let ports = Mutex((listening: Set<Int>(), held: [String: [Int]]()))
    /// Paths probed on the DUT (``RemoteVMHost/probeExecutables(_:)``): whether each is an executable file.
    private let executables = Mutex<[String: Bool]>([:])

    init(root: String, listenAddress: String, hugepageMount: String?, onlineCPUs: [Int]? = nil, imageDirectory: String,
         hostArchitecture: String, salt: String) {
        self.root = root
        self.listenAddress = listenAddress
        self.onlineCPUs = onlineCPUs
        self.hugepageMount = hugepageMount
        self.imageDirectory = imageDirectory
        self.hostArchitecture = hostArchitecture
        self.salt = salt
    }

    func setListening(_ listening: Set<Int>) { ports.withLock { $0.listening = listening } }

    /// Whether the DUT listened on `port` when last refreshed.
    func isListening(_ port: Int) -> Bool { ports.withLock { $0.listening.contains(port) } }

    /// Records which of `paths` the DUT has as executable files (`found`).
    func learnExecutables(_ paths: [String], found: Set<String>) {
        executables.withLock { known in for path in paths { known[path] = found.contains(path) } }
    }

    /// What the DUT said of `path`; a path never probed counts as there (QEMU's launch tells).
    func isExecutable(path: String) -> Bool { executables.withLock { $0[path] } ?? true }

    /// TCP ports in LISTEN state (`st` 0A) in `/proc/net/tcp` / `tcp6` text.
    static func listeningPorts(procNetTCP text: String) -> Set<Int> {
        var ports: Set<Int> = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 3, fields[3] == "0A", let colon = fields[1].lastIndex(of: ":"),
                  let port = Int(fields[1][fields[1].index(after: colon)...], radix: 16) else { continue }
            ports.insert(port)
        }
        return ports
    }

    func runtimeDirectory(vm: String) -> String { "\(root)/\(vm)" }

    var sharedDirectory: String { root }

    func hostForwardPort(vm: String, guestPort: Int) throws -> Int { try reserve(in: ranges.ssh, vm: vm, what: "SSH forward") }

    func vncDisplay(vm: String) throws -> Int {
        try reserve(in: (5900 + ranges.vncDisplay.lowerBound)...(5900 + ranges.vncDisplay.upperBound), vm: vm, what: "VNC display") - 5900
    }

    func serialPort(vm: String) throws -> Int { try reserve(in: ranges.serial, vm: vm, what: "telnet console") }

    func migrationPort(vm: String) throws -> Int { try reserve(in: ranges.migration, vm: vm, what: "migration") }

    func macAddress(vm: String, index: Int) -> String { MACAddress.derived(vm: vm, index: index, salt: salt) }

    /// Ports handed out for `vm`.
    func ports(of vm: String) -> [Int] { ports.withLock { $0.held[vm] ?? [] } }

    func release(vm: String) { _ = ports.withLock { $0.held.removeValue(forKey: vm) } }

    private func reserve(in range: ClosedRange<Int>, vm: String, what: String) throws -> Int {
        try ports.withLock { ports in
            let taken = ports.listening.union(ports.held.values.joined())
            let start = Int.random(in: 0..<range.count)
            for step in 0..<range.count {
                let port = range.lowerBound + (start + step) % range.count
                if taken.contains(port) { continue }
                ports.held[vm, default: []].append(port)
                return port
            }
            throw ResourceError("no free port on the DUT for the \(what) of \(vm) in \(range.lowerBound)-\(range.upperBound)")
        }
    }
}

/// The remote VM host of a DUT, made on first use.
final class VMHostSlot: Sendable {
    private let made = Mutex<Task<RemoteVMHost, any Error>?>(nil)

    /// The host, made by `make` once (concurrent callers share the first attempt; a failed attempt
    /// is forgotten so a later start tries again).
    func host(make: @escaping @Sendable () async throws -> RemoteVMHost) async throws -> RemoteVMHost {
        let task = made.withLock { made -> Task<RemoteVMHost, any Error> in
            if let made { return made }
            let created = Task { try await make() }
            made = created
            return created
        }
        do {
            return try await task.value
        } catch {
            made.withLock { if $0 == task { $0 = nil } }
            throw error
        }
    }

    /// Drops the host (its directory on the DUT is gone).
    func forget() {
        made.withLock { $0 = nil }
    }
}
