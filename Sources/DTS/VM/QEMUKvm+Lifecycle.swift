import Foundation

/// Starting and stopping the VM (DTS's `QEMUKvm.start()` / `stop()`).
extension QEMUKvm {
    /// Boots the VM and returns its VM DUT once every readiness stage passed:
    /// QEMU up → QMP → vCPU pinning (paused) → guest agent → management address → SSH → PCI map.
    ///
    /// Unlike DTS, a failure throws a ``VMStartError`` naming the stage, the time spent, the end of
    /// QEMU's stderr and of the console; nothing is left running.
    ///
    /// On a remote DUT (``Dut/isRemote``) QEMU runs on the DUT: see ``RemoteVMHost`` for how it is
    /// launched and reached, and where its files live.
    @discardableResult
    nonisolated(nonsending) public func start(_ options: VMStartOptions = VMStartOptions()) async throws -> VirtDut {
        if let running = instance, let dut = running.dut { return dut }
        var host: (any VMHost)?
        if dut.isRemote {
            let context = try options.context ?? RunContext.shared()
            do {
                host = try await RemoteVMHost.host(for: dut, context: context)
            } catch {
                throw VMStartError(vm: vmName, stage: .prepare, reason: .failed("\(error)"), elapsed: 0,
                                   qemuStderr: "", consoleTail: "", logDirectory: context.run.vmPath(vmName))
            }
        }
        var options = options
        if options.sessionLog == nil { options.sessionLog = dut.sessionLog }
        if options.logDirectory == nil, let root = dut.settings.vmLogDirectory {
            options.logDirectory = Self.freshDirectory(root + "/" + vmName)
        }
        // Every stage also goes to the run's boot timeline (the report draws it).
        let timeline = dut.resources.timeline
        let caller = options.onStage
        let begin = Date()
        options.onStage = { event in
            caller?(event)
            if let duration = event.duration, event.outcome == .passed || event.outcome == .failed {
                let end = begin.addingTimeInterval(event.at)
                timeline.record(vm: event.vm, stage: event.stage.rawValue + (event.outcome == .failed ? " (failed)" : ""),
                                start: end.addingTimeInterval(-duration), end: end)
            }
        }
        let launched = try await VMInstance.launch(vmName: vmName, params: params, accelerator: dut.settings.accelerator, options: options, host: host)
        instance = launched
        // The run stops the VM on every exit path, even when the suite's tear-down is not reached.
        let token = await dut.resources.register("VM \(vmName)") { await launched.stop() }
        launched.onStop = { [resources = dut.resources] in await resources.unregister(token) }
        return launched.dut!
    }

    /// `path`, or `path-2`, `path-3`, ... if it exists (a VM started twice in one run).
    static func freshDirectory(_ path: String) -> String {
        var candidate = path
        var n = 2
        while FileManager.default.fileExists(atPath: candidate) {
            candidate = "\(path)-\(n)"
            n += 1
        }
        return candidate
    }

    /// The VM DUT of the running VM, if any.
    public var vmDut: VirtDut? { instance?.dut }

    /// Stops the VM and frees everything it used. Idempotent.
    nonisolated(nonsending) public func stop() async {
        guard let running = instance else { return }
        await running.stop()
        instance = nil
    }
}

extension Dut {
    /// Where the DUT's session logs (the runner's case logs), if it does.
    public var sessionLog: (any SessionLogSink)? {
        session.sessionLog
    }
}
