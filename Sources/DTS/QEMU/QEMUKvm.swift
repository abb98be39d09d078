/// A QEMU/KVM virtual machine on a DUT, configured from `conf/<suite>.cfg` (DTS's `QEMUKvm`).
///
/// ```swift
/// let vm = try QEMUKvm(dut: dut, vmName: "vm0", suite: "vxlan_sample")
/// try vm.setVMDevice(["driver": "vhost-user", "opt_path": "./vhost-net", "opt_mac": "00:00:20:00:00:20"])
/// let cmdline = try vm.commandLine(allocator: allocator)
/// ```
public final class QEMUKvm {
    /// The DUT the VM runs on.
    public let dut: Dut
    /// The VM's name: its section in the suite config.
    public let vmName: String
    /// The suite whose config describes the VM.
    public let suite: String
    /// The VM's parameters after merging defaults, `virt_global.cfg`, the suite config and
    /// run-time additions.
    public private(set) var params: [VirtParam]
    /// The running VM, between ``start(_:)`` and ``stop()``.
    public internal(set) var instance: VMInstance?
    /// The emulators the config lists (`qemu = path=A; path=B;`), in written order; empty when
    /// it names none. DTS suites that compare QEMU versions walk this list with
    /// ``setQemuEmulator(_:)`` and ``qemuVersion(of:)``.
    public let qemuPaths: [String]
    /// The emulator chosen with ``setQemuEmulator(_:)``, winning over the config and `--qemu`.
    public internal(set) var emulator: String?

    /// Loads the VM's parameters from the DUT's conf directory.
    ///
    /// `vmName` and `suite` become path components (the VM's runtime and log directories,
    /// `<suite>.cfg`): a name holding `/`, `..`, control characters or too many bytes is refused
    /// (``PathComponentName``).
    public init(dut: Dut, vmName: String, suite: String) throws(ConfigErrors) {
        let here = SourceLocation.builtIn("QEMUKvm", section: nil)
        let problems = [PathComponentName.error(vmName, "VM name", at: here, key: "vmName"),
                        PathComponentName.error(suite, "suite name", at: here, key: "suite")].compactMap { $0 }
        if !problems.isEmpty { throw ConfigErrors(problems) }
        self.dut = dut
        self.vmName = vmName
        self.suite = suite
        let params = try VirtConfig.load(vm: vmName, suite: suite, confDirectory: dut.settings.confDirectory)
        self.params = params
        self.qemuPaths = params.last { $0.name == "qemu" }.map(QEMUPathParameter.paths(of:)) ?? []
    }

    /// What this VM's command line is built with: the DUT's run settings (accelerator, `--qemu`),
    /// and the emulator chosen with ``setQemuEmulator(_:)``.
    public var buildOptions: QEMUBuildOptions {
        var options = dut.settings.buildOptions
        if let emulator { options.emulator = emulator }
        return options
    }

    /// Adds a device, as DTS's `set_vm_device(**options)`: the entry is appended to `device`.
    public func setVMDevice(_ options: [String: String]) throws(ConfigErrors) {
        let location = SourceLocation.builtIn("setVMDevice", section: vmName)
        try append("device", VirtEntry(options.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, location: location))
    }

    /// Adds a device written as in a config file: `driver=vhost-user,opt_path=./vhost-net`.
    public func setVMDevice(_ text: String, source: String = "setVMDevice") throws(ConfigErrors) {
        for entry in try VirtValueParser.parse(text, file: "<\(source)>", section: vmName, key: "device") {
            try append("device", entry)
        }
    }

    /// Replaces parameter `name` with the given entries (DTS's `set_vm_<param>` for single-valued ones).
    public func setVMParam(_ name: String, _ text: String, source: String = "setVMParam") throws(ConfigErrors) {
        let entries = try VirtValueParser.parse(text, file: "<\(source)>", section: vmName, key: name)
        let param = VirtParam(name: name, entries: entries, location: .builtIn(source, section: vmName))
        let problems = VMParamSchema.validate(param)
        guard problems.isEmpty else { throw ConfigErrors(problems) }
        params = VirtConfig.merge(params, [param])
    }

    private func append(_ name: String, _ entry: VirtEntry) throws(ConfigErrors) {
        let single = VirtParam(name: name, entries: [entry], location: entry.location)
        let problems = VMParamSchema.validate(single)
        guard problems.isEmpty else { throw ConfigErrors(problems) }
        if let index = params.firstIndex(where: { $0.name == name }) {
            params[index].entries.append(entry)
        } else {
            params.append(single)
        }
    }

    /// Builds the QEMU command line (pure: no process is started, nothing is reserved beyond what
    /// `allocator` does).
    public func commandLine(allocator: any VMResourceAllocator) throws(ConfigErrors) -> QEMUCommandLine {
        try QEMUCommandLineBuilder.build(vmName: vmName, params: params, options: buildOptions, allocator: allocator)
    }

    /// Guest memory in MiB (`mem size=`), as the command line will have it; `nil` when not set.
    public var memoryMiB: Int? { MemParameter.sizeMiB(of: params) }
}
