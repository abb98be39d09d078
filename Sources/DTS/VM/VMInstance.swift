import DTSControl
import DTSProcess
import DTSSSH
import Foundation
import Synchronization

/// How to start a VM.
public struct VMStartOptions: Sendable {
    /// Where the VM's logs (console, QEMU stderr, QMP transcript, argv) end up after it stops.
    /// `nil` keeps them in the VM's runtime directory, which goes away with the run.
    public var logDirectory: String?
    /// Called for every stage start and end (progress lines).
    public var onStage: (@Sendable (VMStageEvent) -> Void)?
    /// Retries with fresh ports when QEMU cannot bind one that looked free.
    public var portRetries: Int = 2
    /// Where the VM DUT's commands and outputs are logged (the host DUT's case logs by default).
    public var sessionLog: (any SessionLogSink)?
    /// Overrides `start warm=` for this start (else the run's ``RunSettings/boot``).
    public var boot: BootMode?
    /// DTS's `start(bind_dev=True)`: bind the guest's test NICs (every NIC but the management
    /// one) to the VM's `def_driver` (vfio-pci with `driver_mode=noiommu`, uio_pci_generic; the
    /// built-in fallback is uio_pci_generic) before ``QEMUKvm/start(_:)`` returns. Off by default,
    /// unlike DTS: the shipped `virt_global.cfg` names vfio-pci for every VM, and suites that use
    /// the guest's kernel NICs (vxlan_sample, vm2vm_virtio_net_perf) would lose them.
    public var bindDevices: Bool

    public init(logDirectory: String? = nil, boot: BootMode? = nil, bindDevices: Bool = false,
                onStage: (@Sendable (VMStageEvent) -> Void)? = nil) {
        self.logDirectory = logDirectory
        self.boot = boot
        self.bindDevices = bindDevices
        self.onStage = onStage
    }
}

/// A running VM: its QEMU process and the channels to it. Created by ``QEMUKvm/start(_:)``.
///
/// The whole life of a VM, as QEMU's own `machine.py` tells it:
///
/// ```
/// launch     prepare (build the command line, check the host), then bringUp; on a port clash, again
/// bringUp    spawnQEMU → connectQMP → pinVCPUs → awaitGuestAgent → awaitManagementAddress → [saveSnapshot] → loginSSH → readPCIMap
/// restoreUp  spawnQEMU → connectQMP → restoreSnapshot → pinVCPUs → awaitGuestAgent → refreshGuest → awaitManagementAddress → loginSSH → readPCIMap
/// incomingUp spawnQEMU → connectQMP → awaitIncoming                      (then, once migrated:)
/// migratedUp awaitMigrated → pinVCPUs → awaitGuestAgent → awaitManagementAddress → loginSSH → readPCIMap
/// stop       softShutdown (guest agent power-off, QMP quit) → hardShutdown (SIGTERM, SIGKILL) → collectLogs
/// ```
///
/// Each start step is one stage (``VMStage``): it races its deadline and QEMU's exit, and whatever
/// ends it becomes a ``VMStartError`` in one place (`stage(_:_:_:)`). Other starts are other
/// sequences of the same steps: an incoming migration stops after `connectQMP`; a restore from a
/// snapshot (warm boot, ``BootPlan``) spawns QEMU with `-incoming defer`, loads the state over QMP
/// after `connectQMP`, and `pinVCPUs` continues the guest as on a cold boot; a failed restore
/// ends in a cold `bringUp` in the same `launch`.
///
/// QEMU runs on a ``VMHost``: this machine, or a remote host DUT reached over SSH. The VM's own
/// local files (argv, QMP and guest-agent transcripts, the guest's SSH host key) are in
/// ``localDirectory`` either way; on this machine that is also QEMU's runtime directory.
public final class VMInstance: Sendable {
    /// The command line it runs.
    public let command: QEMUCommandLine
    let vmName: String
    let run: Run
    let host: any VMHost
    /// The VM's directory on this machine.
    let localDirectory: String
    let options: VMStartOptions
    let deadlines: VMDeadlines
    let started = ContinuousClock.now
    /// Cold boot (and whether to take a snapshot), or restore.
    let plan: BootPlan
    /// Watches the guest's console for a kernel panic.
    let console: ConsoleWatch

    /// What the steps made so far, and whether the VM is being stopped.
    struct Parts {
        var qemu: (any QEMUProcess)?
        var qmp: QMPClient?
        var guestAgent: GuestAgentClient?
        var ssh: SSHConnection?
        var pciMap: PCIMap?
        var dut: VirtDut?
        var stageEvents: [VMStageEvent] = []
        var logDirectory: String
        var cleanup: Run.Token?
        var stopping = false
        /// While restoring: when the restore's budget runs out.
        var restoreDeadline: ContinuousClock.Instant?
        /// The incoming VM of the outgoing migration started last, and the QMP event cursor from
        /// before its `migrate` (its state comes from the `MIGRATION` events after it).
        var migratingTo: String?
        var migrationEvents: QMPEventCursor?
        /// The guest migrated away to another QEMU: this one only has to quit.
        var migratedAway = false
        /// Registered with the run while the VM is up (``Run/vmUp()``).
        var upToken: Run.Token?
        /// Watches QEMU and the console while the VM is up.
        var watch: Task<Void, Never>?
    }
    private let state: Mutex<Parts>

    private init(vmName: String, command: QEMUCommandLine, run: Run, host: any VMHost, localDirectory: String, options: VMStartOptions,
                 plan: BootPlan) {
        self.vmName = vmName
        self.command = command
        self.plan = plan
        self.run = run
        self.host = host
        self.localDirectory = localDirectory
        self.options = options
        deadlines = VMDeadlines(start: command.start, launchesDaemonized: host.launchesDaemonized, factor: run.timeoutFactor)
        state = Mutex(Parts(logDirectory: localDirectory))
        console = ConsoleWatch(path: command.paths.consoleLog, host: host)
    }

    /// Reads or changes what the steps made.
    func parts<T: Sendable>(_ body: (inout Parts) -> T) -> T { state.withLock { body(&$0) } }

    /// The VM DUT, once the VM is up.
    public var dut: VirtDut? { parts { $0.dut } }
    /// QEMU's pid (on the VM's host), 0 before QEMU started.
    public var pid: Int32 { parts { $0.qemu?.pid ?? 0 } }
    /// The process dts started on this machine: QEMU itself, or the launcher of a daemonized QEMU.
    public var process: ChildProcess? { parts { $0.qemu?.localProcess } }
    /// Stage timings of the start.
    public var stageEvents: [VMStageEvent] { parts { $0.stageEvents } }
    /// Where the VM's logs are now.
    public var logDirectory: String { parts { $0.logDirectory } }

    /// The last `lines` lines of one of the VM's log files (`qemu.stderr`, `console.log`, `qmp.log`)
    /// in ``logDirectory``; empty if it cannot be read. After ``stop()`` a remote VM's logs are here too.
    public func logTail(_ file: String, lines: Int = 20) -> String {
        tail(of: logDirectory + "/" + file, lines: lines)
    }

    /// Waits until QEMU exits (by itself, or stopped); returns its status (0 for a daemon, and
    /// at once if QEMU never started).
    public func waitForExit() async -> Int32 {
        await parts({ $0.qemu })?.waitForExit() ?? 0
    }

    // MARK: The lifecycle

    /// Builds the command line, starts QEMU on `host` and walks the readiness stages; a port that
    /// QEMU could not bind after all means a new command line with fresh ports; a restore from a
    /// snapshot that fails means a cold boot (and the snapshot dropped).
    static func launch(vmName: String, params: [VirtParam], buildOptions: QEMUBuildOptions, run: Run, host: any VMHost,
                       options: VMStartOptions, incoming: Bool = false) async throws(VMStartError) -> VMInstance {
        // QEMU on a remote DUT daemonizes: the launching command returns once it runs.
        var buildOptions = buildOptions
        buildOptions.daemonize = host.launchesDaemonized
        if let boot = options.boot { buildOptions.boot = boot }
        var attempt = 0
        var restoreAllowed = true
        while true {
            let instance = try await prepare(vmName: vmName, params: params, buildOptions: buildOptions, run: run, host: host, options: options,
                                             restoreAllowed: restoreAllowed, incoming: incoming)
            // The run stops the VM on every exit path, even when its owner's tear-down is not reached.
            let token = await run.register("VM \(vmName) on \(host.label)") { await instance.stop() }
            instance.parts { $0.cleanup = token }
            do {
                if incoming {
                    // Not up yet: the guest arrives with the migration (``migratedUp``).
                    try await instance.incomingUp()
                } else {
                    try await instance.bringUp()
                    await instance.watchWhileUp()
                }
                return instance
            } catch {
                // Stopped by someone else (the run's tear-down on Ctrl-C): no retry of any kind.
                let interrupted = instance.parts { $0.stopping } || Task.isCancelled
                await instance.stop()
                if error.isPortClash, attempt < options.portRetries, !interrupted {
                    attempt += 1
                    run.logger.warning("VM \(vmName): a port was taken after all; retrying with new ports (\(attempt))")
                    continue
                }
                if case .restore(let target, _) = instance.plan, !interrupted {
                    await instance.dropSnapshot(target, after: error)
                    restoreAllowed = false
                    continue
                }
                var moved = error
                moved.logDirectory = instance.logDirectory
                throw moved
            }
        }
    }

    /// The start sequence of the ``plan``: a cold boot (every readiness stage, in order, and a
    /// snapshot once the guest is ready when one is wanted), or a restore.
    func bringUp() async throws(VMStartError) {
        if let entry = plan.restoring { return try await restoreUp(entry) }
        try await spawnQEMU()
        try await connectQMP()
        try await pinVCPUs()
        try await awaitGuestAgent()
        try await awaitManagementAddress()
        if case .cold(let target?) = plan { await saveSnapshot(target) }
        try await loginSSH()
        try await readPCIMap()
        makeVirtDut()
    }

    /// Stops the VM and leaves nothing behind: guest-agent shutdown (bounded), QMP `quit`,
    /// SIGTERM, SIGKILL, each only while QEMU still runs; then disk overlays, sockets, pid file,
    /// forwards and reserved ports are freed, the logs brought to this machine and moved to the log directory.
    /// Idempotent; safe after a crash and after a failed start.
    public func stop() async {
        guard parts({ state in defer { state.stopping = true }; return !state.stopping }) else { return }
        let (watch, up) = parts { ($0.watch, $0.upToken) }
        watch?.cancel()
        if let up { await run.vmStopped(up) }
        await closeSessions()
        if !(await softShutdown()) { await hardShutdown() }
        await collectLogs()
        if let token = parts({ $0.cleanup }) { await run.unregister(token) }
    }

    // MARK: While up

    /// From now until ``stop()``: if QEMU exits or the guest kernel panics, the run records a
    /// ``VMFault`` at once (the runner gives it as the cause of what it breaks).
    func watchWhileUp() async {
        guard let qemu = parts({ $0.qemu }) else { return }
        let token = await run.vmUp()
        let task = Task { [self] in
            guard let interruption = await firstInterruption(qemu: qemu, console: console, every: deadlines.consoleWhileUp),
                  !parts({ $0.stopping }) else { return }
            let fault = await fault(from: interruption)
            guard !parts({ $0.stopping }) else { return }
            await run.record(fault, of: token)
        }
        parts { $0.upToken = token; $0.watch = task }
    }

    /// What `interruption` means while the VM is up, with QEMU's last words.
    private func fault(from interruption: VMInterruption) async -> VMFault {
        let kind: VMFault.Kind
        switch interruption {
        case .exited(let status):
            kind = .qemuExited(status: status, daemon: command.daemonize || host.launchesDaemonized)
            // Give QEMU's stderr a moment to be complete.
            try? await Task.sleep(for: .milliseconds(50))
        case .panicked(let line): kind = .guestPanicked(line: line)
        }
        return VMFault(vm: vmName, kind: kind, at: Date(),
                       qemuStderr: await host.tail(of: command.paths.runtimeDirectory + "/qemu.stderr"),
                       consoleTail: await host.tail(of: command.paths.consoleLog),
                       logDirectory: options.logDirectory ?? localDirectory)
    }

    // MARK: Prepare

    /// The `prepare` stage: the command line built with the host's allocator, the VM's local
    /// directory made, what QEMU will need checked on the host, the boot planned (a restore
    /// starts QEMU waiting for the saved state), and the disk overlays made (a restore's from the
    /// snapshot's).
    private static func prepare(vmName: String, params: [VirtParam], buildOptions: QEMUBuildOptions, run: Run, host: any VMHost,
                                options: VMStartOptions, restoreAllowed: Bool, incoming: Bool) async throws(VMStartError) -> VMInstance {
        var command: QEMUCommandLine
        let localDirectory: String
        let plan: BootPlan
        do {
            localDirectory = try run.directory.vmDirectory(vmName)
            try await host.refresh()
            command = try QEMUCommandLineBuilder.build(vmName: vmName, params: params, options: buildOptions, allocator: host.allocator)
            try await host.prepare(vm: vmName, command: command)
            // A VM waiting for an incoming migration gets its state from the source, not a snapshot.
            plan = incoming ? .cold(save: nil)
                : await WarmBoot.plan(vmName: vmName, command: command, host: host, run: run, restoreAllowed: restoreAllowed)
            if plan.restoring != nil { command = command.waitingForIncomingState() }
            try (command.command.joined(separator: "\n") + "\n").write(toFile: localDirectory + "/argv", atomically: true, encoding: .utf8)
            // Last: from here on the instance's stop removes them.
            try await host.makeOverlays(of: command, restoring: plan.restoring)
        } catch {
            host.release(vm: vmName)
            throw VMStartError(vm: vmName, stage: .prepare, reason: .failed("\(error)"), logDirectory: (try? run.directory.vmPath(vmName)) ?? "")
        }
        return VMInstance(vmName: vmName, command: command, run: run, host: host, localDirectory: localDirectory, options: options, plan: plan)
    }
}

extension VMStartError {
    /// QEMU could not bind a port that looked free (another process took it in between).
    var isPortClash: Bool {
        (stage == .spawn || stage == .qmp)
            && (qemuStderr.contains("Could not set up host forwarding rule") || qemuStderr.contains("Address already in use"))
    }
}
