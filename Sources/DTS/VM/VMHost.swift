import DTSProcess
import DTSSession
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The machine a VM's QEMU runs on: this one (``LocalVMHost``), or a remote host DUT reached over
/// SSH (``RemoteVMHost``); the tests' `ScriptedVMHost` runs no QEMU and follows a script.
/// ``VMInstance`` walks the same start and stop steps on all of them; only these differ.
///
/// Paths in a VM's ``QEMUCommandLine`` (sockets, pid file, console log, images) are paths on the
/// host; ``VMInstance`` keeps its own files (argv, QMP and guest-agent transcripts, SSH host keys)
/// in a local directory of the run either way.
protocol VMHost: AnyObject, Sendable {
    /// Reserves ports and names paths on the host.
    var allocator: any VMResourceAllocator { get }
    /// `true` if QEMU must daemonize (a remote host: the launching command returns once QEMU runs).
    var launchesDaemonized: Bool { get }
    /// Where the host is, for messages (`this machine`, `DUT [name] at 10.0.0.2`).
    var label: String { get }

    /// Refreshes what allocations depend on (a remote host's listening ports) before a build.
    func refresh() async throws
    /// Makes the VM's runtime directory, removes stale sockets, and checks what the command line
    /// needs (files, hugepages, CPUs) so a problem is an error now rather than a QEMU failure later.
    func prepare(vm: String, command: QEMUCommandLine) async throws
    /// Starts QEMU. Local: supervised in the foreground (or daemonizing, when asked). Remote: run
    /// daemonized through the DUT's session, known by the pid in its pid file.
    func launch(vm: String, command: QEMUCommandLine, localDirectory: String, timeout: Duration) async throws -> any QEMUProcess
    /// Whether `pid` still runs on the host.
    func isAlive(_ pid: Int32) async -> Bool
    /// Sends `signal` to `pid` on the host.
    func signal(_ pid: Int32, _ signal: Int32) async
    /// The end of a file on the host (QEMU's stderr, the console log), for error messages.
    func tail(of path: String) async -> String
    /// The first line of file `path` on the host that holds `text`, searching from byte `offset`
    /// on, and where the next search may start (the console watch for a kernel panic). Default:
    /// a file on this machine.
    func search(_ path: String, for text: String, from offset: UInt64) async -> (line: String?, next: UInt64)
    /// A path on this machine that reaches the Unix socket `path` on the host (the same path
    /// locally; a forwarded socket in `localDirectory` for a remote host).
    func reachSocket(_ path: String, vm: String, localDirectory: String) async throws -> String
    /// Pins thread `thread` of QEMU `pid` to host CPU `cpu`; returns the CPUs the thread may then run on.
    func pin(pid: Int32, thread: Int32, cpu: Int) async throws -> [Int]
    /// Frees the ports reserved for `vm` (a start that failed before QEMU ran).
    func release(vm: String)
    /// After QEMU stopped: frees the VM's ports, ends forwards, brings the host-side logs into
    /// `localDirectory` and removes the VM's files on the host.
    func finish(vm: String, command: QEMUCommandLine, localDirectory: String) async
    /// Runs an argument vector on the host (`qemu-img`, `cp`, `rm` for disk overlays).
    func execute(_ argv: [String], timeout: Duration) async throws -> ExecResult
    /// The host's snapshot cache (warm boot), or `nil` where VMs always boot cold.
    var snapshots: (any SnapshotStore)? { get }
    /// Learns which of `paths` are executable files on the host, for the allocator's
    /// ``VMResourceAllocator/isExecutable(path:)`` (the emulators `qemu path=` lists). A host
    /// whose allocator looks at files itself does nothing.
    func probeExecutables(_ paths: [String]) async
}

extension VMHost {
    var snapshots: (any SnapshotStore)? { nil }
    func probeExecutables(_ paths: [String]) async {}

    /// Makes `command`'s disk overlays on the host before QEMU starts: each a fresh qcow2 over
    /// its base image, or, for a restore, a copy of the one saved with `snapshot` (never the
    /// saved file itself, which later restores start from too). On failure none is left.
    func makeOverlays(of command: QEMUCommandLine, restoring snapshot: SnapshotEntry?) async throws {
        if let snapshot, snapshot.overlayPaths.count != command.overlays.count {
            throw ResourceError("snapshot \(snapshot.record.key.prefix(12)) holds \(snapshot.overlayPaths.count) disk overlays, the VM has \(command.overlays.count)")
        }
        for (index, overlay) in command.overlays.enumerated() {
            let argv = snapshot.map { ["cp", "--", $0.overlayPaths[index], overlay.path] } ?? overlay.createArgv
            let result: ExecResult
            do { result = try await execute(argv, timeout: .seconds(60)) } catch {
                await removeOverlays(of: command)
                throw error
            }
            guard result.succeeded else {
                await removeOverlays(of: command)
                let output = (result.errorOutput + result.output).trimmingCharacters(in: .whitespacesAndNewlines)
                throw ResourceError("\(label): cannot make the disk overlay \(overlay.path) over \(overlay.base) (\(argv.joined(separator: " "))): \(output)")
            }
        }
    }

    /// Removes `command`'s disk overlays from the host (the VM stopped, or never started).
    func removeOverlays(of command: QEMUCommandLine) async {
        guard !command.overlays.isEmpty else { return }
        _ = try? await execute(["rm", "-f", "--"] + command.overlays.map(\.path), timeout: .seconds(30))
    }
}

/// This machine as the VM host: QEMU is a supervised child of dts (killed with dts), files and
/// sockets are local.
final class LocalVMHost: VMHost {
    let hostAllocator: HostResourceAllocator
    var allocator: any VMResourceAllocator { hostAllocator }
    var launchesDaemonized: Bool { false }
    var label: String { "this host" }
    let snapshots: (any SnapshotStore)?

    /// This machine, with the run's allocator (``Run/allocator``) and snapshot cache.
    init(allocator: HostResourceAllocator, snapshots: SnapshotCache? = nil) {
        hostAllocator = allocator
        self.snapshots = snapshots
    }

    func refresh() async throws {}

    func prepare(vm: String, command: QEMUCommandLine) async throws {
        let address = hostAllocator.listenAddress
        if let taken = command.fixedPorts.first(where: { !HostResourceAllocator.canBind(port: $0.port, address: address) }) {
            throw ResourceError(taken.taken(on: address))
        }
        for path in [command.paths.qmpSocket, command.paths.guestAgentSocket, command.paths.monitorSocket, command.paths.serialSocket, command.paths.pidFile] {
            guard let path else { continue }
            try? FileManager.default.removeItem(atPath: path)
            let parent = (path as NSString).deletingLastPathComponent
            if !FileManager.default.fileExists(atPath: parent) {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            }
        }
        for file in command.filesQEMUOpens where !FileManager.default.fileExists(atPath: file.path) {
            let hint = file.path.hasPrefix(allocator.imageDirectory) ? " (build the guest image: scripts/build-guest-image.sh)" : ""
            throw ResourceError("\(file.option) \(file.path): no such file\(hint)")
        }
        if let mount = command.hugepageMount, let memoryMiB = command.memoryMiB {
            try Hugepages.check(memoryMiB: memoryMiB, mount: mount)
        }
    }

    func launch(vm: String, command: QEMUCommandLine, localDirectory: String, timeout: Duration) async throws -> any QEMUProcess {
        let dir = command.paths.runtimeDirectory
        let process = try ChildProcess.spawn(command.command, stdout: dir + "/qemu.stdout", stderr: dir + "/qemu.stderr",
                                                  dieWithParent: !command.daemonize)
        guard command.daemonize else {
            hostAllocator.run.recordProcess(process.pid, "qemu \(vm)")
            return SupervisedQEMU(process)
        }
        // The launcher exits 0 once QEMU has daemonized; then follow the pid file.
        let status = await process.waitForExit()
        guard status == 0 else { throw VMStartError.Reason.qemuExited(status: status) }
        guard let pidFile = command.paths.pidFile,
              let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw VMStartError.Reason.failed("QEMU daemonized but wrote no pid file")
        }
        hostAllocator.run.recordProcess(pid, "qemu \(vm) (daemon)")
        return DaemonQEMU(pid: pid, host: self, launcher: process, watchInterval: .milliseconds(50), stopInterval: .milliseconds(50))
    }

    func isAlive(_ pid: Int32) async -> Bool { ProcessTable.isAlive(pid) }

    func execute(_ argv: [String], timeout: Duration) async throws -> ExecResult {
        try await LocalSession(endpoint: "localhost").exec(argv: argv, timeout: timeout)
    }

    func signal(_ pid: Int32, _ signal: Int32) async { kill(pid, signal) }

    func tail(of path: String) async -> String { DTS.tail(of: path) }

    func reachSocket(_ path: String, vm: String, localDirectory: String) async throws -> String { path }

    func pin(pid: Int32, thread: Int32, cpu: Int) async throws -> [Int] {
        try CPUAffinity.pin(thread: thread, to: cpu)
        return CPUAffinity.allowedList(pid: pid, thread: thread)
    }

    func release(vm: String) { hostAllocator.release(vm: vm) }

    func finish(vm: String, command: QEMUCommandLine, localDirectory: String) async {
        for path in [command.paths.qmpSocket, command.paths.guestAgentSocket, command.paths.monitorSocket,
                     command.paths.serialSocket, command.paths.pidFile] {
            if let path { try? FileManager.default.removeItem(atPath: path) }
        }
        hostAllocator.release(vm: vm)
    }
}

extension QEMUCommandLine.FixedPort {
    /// Why a start stops when this port is taken on `host`.
    func taken(on host: String) -> String {
        "port \(port) (\(what), fixed by '\(param)' at \(location)) is taken on \(host): free it, or leave the port to dts "
            + "(it then picks a free one); fresh ports cannot help with a port the config fixes"
    }
}
