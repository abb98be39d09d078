/// Starting and stopping the VM (DTS's `QEMUKvm.start()` / `stop()`).
extension QEMUKvm {
    /// Boots the VM and returns its VM DUT once every readiness stage passed:
    /// QEMU up → QMP → vCPU pinning (paused) → guest agent → management address → SSH → PCI map.
    ///
    /// Unlike DTS, a failure throws a ``VMStartError`` naming the stage, the time spent, the end of
    /// QEMU's stderr and of the console; nothing is left running.
    @discardableResult
    public func start(_ options: VMStartOptions = VMStartOptions()) async throws -> VirtDut {
        if let running = instance, let dut = running.dut { return dut }
        // QEMU is launched on this machine: refuse rather than silently boot a remote DUT's VM here.
        if dut.isRemote { throw RemoteDUTError.vmOnRemoteDUT(vm: vmName, dut: dut.name, address: dut.address) }
        let launched = try await VMInstance.launch(vmName: vmName, params: params, accelerator: dut.settings.accelerator, options: options)
        instance = launched
        return launched.dut!
    }

    /// The VM DUT of the running VM, if any.
    public var vmDut: VirtDut? { instance?.dut }

    /// Stops the VM and frees everything it used. Idempotent.
    public func stop() async {
        guard let running = instance else { return }
        await running.stop()
        instance = nil
    }
}
