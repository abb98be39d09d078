@testable import DTS
import DTSProcess
import DTSSession
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A ``VMHost`` that runs no QEMU: it follows a script, so that the lifecycle's decisions (port
/// clash retries, the stop escalation, the stage-error mapping) are tested in milliseconds.
///
/// A launch writes the scripted `qemu.stderr` and `console.log` into the VM's runtime directory
/// and either "exits" at once (a port clash) or starts a QMP monitor and, when the command line
/// has one, a guest agent: real unix sockets speaking QMP's framing (``JSONLinePeer``), which the
/// lifecycle reaches with its real clients. What the lifecycle asks for is recorded in ``events``.
final class ScriptedVMHost: VMHost, Sendable {
    /// What the scripted QEMU and its guest do.
    struct Script: Sendable {
        /// The first N launches fail as if QEMU could not bind a forwarded port.
        var portClashes = 0
        /// The launch itself fails with this message (QEMU could not be started).
        var launchFailure: String?
        /// The guest agent answers `guest-sync-delimited` and `guest-ping`.
        var agentAnswers = true
        /// The guest agent reports the management interface with an address.
        var managementAddress = true
        /// vCPUs `query-cpus-fast` reports.
        var vcpus = 1
        /// What makes QEMU exit when the lifecycle stops it (SIGKILL always does); by default,
        /// as a real QEMU, each of them.
        var exitsOn: Set<StopRequest> = Set(StopRequest.allCases)
        /// QEMU's standard error, and the console, for error messages.
        var stderr = "qemu-system-x86_64: scripted QEMU"
        var console = "scripted console line"
    }

    /// What stopping asks of QEMU.
    enum StopRequest: String, Sendable, CaseIterable {
        case agentShutdown = "guest-shutdown"
        case qmpQuit = "quit"
        case sigterm = "SIGTERM"
    }

    let script: Script
    let staticAllocator: StaticAllocator
    var allocator: any VMResourceAllocator { staticAllocator }
    var launchesDaemonized: Bool { false }
    var label: String { "a scripted host" }

    private struct State {
        var log: [String] = []
        var launches: [QEMUCommandLine] = []
        var peers: [JSONLinePeer] = []
        var current: ScriptedQEMU?
    }
    private let state = Mutex(State())
    /// The QEMU launched last.
    var current: ScriptedQEMU? { state.withLock { $0.current } }

    /// A host whose VMs' runtime directories are `<runDirectory>/<vm>`, as on this machine.
    init(_ script: Script, runDirectory: String) {
        self.script = script
        staticAllocator = StaticAllocator(runtimeRoot: runDirectory, hugepageMount: nil)
    }

    /// What the lifecycle did, in order: `launch 1 (ssh 6000)`, `guest-shutdown`, `quit`, `SIGTERM`, `finish`, ...
    var events: [String] { state.withLock { $0.log } }
    func record(_ event: String) { state.withLock { $0.log.append(event) } }

    /// The command lines launched, in order.
    var launchedCommands: [QEMUCommandLine] { state.withLock { $0.launches } }

    func refresh() async throws {}

    func prepare(vm: String, command: QEMUCommandLine) async throws {
        try FileManager.default.createDirectory(atPath: command.paths.runtimeDirectory, withIntermediateDirectories: true)
        for path in [command.paths.qmpSocket, command.paths.guestAgentSocket].compactMap({ $0 }) { unlink(path) }
    }

    func launch(vm: String, command: QEMUCommandLine, localDirectory: String, timeout: Duration) async throws -> any QEMUProcess {
        let attempt = state.withLock { state -> Int in
            state.launches.append(command)
            return state.launches.count
        }
        record("launch \(attempt) (ssh \(command.ports.ssh ?? 0))")
        if let failure = script.launchFailure { throw ScriptError(description: failure) }
        let dir = command.paths.runtimeDirectory
        let clash = attempt <= script.portClashes
        let stderr = clash ? "qemu-system-x86_64: -netdev user,id=mgmt: Could not set up host forwarding rule 'tcp:127.0.0.1:\(command.ports.ssh ?? 0)-:22'\nAddress already in use"
                           : script.stderr
        try (stderr + "\n").write(toFile: dir + "/qemu.stderr", atomically: true, encoding: .utf8)
        try (script.console + "\n").write(toFile: command.paths.consoleLog, atomically: true, encoding: .utf8)
        let qemu = ScriptedQEMU(pid: 40_000 + Int32(attempt), host: self)
        state.withLock { $0.current = qemu }
        if clash {
            qemu.exit(status: 1)
            return qemu
        }
        var started = [try qmpPeer(command.paths.qmpSocket, qemu: qemu)]
        if let socket = command.paths.guestAgentSocket { started.append(try agentPeer(socket, qemu: qemu)) }
        state.withLock { $0.peers += started }
        return qemu
    }

    func isAlive(_ pid: Int32) async -> Bool { current.map { $0.pid == pid && $0.running } ?? false }

    func signal(_ pid: Int32, _ signal: Int32) async { await current?.signal(signal) }

    func tail(of path: String) async -> String { DTS.tail(of: path) }

    func reachSocket(_ path: String, vm: String, localDirectory: String) async throws -> String { path }

    func pin(pid: Int32, thread: Int32, cpu: Int) async throws -> [Int] {
        record("pin \(thread) to \(cpu)")
        return [cpu]
    }

    func release(vm: String) {}

    func execute(_ argv: [String], timeout: Duration) async throws -> ExecResult {
        try await LocalSession(endpoint: "localhost").exec(argv: argv, timeout: timeout)
    }

    func finish(vm: String, command: QEMUCommandLine, localDirectory: String) async {
        closePeers()
        record("finish")
    }

    /// Closes the scripted QMP monitor and guest agent (QEMU exited).
    func closePeers() {
        let open = state.withLock { state -> [JSONLinePeer] in defer { state.peers = [] }; return state.peers }
        for peer in open { peer.close() }
    }

    // MARK: The scripted monitor and agent

    private func qmpPeer(_ path: String, qemu: ScriptedQEMU) throws -> JSONLinePeer {
        let greeting: [String: Any] = ["QMP": ["version": ["qemu": ["major": 7, "minor": 2, "micro": 0], "package": "scripted"], "capabilities": []]]
        let vcpus = script.vcpus, exitsOnQuit = script.exitsOn.contains(.qmpQuit)
        return try JSONLinePeer(path: path, greeting: greeting) { [weak self] request in
            let command = request["execute"] as? String ?? ""
            switch command {
            case "query-cpus-fast":
                return JSONLinePeer.reply(request, (0..<vcpus).map { index -> [String: Any] in
                    ["cpu-index": index, "thread-id": 50_000 + index, "qom-path": "/machine/unattached/device[\(index)]", "target": "x86_64", "props": [:] as [String: Any]]
                })
            case "quit":
                self?.record("quit")
                // QEMU exits; its sockets close once the answer is out.
                if exitsOnQuit { qemu.exit(status: 0, closingSocketsAfter: .milliseconds(10)) }
                return JSONLinePeer.reply(request)
            default:
                return JSONLinePeer.reply(request)
            }
        }
    }

    private func agentPeer(_ path: String, qemu: ScriptedQEMU) throws -> JSONLinePeer {
        let answers = script.agentAnswers, address = script.managementAddress, exitsOnShutdown = script.exitsOn.contains(.agentShutdown)
        return try JSONLinePeer(path: path) { [weak self] request in
            guard answers else { return nil }
            switch request["execute"] as? String ?? "" {
            case "guest-sync-delimited":
                let id = (request["arguments"] as? [String: Any])?["id"] ?? 0
                return [0xFF] + JSONLinePeer.line(["return": id])
            case "guest-network-get-interfaces":
                var interfaces: [[String: Any]] = [["name": "lo", "ip-addresses": [["ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8]]]]
                if address {
                    interfaces.append(["name": "host_connect", "hardware-address": "52:54:00:12:34:56",
                                       "ip-addresses": [["ip-address-type": "ipv4", "ip-address": "10.0.2.15", "prefix": 24]]])
                }
                return JSONLinePeer.reply(request, interfaces)
            case "guest-shutdown":
                // No reply on success, as the real agent.
                self?.record("guest-shutdown")
                if exitsOnShutdown { qemu.exit(status: 0) }
                return nil
            default:
                return JSONLinePeer.reply(request)
            }
        }
    }

    struct ScriptError: Error, CustomStringConvertible {
        var description: String
    }
}

/// The scripted QEMU process: runs until the script (or the test) makes it exit.
final class ScriptedQEMU: QEMUProcess, @unchecked Sendable {
    let pid: Int32
    private weak var host: ScriptedVMHost?
    /// The exit status, set before the sockets close; ``exited`` gets it after.
    private let status = Mutex<Int32?>(nil)
    private let exited = Latch<Int32>()

    init(pid: Int32, host: ScriptedVMHost) {
        self.pid = pid
        self.host = host
    }

    var localProcess: ChildProcess? { nil }
    var running: Bool { status.withLock { $0 == nil } }

    /// QEMU exits with `status` (once), and its QMP and guest-agent sockets close: at once, or
    /// after `delay` (so that an answer being sent goes out first).
    func exit(status code: Int32, closingSocketsAfter delay: Duration? = nil) {
        let first = status.withLock { status -> Bool in
            guard status == nil else { return false }
            status = code
            return true
        }
        guard first else { return }
        if let delay {
            Task { [host] in
                try? await Task.sleep(for: delay)
                host?.closePeers()
            }
        } else {
            host?.closePeers()
        }
        exited.set(code)
    }

    func waitUntilListening(qmpSocket path: String) async throws {
        if let status = status.withLock({ $0 }) { throw VMStartError.Reason.qemuExited(status: status) }
    }

    func isRunning() async -> Bool { running }

    func waitForExit() async -> Int32? { await exited.wait(timeout: nil) }

    func waitForExit(within timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while running, ContinuousClock.now < deadline, !Task.isCancelled { try? await Task.sleep(for: .milliseconds(5)) }
        return !running
    }

    func signal(_ signal: Int32) async {
        guard running else { return }
        host?.record(signal == SIGKILL ? "SIGKILL" : signal == SIGTERM ? "SIGTERM" : "signal \(signal)")
        if signal == SIGKILL || (signal == SIGTERM && host?.script.exitsOn.contains(.sigterm) == true) {
            exit(status: 128 + signal)
        }
    }
}
