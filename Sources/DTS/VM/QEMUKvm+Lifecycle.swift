import DTSSession
import Foundation

/// Starting and stopping the VM (DTS's `QEMUKvm.start()` / `stop()`).
extension QEMUKvm {
    /// Boots the VM and returns its VM DUT once every readiness stage passed:
    /// QEMU up → QMP → vCPU pinning (paused) → guest agent → management address → SSH → PCI map.
    ///
    /// With warm boot (the default where it is safe: `start warm=`, ``VMStartOptions/boot``,
    /// ``RunSettings/boot``), a VM whose machine was booted before is restored from the snapshot
    /// taken then, in place of the guest's boot: QEMU up → QMP → restore → continue → guest agent →
    /// clock and entropy → management address → SSH → PCI map. If anything in that fails, the same
    /// call boots cold and the snapshot is dropped (docs/virtualization.md#warm-boot).
    ///
    /// Unlike DTS, a failure throws a ``VMStartError`` naming the stage, the time spent, the end of
    /// QEMU's stderr and of the console; nothing is left running.
    ///
    /// On a remote DUT (``Dut/isRemote``) QEMU runs on the DUT: see ``RemoteVMHost`` for how it is
    /// launched and reached, and where its files live.
    ///
    /// With ``VMStartOptions/bindDevices`` (DTS's `bind_dev`), the guest's test NICs are bound to
    /// the VM's `def_driver` (``VirtDut/defaultPortDriver(fallback:)``) before this returns.
    @discardableResult
    nonisolated(nonsending) public func start(_ options: VMStartOptions = VMStartOptions()) async throws -> VirtDut {
        if let running = instance, let dut = running.dut { return dut }
        if waitsForMigration {
            throw VMStartError(vm: vmName, stage: .prepare,
                               reason: .failed("the VM waits for an incoming migration (migration = enable=yes): start it with startIncoming(), then migratedStart() once migrated"),
                               logDirectory: (try? dut.run.directory.vmPath(vmName)) ?? "")
        }
        let vm = try await launch(options, incoming: false).dut!
        if options.bindDevices {
            // DTS's start(bind_dev=True): the guest's test NICs on the VM's def_driver. A failure
            // stops the VM: a half-set-up guest is no VM DUT.
            do {
                let driver = try vm.defaultPortDriver()
                let bound = try await vm.bindTestPorts(driver: driver)
                dut.run.logger.info("VM \(vmName): test NICs \(bound.map(\.pci)) bound to \(driver) (def_driver)")
            } catch {
                await stop()
                throw error
            }
        }
        return vm
    }

    /// Starts QEMU and walks the start's stages: all of them, or up to `inmigrate` for an
    /// incoming VM. The VM registers its stop with the DUT's run and records its stages in the
    /// run's timeline.
    nonisolated(nonsending) func launch(_ options: VMStartOptions, incoming: Bool) async throws -> VMInstance {
        let host = try await vmHost()
        var options = options
        if options.sessionLog == nil { options.sessionLog = dut.sessionLog }
        if options.onStage == nil { options.onStage = dut.settings.onVMStage }
        if options.boot == nil { options.boot = dut.settings.boot }
        if options.logDirectory == nil, let root = dut.settings.vmLogDirectory {
            options.logDirectory = Self.freshDirectory(root + "/" + vmName)
        }
        await host.probeExecutables(qemuPaths + [buildOptions.emulator].compactMap { $0 })
        let launched = try await VMInstance.launch(vmName: vmName, params: params, buildOptions: buildOptions,
                                                   run: dut.run, host: host, options: options, incoming: incoming)
        instance = launched
        // What the config asked that dts reads its own way, and the monitor port it allocated,
        // go to the run's log (the case log in `dts run`).
        for warning in launched.command.warnings {
            dut.run.logger.warning("VM \(vmName): \(warning)")
            options.sessionLog?.record(SessionLogEvent(endpoint: vmName, kind: .status, text: "config \(warning)"))
        }
        if let port = launched.command.ports.monitor {
            let text = "human monitor on TCP 127.0.0.1:\(port) of DUT \(dut.name) (monitor port=)"
            dut.run.logger.info("VM \(vmName): \(text)")
            options.sessionLog?.record(SessionLogEvent(endpoint: vmName, kind: .status, text: text))
        }
        return launched
    }

    /// The vhost-user crypto sockets the VM will connect to (`crypto = enable=yes,opt_num=N;`), in
    /// device order, with DTS's names: `<runtime dir>/<vm>_crypto<i>.sock` on the VM's host. The
    /// backend (DPDK's `vhost_crypto`) must listen there before ``start(_:)``, so they are known
    /// beforehand: the VM's runtime directory exists once this returns. Empty without `crypto`.
    nonisolated(nonsending) public func cryptoSocketPaths() async throws -> [String] {
        let count = CryptoParameter.deviceCount(params.last { $0.name == CryptoParameter.spec.name })
        guard count > 0 else { return [] }
        let host = try await vmHost()
        let directory = host.allocator.runtimeDirectory(vm: vmName)
        if dut.isRemote {
            let made = try await dut.exec(argv: ["mkdir", "-p", "-m", "0700", directory])
            guard made.succeeded else { throw ResourceError("cannot make \(directory) on DUT \(dut.name): \(made.errorOutput)") }
        } else {
            _ = try dut.run.directory.vmDirectory(vmName)
        }
        return CryptoParameter.socketPaths(vm: vmName, runtimeDirectory: directory, count: count)
    }

    /// The run's directory on the VM's host, which the suite and its backends share: a relative
    /// vhost-user `opt_path` (DTS's `./vhost-net`) names a socket there, so start the backend
    /// there too. It exists once this returns.
    nonisolated(nonsending) public func sharedDirectory() async throws -> String {
        try await vmHost().allocator.sharedDirectory
    }

    /// Where QEMU runs: this machine, or the remote DUT (the run's directory there made on first use).
    nonisolated(nonsending) private func vmHost() async throws(VMStartError) -> any VMHost {
        do {
            if dut.isRemote { return try await RemoteVMHost.host(for: dut) }
            return LocalVMHost(allocator: try dut.run.allocator, snapshots: dut.settings.snapshots)
        } catch {
            throw VMStartError(vm: vmName, stage: .prepare, reason: .failed("\(error)"),
                               logDirectory: (try? dut.run.directory.vmPath(vmName)) ?? "")
        }
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
