import DTSControl
import DTSSSH
import Foundation

/// The start steps, one stage each (see ``VMInstance`` for the order).
extension VMInstance {
    /// `spawn`: QEMU launched on the host, and up far enough to be reached (its QMP socket exists;
    /// a daemon has daemonized).
    func spawnQEMU() async throws(VMStartError) {
        try await stage(.spawn, deadlines.spawn) { [self] in
            let qemu = try await host.launch(vm: vmName, command: command, localDirectory: localDirectory, timeout: deadlines.launchCommand)
            // Known before anything else can fail, so that stop() ends it whatever happens next.
            parts { $0.qemu = qemu }
            try await qemu.waitUntilListening(qmpSocket: command.paths.qmpSocket)
        }
    }

    /// `qmp`: the QMP greeting and `qmp_capabilities`; the transcript goes to `qmp.log`.
    func connectQMP() async throws(VMStartError) {
        let transcript = try? TranscriptFile(path: localDirectory + "/qmp.log")
        let qmp = try await stage(.qmp, deadlines.qmp) { [self] in
            let path = try await host.reachSocket(command.paths.qmpSocket, vm: vmName, localDirectory: localDirectory)
            return try await QMPClient.connect(path: path, timeout: deadlines.qmp, transcript: transcript?.sink)
        }
        parts { $0.qmp = qmp }
    }

    /// `pinning`: when QEMU started paused (`-S`), each vCPU thread pinned to its host CPU and
    /// checked, then the guest continued.
    func pinVCPUs() async throws(VMStartError) {
        guard command.startsPaused, let qmp = parts({ $0.qmp }) else { return skip(.pinning) }
        try await stage(.pinning, budgeted(deadlines.pinning)) { [self] in
            if !command.cpuPinning.isEmpty { try await pin(qmp) }
            try await qmp.cont()
        }
    }

    /// `guest-agent`: the agent answers `guest-sync-delimited` and `guest-ping`; the transcript
    /// goes to `qga.log`. Skipped without a guest agent.
    func awaitGuestAgent() async throws(VMStartError) {
        guard let socket = command.paths.guestAgentSocket else { return skip(.guestAgent) }
        let transcript = try? TranscriptFile(path: localDirectory + "/qga.log")
        let agent = try await stage(.guestAgent, budgeted(deadlines.guest)) { [self] in
            let path = try await host.reachSocket(socket, vm: vmName, localDirectory: localDirectory)
            while true {
                do {
                    // Short attempts: a sync sent before the agent runs gets no answer, and
                    // waiting long for it would only delay noticing that the agent is up.
                    let client = try await GuestAgentClient.connect(path: path, timeout: .milliseconds(500), transcript: transcript?.sink)
                    try await client.ping(timeout: .seconds(2))
                    return client
                } catch {
                    try Task.checkCancellation()
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
        }
        parts { $0.guestAgent = agent }
    }

    /// `management-address`: the guest agent reports the management interface with an IPv4
    /// address. Skipped without a guest agent.
    func awaitManagementAddress() async throws(VMStartError) {
        guard let agent = parts({ $0.guestAgent }) else { return skip(.managementAddress) }
        try await stage(.managementAddress, budgeted(deadlines.guest)) {
            while true {
                if let interfaces = try? await agent.networkInterfaces(timeout: .seconds(5)),
                   interfaces.contains(where: Self.isManagementUp) {
                    return
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// `ssh`: a login with the `login` credentials through the forwarded port.
    func loginSSH() async throws(VMStartError) {
        let ssh = try await stage(.ssh, deadlines.login) { [self] in
            guard let port = command.ports.ssh, let address = command.ports.sshAddress else {
                throw VMStartError.Reason.failed("no SSH forward configured")
            }
            guard let login = command.login else {
                throw VMStartError.Reason.failed("no login configured: add 'login = user=...,password=...;' to the VM's section")
            }
            let options = SSHConnectOptions(
                host: address, port: port, user: login.user, authentication: .password(login.password ?? ""),
                hostKeyPolicy: .perInstance(directory: localDirectory, instanceID: "\(vmName)-\(pid)"),
                connectTimeout: deadlines.sshAttempt, logger: run.logger)
            while true {
                do {
                    return try await SSHConnection.connect(options)
                } catch let error as SSHError {
                    if case .authenticationFailed = error { throw error }
                    if case .hostKeyMismatch = error { throw error }
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
        }
        parts { $0.ssh = ssh }
    }

    /// `pci-map`: the guest PCI bus read over QMP; every passthrough device found on it.
    func readPCIMap() async throws(VMStartError) {
        guard let qmp = parts({ $0.qmp }) else { return }
        let pciMap = try await stage(.pciMap, deadlines.pciMap) { [command] in
            let pciMap = try await qmp.pciMap()
            for device in command.passthrough where pciMap[device.id] == nil {
                throw VMStartError.Reason.failed("passthrough device \(device.id) (host \(device.hostAddress)) is not on the guest's PCI bus")
            }
            return pciMap
        }
        parts { $0.pciMap = pciMap }
    }

    /// The VM DUT, from what the steps made.
    func makeVirtDut() {
        parts { state in
            guard let ssh = state.ssh, let qmp = state.qmp, let pciMap = state.pciMap else { return }
            state.dut = VirtDut(vmName: vmName, ssh: ssh, qmp: qmp, guestAgent: state.guestAgent, pciMap: pciMap, command: command,
                                log: options.sessionLog)
        }
    }

    static func isManagementUp(_ interface: GuestNetworkInterface) -> Bool {
        let ipv4 = interface.addresses.filter { $0.family == .ipv4 }
        if interface.name == "host_connect" { return !ipv4.isEmpty }
        return ipv4.contains { $0.address.hasPrefix("10.0.2.") }
    }

    /// Pins each vCPU thread to its host CPU and checks the kernel agrees.
    private func pin(_ qmp: QMPClient) async throws {
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

    // MARK: One stage

    /// Runs one stage: its deadline, QEMU's exit and a guest kernel panic on the console race the
    /// work, and whatever ends it (the deadline, QEMU's exit, a panic, an error) becomes a
    /// ``VMStartError`` naming the stage, with the end of QEMU's stderr and of the console. The one
    /// place a start fails.
    func stage<T: Sendable>(_ stage: VMStage, _ deadline: Duration,
                            _ body: @escaping @Sendable () async throws -> T) async throws(VMStartError) -> T {
        emit(stage, .started)
        let begin = ContinuousClock.now
        do {
            let value = try await race(deadline: deadline, interrupted: interruptionWatcher(), body)
            emit(stage, .passed, duration: (ContinuousClock.now - begin).seconds)
            return value
        } catch {
            emit(stage, .failed, duration: (ContinuousClock.now - begin).seconds)
            var reason: VMStartError.Reason
            switch error {
            case StageInterruption.timedOut(let d): reason = .timedOut(d)
            case StageInterruption.exited(let status): reason = .qemuExited(status: status)
            case StageInterruption.panicked(let line): reason = .guestPanicked(line)
            case let r as VMStartError.Reason: reason = r
            default: reason = .failed("\(error)")
            }
            // A step that failed because QEMU went away (its QMP socket closed as it exited after a
            // failed incoming migration) failed for QEMU's exit: say so, with QEMU's own words.
            if case .failed = reason, let qemu = parts({ $0.qemu }), await qemu.waitForExit(within: .seconds(1)) {
                reason = .qemuExited(status: await qemu.waitForExit() ?? -1)
            }
            // Give QEMU a moment to finish writing why it exited.
            if case .qemuExited = reason { try? await Task.sleep(for: .milliseconds(50)) }
            throw VMStartError(vm: vmName, stage: stage, reason: reason, elapsed: elapsed,
                               qemuStderr: await host.tail(of: command.paths.runtimeDirectory + "/qemu.stderr"),
                               consoleTail: await host.tail(of: command.paths.consoleLog),
                               logDirectory: localDirectory)
        }
    }

    /// Returns what ends a stage besides its work and deadline: QEMU's exit, or a kernel panic on
    /// the guest's console; `nil` if cancelled first. Before QEMU was launched there is nothing to
    /// watch: the launch itself reports a failed start.
    private func interruptionWatcher() -> @Sendable () async -> StageInterruption? {
        guard let qemu = parts({ $0.qemu }) else { return { nil } }
        return { [console, deadlines] in
            switch await firstInterruption(qemu: qemu, console: console, every: deadlines.consoleInterval) {
            case .exited(let status)?: .exited(status)
            case .panicked(let line)?: .panicked(line)
            case nil: nil
            }
        }
    }

    var elapsed: Double { (ContinuousClock.now - started).seconds }

    /// Reports a stage event to the caller and, once a stage ended, to the run's boot timeline.
    private func emit(_ stage: VMStage, _ outcome: VMStageEvent.Outcome, duration: Double? = nil) {
        let event = VMStageEvent(vm: vmName, stage: stage, outcome: outcome, at: elapsed, duration: duration)
        parts { $0.stageEvents.append(event) }
        options.onStage?(event)
        if let duration, outcome == .passed || outcome == .failed {
            let end = Date()
            run.timeline.record(vm: vmName, stage: stage.rawValue + (outcome == .failed ? " (failed)" : ""),
                                start: end.addingTimeInterval(-duration), end: end)
        }
    }

    func skip(_ stage: VMStage) { emit(stage, .skipped) }
}

/// Every deadline of a VM's start and stop, scaled by the run's timeout factor.
struct VMDeadlines: Sendable {
    /// QEMU launched and reachable: 10 s; 60 s when it daemonizes on a remote DUT (the launching
    /// command runs QEMU's whole set-up before it returns, with round trips).
    var spawn: Duration
    /// The remote launching command: 60 s.
    var launchCommand: Duration
    /// The QMP handshake: 15 s.
    var qmp: Duration
    /// vCPU pinning and `cont`: 10 s.
    var pinning: Duration
    /// The guest agent, and again the management address: `start wait_seconds`.
    var guest: Duration
    /// SSH login: `start login_timeout`.
    var login: Duration
    /// One SSH connection attempt: 5 s.
    var sshAttempt: Duration
    /// Reading the PCI map: 10 s.
    var pciMap: Duration
    /// Saving a snapshot (warm boot): 60 s.
    var snapshot: Duration
    /// How often the console is searched for a kernel panic: 0.2 s; 1 s on a remote host (a round trip each).
    var consoleInterval: Duration
    /// The same once the VM is up: 0.5 s; 2 s on a remote host.
    var consoleWhileUp: Duration
    /// For an error reply to the guest agent's power-off (none comes on success): 2 s.
    var agentShutdownReply: Duration
    /// After the guest agent's power-off, for QEMU to exit: 10 s.
    var agentShutdown: Duration
    /// For QMP `quit` to be answered and the socket closed: 3 s.
    var quitReply: Duration
    /// After QMP `quit`, for QEMU to exit: 5 s.
    var quit: Duration
    /// After SIGTERM, before SIGKILL: 3 s.
    var terminateGrace: Duration
    /// After SIGKILL, for QEMU to be gone: 5 s.
    var kill: Duration

    init(start: QEMUCommandLine.StartSettings, launchesDaemonized: Bool, factor: Double) {
        func scaled(_ seconds: Int) -> Duration { Duration.seconds(seconds).scaled(factor) }
        spawn = scaled(launchesDaemonized ? 60 : 10)
        launchCommand = scaled(60)
        qmp = scaled(15)
        pinning = scaled(10)
        guest = scaled(start.waitSeconds)
        login = scaled(start.loginTimeout)
        sshAttempt = scaled(5)
        pciMap = scaled(10)
        snapshot = scaled(60)
        consoleInterval = launchesDaemonized ? .seconds(1) : .milliseconds(200)
        consoleWhileUp = launchesDaemonized ? .seconds(2) : .milliseconds(500)
        agentShutdownReply = scaled(2)
        agentShutdown = scaled(10)
        quitReply = scaled(3)
        quit = scaled(5)
        terminateGrace = scaled(3)
        kill = scaled(5)
    }
}
