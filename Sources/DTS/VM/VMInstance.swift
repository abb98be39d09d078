import DTSControl
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
public final class VMInstance: @unchecked Sendable {
    /// The command line it runs.
    public let command: QEMUCommandLine
    /// The VM DUT.
    public private(set) var dut: VirtDut?
    /// QEMU's pid.
    public var pid: Int32 { daemonPID ?? process.pid }
    /// Stage timings of the start.
    public private(set) var stageEvents: [VMStageEvent] = []
    /// Where the VM's logs are now.
    public private(set) var logDirectory: String

    let vmName: String
    let context: RunContext
    let process: SupervisedProcess
    var daemonPID: Int32?
    var qmp: QMPClient?
    var guestAgent: GuestAgentClient?
    let options: VMStartOptions
    let started = ContinuousClock.now
    private let lock = NSLock()
    private var stopped = false
    private var cleanupID: Int?
    /// Called once when the VM has stopped (unregisters run-level cleanups).
    var onStop: (@Sendable () async -> Void)?

    private init(vmName: String, command: QEMUCommandLine, process: SupervisedProcess, context: RunContext, options: VMStartOptions) {
        self.vmName = vmName
        self.command = command
        self.process = process
        self.context = context
        self.options = options
        self.logDirectory = command.paths.runtimeDirectory
    }

    var vmDirectory: String { command.paths.runtimeDirectory }
    var stderrPath: String { vmDirectory + "/qemu.stderr" }

    // MARK: Start

    /// Builds the command line, starts QEMU and walks the readiness stages.
    static func launch(vmName: String, params: [VirtParam], accelerator: Accelerator?, options: VMStartOptions) async throws -> VMInstance {
        let context = try options.context ?? RunContext.shared()
        var attempt = 0
        while true {
            let command: QEMUCommandLine
            do {
                command = try prepare(vmName: vmName, params: params, accelerator: accelerator, context: context)
            } catch {
                context.allocator.release(vm: vmName)
                throw VMStartError(vm: vmName, stage: .prepare, reason: .failed("\(error)"), elapsed: 0,
                                   qemuStderr: "", consoleTail: "", logDirectory: context.run.vmPath(vmName))
            }
            let dir = command.paths.runtimeDirectory
            let process: SupervisedProcess
            do {
                try (command.command.joined(separator: "\n") + "\n").write(toFile: dir + "/argv", atomically: true, encoding: .utf8)
                process = try SupervisedProcess.spawn(command.command, stdout: dir + "/qemu.stdout", stderr: dir + "/qemu.stderr",
                                                      dieWithParent: !command.daemonize)
            } catch {
                context.allocator.release(vm: vmName)
                throw VMStartError(vm: vmName, stage: .spawn, reason: .failed("\(error)"), elapsed: 0,
                                   qemuStderr: "", consoleTail: "", logDirectory: dir)
            }
            let instance = VMInstance(vmName: vmName, command: command, process: process, context: context, options: options)
            instance.cleanupID = context.register("VM \(vmName) (pid \(process.pid))") { [weak instance] in await instance?.stop() }
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

    /// Builds the command line with real resources and checks what can be checked before QEMU runs.
    static func prepare(vmName: String, params: [VirtParam], accelerator: Accelerator?, context: RunContext) throws -> QEMUCommandLine {
        let command = try QEMUCommandLineBuilder.build(vmName: vmName, params: params, accelerator: accelerator, allocator: context.allocator)
        let dir = try context.run.vmDirectory(vmName)
        for path in [command.paths.qmpSocket, command.paths.guestAgentSocket, command.paths.monitorSocket, command.paths.serialSocket, command.paths.pidFile] {
            guard let path else { continue }
            try? FileManager.default.removeItem(atPath: path)
            let parent = (path as NSString).deletingLastPathComponent
            if !FileManager.default.fileExists(atPath: parent) {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            }
        }
        _ = dir
        // Files QEMU will open: a missing one is an error now, not a cryptic QEMU failure later.
        let argv = command.argv
        for (index, arg) in argv.enumerated() where ["-kernel", "-initrd"].contains(arg) && index + 1 < argv.count {
            guard FileManager.default.fileExists(atPath: argv[index + 1]) else {
                let hint = argv[index + 1].hasPrefix(context.allocator.imageDirectory) ? " (build the guest image: scripts/build-guest-image.sh)" : ""
                throw ResourceError("\(arg) \(argv[index + 1]): no such file\(hint)")
            }
        }
        for (index, arg) in argv.enumerated() where arg == "-drive" && index + 1 < argv.count {
            if let file = argv[index + 1].split(separator: ",").first(where: { $0.hasPrefix("file=") })?.dropFirst(5),
               !FileManager.default.fileExists(atPath: String(file)) {
                throw ResourceError("disk file \(file): no such file")
            }
        }
        if let backend = argv.first(where: { $0.hasPrefix("memory-backend-file,") }),
           let mount = backend.split(separator: ",").first(where: { $0.hasPrefix("mem-path=") })?.dropFirst(9),
           let memory = params.last(where: { $0.name == "mem" })?.entries.last?["size"].flatMap(ValueKind.parseSizeMiB) {
            try Hugepages.check(memoryMiB: memory, mount: String(mount))
        }
        if !command.cpuPinning.isEmpty {
            let online = HostFacts.onlineCPUs()
            let missing = command.cpuPinning.filter { !online.contains($0) }
            if !missing.isEmpty {
                throw ResourceError("cpu cpupin names host CPU \(missing.map(String.init).joined(separator: ",")) but this host has CPUs \(online.map(String.init).joined(separator: ","))")
            }
        }
        return command
    }

    /// The readiness stages, each racing its deadline and QEMU's exit.
    func bringUp() async throws {
        let factor = context.timeoutFactor
        let start = command.start
        let waitDeadline = Duration.seconds(start.waitSeconds).scaled(factor)

        try await stage(.spawn, .seconds(10).scaled(factor)) { [self] in
            if command.daemonize {
                // The launcher exits 0 once QEMU has daemonized; then follow the pid file.
                let status = await process.waitForExit()
                guard status == 0 else { throw VMStartError.Reason.qemuExited(status: status) }
                guard let pidFile = command.paths.pidFile,
                      let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
                      let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                    throw VMStartError.Reason.failed("QEMU daemonized but wrote no pid file")
                }
                lock.withLock { daemonPID = pid }
            } else {
                // Alive once its QMP socket exists (QEMU creates it before the machine starts).
                while !FileManager.default.fileExists(atPath: command.paths.qmpSocket) {
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
        }

        let transcript = try? TranscriptFile(path: vmDirectory + "/qmp.log")
        let qmp = try await stage(.qmp, .seconds(15).scaled(factor)) { [command] in
            try await QMPClient.connect(path: command.paths.qmpSocket, timeout: .seconds(15).scaled(factor), transcript: transcript?.sink)
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
        if let socket = command.paths.guestAgentSocket {
            let qgaTranscript = try? TranscriptFile(path: vmDirectory + "/qga.log")
            agent = try await stage(.guestAgent, waitDeadline) {
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
                               qemuStderr: "", consoleTail: "", logDirectory: vmDirectory)
        }
        guard let login = command.login else {
            throw VMStartError(vm: vmName, stage: .ssh, reason: .failed("no login configured: add 'login = user=...,password=...;' to the VM's section"),
                               elapsed: elapsed, qemuStderr: "", consoleTail: "", logDirectory: vmDirectory)
        }
        let sshOptions = SSHConnectOptions(
            host: address, port: port, user: login.user,
            authentication: .password(login.password ?? ""),
            hostKeyPolicy: .perInstance(directory: vmDirectory, instanceID: "\(vmName)-\(process.pid)"),
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
                               elapsed: elapsed, qemuStderr: "", consoleTail: "", logDirectory: vmDirectory)
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
            let host = command.cpuPinning[cpu.cpuIndex]
            try CPUAffinity.pin(thread: Int32(cpu.threadID), to: host)
            let allowed = CPUAffinity.allowedList(pid: pid, thread: Int32(cpu.threadID))
            guard allowed == [host] else {
                throw VMStartError.Reason.failed("vCPU \(cpu.cpuIndex) (thread \(cpu.threadID)) allowed on \(allowed), wanted \(host)")
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
        let watched = process
        let daemon = lock.withLock { daemonPID }
        let exited: @Sendable () async -> Int32? = {
            if let daemon {
                while ProcessIdentity.isAlive(daemon), !Task.isCancelled { try? await Task.sleep(for: .milliseconds(50)) }
                return Task.isCancelled ? nil : 0
            }
            return await watched.waitForExit()
        }
        do {
            let never: @Sendable () async -> Int32? = { nil }
            let value = try await race(deadline: deadline, exited: stage == .spawn && command.daemonize ? never : exited, body)
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
                               qemuStderr: tail(of: stderrPath), consoleTail: tail(of: command.paths.consoleLog),
                               logDirectory: vmDirectory)
        }
    }

    // MARK: Stop

    /// Waits until QEMU exits (by itself, or stopped); returns its status (0 for a daemon).
    public func waitForExit() async -> Int32 {
        if let daemon = lock.withLock({ daemonPID }) {
            while ProcessIdentity.isAlive(daemon), !Task.isCancelled { try? await Task.sleep(for: .milliseconds(100)) }
            return 0
        }
        return await process.waitForExit()
    }

    /// Stops the VM and leaves nothing behind: guest-agent shutdown (bounded), QMP `quit`,
    /// SIGTERM, SIGKILL; then sockets, pid file and reserved ports are freed and the logs moved
    /// to the log directory. Idempotent; safe after a crash.
    public func stop() async {
        let already = lock.withLock { () -> Bool in defer { stopped = true }; return stopped }
        guard !already else { return }
        let factor = context.timeoutFactor
        let (dut, qmp, agent, daemon) = lock.withLock { (self.dut, self.qmp, self.guestAgent, self.daemonPID) }
        await dut?.close()

        func exitedWithin(_ timeout: Duration) async -> Bool {
            if let daemon {
                let deadline = ContinuousClock.now + timeout
                while ProcessIdentity.isAlive(daemon), ContinuousClock.now < deadline, !Task.isCancelled { try? await Task.sleep(for: .milliseconds(50)) }
                return !ProcessIdentity.isAlive(daemon)
            }
            return await process.waitForExit(timeout: timeout) != nil
        }

        var gone = daemon == nil ? !process.isRunning : !ProcessIdentity.isAlive(daemon!)
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
            if let daemon {
                kill(daemon, SIGTERM)
                if !(await exitedWithin(.seconds(3))) { kill(daemon, SIGKILL); _ = await exitedWithin(.seconds(5)) }
            } else {
                await process.terminate(grace: .seconds(3))
            }
        }
        if daemon != nil { _ = await process.waitForExit(timeout: .seconds(1)) }

        // Nothing stale: sockets and pid file go; the logs move out if asked.
        for path in [command.paths.qmpSocket, command.paths.guestAgentSocket, command.paths.monitorSocket,
                     command.paths.serialSocket, command.paths.pidFile] {
            if let path { try? FileManager.default.removeItem(atPath: path) }
        }
        context.allocator.release(vm: vmName)
        if let target = options.logDirectory {
            try? FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            let files = (try? FileManager.default.contentsOfDirectory(atPath: vmDirectory)) ?? []
            for file in files {
                try? FileManager.default.removeItem(atPath: "\(target)/\(file)")
                try? FileManager.default.moveItem(atPath: "\(vmDirectory)/\(file)", toPath: "\(target)/\(file)")
            }
            try? FileManager.default.removeItem(atPath: vmDirectory)
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
