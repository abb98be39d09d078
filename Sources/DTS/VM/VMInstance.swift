import DTSControl
import DTSProcess
import DTSSSH
import Foundation
import Logging
import CSystemShims
#if canImport(Glibc)
import Glibc
#endif

/// How to start a VM.
public struct VMStartOptions: Sendable {
    /// The run the VM belongs to (default: the process-wide run).
    public var context: RunContext?
    /// Where the VM's logs (console, QEMU stderr, QMP transcript, argv) end up after it stops.
    /// `nil` keeps them in the VM's runtime directory, which goes away with the run.
    public var logDirectory: String?
    /// Called for every stage start and end (progress lines, the report's boot timeline).
    public var onStage: (@Sendable (VMStageEvent) -> Void)?
    /// Retries with fresh ports when QEMU cannot bind one that looked free.
    public var portRetries: Int = 2
    /// Where the VM DUT's commands and outputs are logged (the host DUT's case logs by default).
    public var sessionLog: (any SessionLogSink)?

    public init(context: RunContext? = nil, logDirectory: String? = nil,
                onStage: (@Sendable (VMStageEvent) -> Void)? = nil) {
        self.context = context
        self.logDirectory = logDirectory
        self.onStage = onStage
    }
}

/// A running VM: its QEMU process and the channels to it. Created by ``QEMUKvm/start(_:)``.
///
/// QEMU runs on a ``VMHost``: this machine, or a remote host DUT reached over SSH. The VM's own
/// local files (argv, QMP and guest-agent transcripts, the guest's SSH host key) are in
/// ``localDirectory`` either way; on this machine that is also QEMU's runtime directory.
public final class VMInstance: @unchecked Sendable {
    /// The command line it runs.
    public let command: QEMUCommandLine
    /// The VM DUT.
    public private(set) var dut: VirtDut?
    /// QEMU's pid (on the VM's host), 0 before QEMU started.
    public var pid: Int32 {
        lock.withLock {
            switch launched {
            case .supervised(let process): return process.pid
            case .daemon(let pid, _): return pid
            case nil: return 0
            }
        }
    }
    /// The supervised QEMU, or the launcher of a daemonized one started on this machine.
    public var process: ChildProcess? {
        lock.withLock {
            switch launched {
            case .supervised(let process): return process
            case .daemon(_, let launcher): return launcher
            case nil: return nil
            }
        }
    }
    /// Stage timings of the start.
    public private(set) var stageEvents: [VMStageEvent] = []
    /// Where the VM's logs are now.
    public private(set) var logDirectory: String

    let vmName: String
    let context: RunContext
    let host: any VMHost
    /// The VM's directory on this machine.
    let localDirectory: String
    var launched: QEMULaunch?
    var qmp: QMPClient?
    var guestAgent: GuestAgentClient?
    let options: VMStartOptions
    let started = ContinuousClock.now
    private let lock = NSLock()
    private var stopped = false
    private var cleanupID: Int?
    /// Called once when the VM has stopped (unregisters run-level cleanups).
    var onStop: (@Sendable () async -> Void)?

    private init(vmName: String, command: QEMUCommandLine, host: any VMHost, localDirectory: String, context: RunContext, options: VMStartOptions) {
        self.vmName = vmName
        self.command = command
        self.host = host
        self.localDirectory = localDirectory
        self.context = context
        self.options = options
        self.logDirectory = localDirectory
    }

    /// The last `lines` lines of one of the VM's log files (`qemu.stderr`, `console.log`, `qmp.log`)
    /// in ``logDirectory``; empty if it cannot be read. After ``stop()`` a remote VM's logs are here too.
    public func logTail(_ file: String, lines: Int = 20) -> String {
        tail(of: logDirectory + "/" + file, lines: lines)
    }

    /// QEMU's runtime directory on the VM's host.
    var vmDirectory: String { command.paths.runtimeDirectory }
    var stderrPath: String { vmDirectory + "/qemu.stderr" }

    // MARK: Start

    /// Builds the command line, starts QEMU on `host` (this machine when `nil`) and walks the readiness stages.
    static func launch(vmName: String, params: [VirtParam], accelerator: Accelerator?, options: VMStartOptions,
                       host: (any VMHost)? = nil) async throws -> VMInstance {
        let context = try options.context ?? RunContext.shared()
        let host = host ?? LocalVMHost(context: context)
        var params = params
        if host.launchesDaemonized, !(params.last(where: { $0.name == "daemon" })?.entries.last?.bool("enable") ?? false) {
            // QEMU on a remote DUT daemonizes: the launching command returns once it runs.
            let location = SourceLocation.builtIn("remote DUT launch", section: vmName)
            params.append(VirtParam(name: "daemon", entries: [VirtEntry([("enable", "yes")], location: location)], location: location))
        }
        var attempt = 0
        while true {
            let command: QEMUCommandLine
            let localDirectory: String
            do {
                localDirectory = try context.run.vmDirectory(vmName)
                try await host.refresh()
                command = try QEMUCommandLineBuilder.build(vmName: vmName, params: params, accelerator: accelerator, allocator: host.allocator)
                let memory = params.last(where: { $0.name == "mem" })?.entries.last?["size"].flatMap(ValueKind.parseSizeMiB)
                try await host.prepare(vm: vmName, command: command, memoryMiB: memory)
                try (command.command.joined(separator: "\n") + "\n").write(toFile: localDirectory + "/argv", atomically: true, encoding: .utf8)
            } catch {
                host.release(vm: vmName)
                throw VMStartError(vm: vmName, stage: .prepare, reason: .failed("\(error)"), elapsed: 0,
                                   qemuStderr: "", consoleTail: "", logDirectory: context.run.vmPath(vmName))
            }
            let instance = VMInstance(vmName: vmName, command: command, host: host, localDirectory: localDirectory, context: context, options: options)
            instance.cleanupID = context.register("VM \(vmName) on \(host.label)") { [weak instance] in await instance?.stop() }
            do {
                try await instance.bringUp()
                return instance
            } catch let error as VMStartError {
                let portClash = error.qemuStderr.contains("Could not set up host forwarding rule")
                    || error.qemuStderr.contains("Address already in use")
                await instance.stop()
                if portClash, attempt < options.portRetries, error.stage == .spawn || error.stage == .qmp {
                    attempt += 1
                    context.logger.warning("VM \(vmName): a port was taken after all; retrying with new ports (\(attempt))")
                    continue
                }
                var moved = error
                moved.logDirectory = instance.logDirectory
                throw moved
            }
        }
    }

    /// The readiness stages, each racing its deadline and QEMU's exit.
    func bringUp() async throws {
        let factor = context.timeoutFactor
        let start = command.start
        let waitDeadline = Duration.seconds(start.waitSeconds).scaled(factor)

        // A remote launch runs QEMU's whole set-up before the command returns: allow for the round trips.
        try await stage(.spawn, (host.launchesDaemonized ? Duration.seconds(60) : .seconds(10)).scaled(factor)) { [self] in
            let started = try await host.launch(vm: vmName, command: command, localDirectory: localDirectory,
                                                timeout: Duration.seconds(60).scaled(factor))
            lock.withLock { launched = started }
            if case .supervised(let process) = started {
                // Alive once its QMP socket exists (QEMU creates it before the machine starts).
                while !FileManager.default.fileExists(atPath: command.paths.qmpSocket) {
                    if let status = process.exitStatus { throw VMStartError.Reason.qemuExited(status: status) }
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
        }

        let transcript = try? TranscriptFile(path: localDirectory + "/qmp.log")
        let qmp = try await stage(.qmp, .seconds(15).scaled(factor)) { [command, host, vmName, localDirectory] in
            let path = try await host.reachSocket(command.paths.qmpSocket, vm: vmName, localDirectory: localDirectory)
            return try await QMPClient.connect(path: path, timeout: .seconds(15).scaled(factor), transcript: transcript?.sink)
        }
        lock.withLock { self.qmp = qmp }

        if command.startsPaused {
            try await stage(.pinning, .seconds(10).scaled(factor)) { [self] in
                if !command.cpuPinning.isEmpty { try await pinVCPUs(qmp) }
                try await qmp.cont()
            }
        } else {
            skip(.pinning)
        }

        var agent: GuestAgentClient?
        if let remoteSocket = command.paths.guestAgentSocket {
            let qgaTranscript = try? TranscriptFile(path: localDirectory + "/qga.log")
            agent = try await stage(.guestAgent, waitDeadline) { [host, vmName, localDirectory] in
                let socket = try await host.reachSocket(remoteSocket, vm: vmName, localDirectory: localDirectory)
                while true {
                    do {
                        // Short attempts: a sync sent before the agent runs gets no answer, and
                        // waiting long for it would only delay noticing that the agent is up.
                        let client = try await GuestAgentClient.connect(path: socket, timeout: .milliseconds(500), transcript: qgaTranscript?.sink)
                        try await client.ping(timeout: .seconds(2))
                        return client
                    } catch {
                        try Task.checkCancellation()
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
            }
            lock.withLock { self.guestAgent = agent }
            let agentClient = agent!
            try await stage(.managementAddress, waitDeadline) {
                while true {
                    if let interfaces = try? await agentClient.networkInterfaces(timeout: .seconds(5)),
                       interfaces.contains(where: Self.isManagementUp) {
                        return
                    }
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
        } else {
            skip(.guestAgent)
            skip(.managementAddress)
        }

        guard let port = command.ports.ssh, let address = command.ports.sshAddress else {
            throw VMStartError(vm: vmName, stage: .ssh, reason: .failed("no SSH forward configured"), elapsed: elapsed,
                               qemuStderr: "", consoleTail: "", logDirectory: localDirectory)
        }
        guard let login = command.login else {
            throw VMStartError(vm: vmName, stage: .ssh, reason: .failed("no login configured: add 'login = user=...,password=...;' to the VM's section"),
                               elapsed: elapsed, qemuStderr: "", consoleTail: "", logDirectory: localDirectory)
        }
        let sshOptions = SSHConnectOptions(
            host: address, port: port, user: login.user,
            authentication: .password(login.password ?? ""),
            hostKeyPolicy: .perInstance(directory: localDirectory, instanceID: "\(vmName)-\(pid)"),
            connectTimeout: .seconds(5).scaled(factor), logger: context.logger)
        let ssh = try await stage(.ssh, Duration.seconds(start.loginTimeout).scaled(factor)) {
            while true {
                do {
                    return try await SSHConnection.connect(sshOptions)
                } catch let error as SSHError {
                    if case .authenticationFailed = error { throw error }
                    if case .hostKeyMismatch = error { throw error }
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
        }

        let pciMap = try await stage(.pciMap, .seconds(10).scaled(factor)) { try await qmp.pciMap() }
        for device in command.passthrough where pciMap[device.id] == nil {
            throw VMStartError(vm: vmName, stage: .pciMap, reason: .failed("passthrough device \(device.id) (host \(device.hostAddress)) is not on the guest's PCI bus"),
                               elapsed: elapsed, qemuStderr: "", consoleTail: "", logDirectory: localDirectory)
        }
        lock.withLock {
            dut = VirtDut(vmName: vmName, ssh: ssh, qmp: qmp, guestAgent: agent, pciMap: pciMap, command: command, log: options.sessionLog)
        }
    }

    static func isManagementUp(_ interface: GuestNetworkInterface) -> Bool {
        let ipv4 = interface.addresses.filter { $0.family == .ipv4 }
        if interface.name == "host_connect" { return !ipv4.isEmpty }
        return ipv4.contains { $0.address.hasPrefix("10.0.2.") }
    }

    /// Pins each vCPU thread to its host CPU and checks the kernel agrees.
    func pinVCPUs(_ qmp: QMPClient) async throws {
        let cpus = try await qmp.queryCPUsFast()
        guard cpus.count == command.cpuPinning.count else {
            throw VMStartError.Reason.failed("QEMU has \(cpus.count) vCPUs, cpupin lists \(command.cpuPinning.count)")
        }
        for cpu in cpus {
            let target = command.cpuPinning[cpu.cpuIndex]
            let allowed = try await host.pin(pid: pid, thread: Int32(cpu.threadID), cpu: target)
            guard allowed == [target] else {
                throw VMStartError.Reason.failed("vCPU \(cpu.cpuIndex) (thread \(cpu.threadID)) allowed on \(allowed), wanted \(target)")
            }
        }
    }

    var elapsed: Double { (ContinuousClock.now - started).seconds }

    private func emit(_ stage: VMStage, _ outcome: VMStageEvent.Outcome, duration: Double? = nil) {
        let event = VMStageEvent(vm: vmName, stage: stage, outcome: outcome, at: elapsed, duration: duration)
        lock.withLock { stageEvents.append(event) }
        options.onStage?(event)
    }

    private func skip(_ stage: VMStage) { emit(stage, .skipped) }

    /// Runs one stage: its deadline and QEMU's exit race the work; failures become a ``VMStartError``.
    private func stage<T: Sendable>(_ stage: VMStage, _ deadline: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        emit(stage, .started)
        let begin = ContinuousClock.now
        do {
            let value = try await race(deadline: deadline, exited: exitWatcher(), body)
            emit(stage, .passed, duration: (ContinuousClock.now - begin).seconds)
            return value
        } catch {
            emit(stage, .failed, duration: (ContinuousClock.now - begin).seconds)
            let reason: VMStartError.Reason
            switch error {
            case StageInterruption.timedOut(let d): reason = .timedOut(d)
            case StageInterruption.exited(let status): reason = .qemuExited(status: status)
            case let r as VMStartError.Reason: reason = r
            default: reason = .failed("\(error)")
            }
            // Give QEMU a moment to finish writing why it exited.
            if case .qemuExited = reason { try? await Task.sleep(for: .milliseconds(50)) }
            throw VMStartError(vm: vmName, stage: stage, reason: reason, elapsed: elapsed,
                               qemuStderr: await host.tail(of: stderrPath), consoleTail: await host.tail(of: command.paths.consoleLog),
                               logDirectory: localDirectory)
        }
    }

    /// Returns QEMU's exit status once it exits (0 for a daemon), `nil` if cancelled first. Before
    /// QEMU was launched there is nothing to watch: the launch itself reports a failed start.
    private func exitWatcher() -> @Sendable () async -> Int32? {
        let host = self.host
        switch lock.withLock({ launched }) {
        case nil:
            return { nil }
        case .supervised(let process):
            return { await process.waitForExit() }
        case .daemon(let pid, _):
            let interval: Duration = host.launchesDaemonized ? .milliseconds(500) : .milliseconds(50)
            return {
                while !Task.isCancelled, await host.isAlive(pid) { try? await Task.sleep(for: interval) }
                return Task.isCancelled ? nil : 0
            }
        }
    }

    // MARK: Stop

    /// Waits until QEMU exits (by itself, or stopped); returns its status (0 for a daemon, and
    /// at once if QEMU never started).
    public func waitForExit() async -> Int32 {
        await exitWatcher()() ?? 0
    }

    /// Stops the VM and leaves nothing behind: guest-agent shutdown (bounded), QMP `quit`,
    /// SIGTERM, SIGKILL; then sockets, pid file, forwards and reserved ports are freed, the logs
    /// brought to this machine and moved to the log directory. Idempotent; safe after a crash.
    public func stop() async {
        let already = lock.withLock { () -> Bool in defer { stopped = true }; return stopped }
        guard !already else { return }
        let factor = context.timeoutFactor
        let (dut, qmp, agent, launched) = lock.withLock { (self.dut, self.qmp, self.guestAgent, self.launched) }
        await dut?.close()
        let host = self.host

        func isGone() async -> Bool {
            switch launched {
            case nil: return true
            case .supervised(let process): return !process.isRunning
            case .daemon(let pid, _): return !(await host.isAlive(pid))
            }
        }
        func exitedWithin(_ timeout: Duration) async -> Bool {
            switch launched {
            case nil:
                return true
            case .supervised(let process):
                return await process.waitForExit(timeout: timeout) != nil
            case .daemon(let pid, _):
                let deadline = ContinuousClock.now + timeout
                let interval: Duration = host.launchesDaemonized ? .milliseconds(200) : .milliseconds(50)
                while await host.isAlive(pid) {
                    if ContinuousClock.now >= deadline || Task.isCancelled { return false }
                    try? await Task.sleep(for: interval)
                }
                return true
            }
        }

        var gone = await isGone()
        if !gone, let agent, agent.isConnected {
            if (try? await agent.shutdown(mode: .powerdown)) != nil {
                gone = await exitedWithin(.seconds(10).scaled(factor))
            }
        }
        agent?.close()
        if !gone, let qmp, qmp.isConnected {
            try? await qmp.quit(timeout: .seconds(3))
            gone = await exitedWithin(.seconds(5).scaled(factor))
        }
        qmp?.close()
        if !gone {
            switch launched {
            case .supervised(let process):
                await process.terminate(grace: .seconds(3))
            case .daemon(let pid, _):
                await host.signal(pid, SIGTERM)
                if !(await exitedWithin(.seconds(3))) { await host.signal(pid, SIGKILL); _ = await exitedWithin(.seconds(5)) }
            case nil:
                break
            }
        }
        if case .daemon(_, let launcher?) = launched { _ = await launcher.waitForExit(timeout: .seconds(1)) }

        // Nothing stale: sockets, pid file, forwards and ports go; host-side logs come here.
        await host.finish(vm: vmName, command: command, localDirectory: localDirectory)
        if let target = options.logDirectory {
            try? FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            let files = (try? FileManager.default.contentsOfDirectory(atPath: localDirectory)) ?? []
            for file in files where !file.hasSuffix(".sock") {
                try? FileManager.default.removeItem(atPath: "\(target)/\(file)")
                try? FileManager.default.moveItem(atPath: "\(localDirectory)/\(file)", toPath: "\(target)/\(file)")
            }
            try? FileManager.default.removeItem(atPath: localDirectory)
            lock.withLock { logDirectory = target }
        }
        if let id = cleanupID { context.unregister(id) }
        await onStop?()
    }
}

/// vCPU pinning.
public enum CPUAffinity {
    /// Pins thread `tid` to host CPU `cpu`.
    public static func pin(thread tid: Int32, to cpu: Int) throws {
        guard dts_pin_thread(tid, Int32(cpu)) == 0 else {
            throw ResourceError("cannot pin thread \(tid) to CPU \(cpu): \(String(cString: strerror(errno)))")
        }
    }

    /// The CPUs a thread may run on, from `/proc/<pid>/task/<tid>/status` (`Cpus_allowed_list`).
    public static func allowedList(pid: Int32, thread: Int32) -> [Int] {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) else { return [] }
        return ValueKind.parseCPUList(String(line.dropFirst("Cpus_allowed_list:".count)).trimmingCharacters(in: .whitespaces)) ?? []
    }
}

extension HostFacts {
    /// Online host CPUs (`/sys/devices/system/cpu/online`).
    public static func onlineCPUs() -> [Int] {
        let text = (try? String(contentsOfFile: "/sys/devices/system/cpu/online", encoding: .utf8)) ?? "0"
        return ValueKind.parseCPUList(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? [0]
    }
}
