/// What a caller asks of a build besides the VM's parameters.
public struct QEMUBuildOptions: Sendable, Equatable {
    /// A run-wide override of `enable_kvm` (`--accel`, `DTS_ACCEL`), if any.
    public var accelerator: Accelerator?
    /// QEMU daemonizes whatever `daemon` says: the VM's host launches it that way (a remote DUT,
    /// where the launching command must return once QEMU runs).
    public var daemonize: Bool
    /// A run-wide override of `start warm=` (`--boot`, `DTS_BOOT`), if any.
    public var boot: BootMode?

    /// A run-wide choice of emulator (`--qemu PATH`, ``QEMUKvm/setQemuEmulator(_:)``), winning
    /// over `qemu path=`.
    public var emulator: String?

    public init(accelerator: Accelerator? = nil, daemonize: Bool = false, emulator: String? = nil, boot: BootMode? = nil) {
        self.accelerator = accelerator
        self.daemonize = daemonize
        self.emulator = emulator
        self.boot = boot
    }
}

/// Facts about the whole VM that several handlers need, computed before any handler runs.
public struct BuildContext: Sendable {
    /// The VM's name.
    public var vmName: String
    /// The guest architecture (from the emulator's name, or the host's).
    public var architecture: Architecture
    /// The emulator: a run-wide choice, or the one `qemu path=` names that is on the host.
    public var emulator: QEMUPathParameter.Choice
    /// The accelerator, after the run-wide override.
    public var accelerator: Accelerator
    /// Why that accelerator was chosen, when it is not what `enable_kvm` says.
    public var acceleratorNote: String?
    /// The machine type (`machine` parameter or the architecture's default).
    public var machine: String
    /// Where the machine type was set, when a config or code set it (not the default).
    public var machineLocation: SourceLocation?
    /// vCPU count from `cpu number=`, if set.
    public var vcpus: Int?
    /// Guest memory from `mem size=`, if set.
    public var memoryMiB: Int?
    /// Whether a vhost-user backend maps guest memory (a `device driver=vhost-user`, or `crypto`
    /// devices): guest memory must then be shared.
    public var hasVhostUser: Bool
    /// What the caller asked for (``QEMUBuildOptions``).
    public var options: QEMUBuildOptions
}

/// Builds a VM's QEMU command line from its parameters. Pure: same input, same output.
public enum QEMUCommandLineBuilder {
    /// Builds the command line for `vmName` from `params` (already merged and validated).
    ///
    /// - Parameters:
    ///   - options: a run-wide accelerator override, and whether QEMU must daemonize.
    ///   - allocator: where ports, directories and MACs come from.
    /// - Throws: every cross-parameter problem found, with its location.
    public static func build(vmName: String, params: [VirtParam], options: QEMUBuildOptions = QEMUBuildOptions(),
                             allocator: any VMResourceAllocator) throws(ConfigErrors) -> QEMUCommandLine {
        var errors: [ConfigError] = []
        var warnings: [ConfigWarning] = []
        for param in params {
            let checked = VMParamSchema.check(param)
            errors += checked.errors
            warnings += checked.warnings
        }
        if let chosen = options.emulator, !allocator.isExecutable(path: chosen) {
            errors.append(ConfigError(.builtIn("run settings", section: vmName), key: "qemu",
                                      "the emulator chosen for this run (--qemu or setQemuEmulator), \(chosen), is not an executable file on this host"))
        }
        guard errors.isEmpty else { throw ConfigErrors(errors) }

        func param(_ name: String) -> VirtParam? { params.last { $0.name == name } }
        let emulator = QEMUPathParameter.choose(param("qemu"), override: options.emulator, isExecutable: allocator.isExecutable(path:))
        let architecture = emulator.architectureName.flatMap(Architecture.forBinary)
            ?? Architecture.named(allocator.hostArchitecture) ?? Architecture.all[0]
        let configured = EnableKVMParameter.configured(param("enable_kvm"))
        let accelerator = options.accelerator ?? configured
        var note: String?
        if let override = options.accelerator, override != configured {
            note = "accelerator \(override.rawValue) chosen for this run (the config says enable=\(configured == .kvm ? "yes" : "no"))"
        }
        let context = BuildContext(
            vmName: vmName, architecture: architecture, emulator: emulator, accelerator: accelerator, acceleratorNote: note,
            machine: MachineParameter.configured(param("machine"), architecture: architecture),
            machineLocation: param("machine")?.entries.last?.option("machine")?.location,
            vcpus: param("cpu")?.entries.last?.int("number"),
            memoryMiB: MemParameter.sizeMiB(of: params),
            hasVhostUser: (param("device")?.entries.contains { $0["driver"] == "vhost-user" } ?? false)
                || CryptoParameter.deviceCount(param("crypto")) > 0,
            options: options)

        var draft = CommandLineDraft(context: context, allocator: allocator)
        for warning in warnings { draft.warn(warning.location, warning.key ?? "", warning.message) }
        for param in params {
            VMParameters.handler(named: param.name)?.apply(param, to: &draft)
        }
        return try finish(draft, params: params)
    }

    /// Adds what the framework itself needs and checks rules that span parameters.
    static func finish(_ draft: consuming CommandLineDraft, params: [VirtParam]) throws(ConfigErrors) -> QEMUCommandLine {
        var draft = draft
        let vmLocation = params.first?.location ?? .builtIn()
        for reference in draft.netdevReferences where !draft.netdevIDs.contains(reference.id) {
            draft.fail(reference.location, "device",
                       "opt_netdev=\(reference.id) names no netdev; defined: " + (draft.netdevIDs.sorted().joined(separator: ", ").nonEmpty ?? "none"))
        }
        if draft.context.hasVhostUser, draft.context.memoryMiB == nil {
            draft.fail(vmLocation, "mem", "vhost-user devices (net or crypto) need shared guest memory: add 'mem = size=<MiB>;'")
        }
        NetParameter.addManagementIfMissing(into: &draft, params: params)
        // Without a port for the forward there is none; that error is the one to report.
        if draft.ports.ssh == nil, !draft.failedAllocations.contains("net") {
            draft.fail(params.last { $0.name == "net" }?.location ?? vmLocation, "net",
                       "no management network: dts reaches the guest over SSH through a 'type=user' net with a forward to guest port 22 (the default net has one)")
        }
        guard draft.errors.isEmpty else {
            // Report in file order, whichever handler found the problem.
            let ordered = draft.errors.enumerated().sorted { a, b in
                (a.element.location.line, a.offset) < (b.element.location.line, b.offset)
            }.map(\.element)
            throw ConfigErrors(ordered)
        }

        if draft.context.options.daemonize {
            DaemonParameter.addDaemonize(into: &draft, note: "the VM's host launches QEMU daemonized: the launching command returns once QEMU runs")
        }
        // The framework's own channels.
        draft.add("-nodefaults", note: "no implicit devices: every device on this command line comes from the config")
        draft.add("-display", "none")
        draft.add("-chardev", QEMUOpts.join("socket", [("id", "qmp"), ("path", draft.paths.qmpSocket), ("server", "on"), ("wait", "off")]),
                  note: "QMP: dts manages the VM through this socket")
        draft.add("-mon", "chardev=qmp,mode=control")
        if !draft.serialConfigured {
            draft.add("-chardev", QEMUOpts.join("file", [("id", "serial0"), ("path", draft.paths.consoleLog)]),
                      note: "the serial console, kept in the VM's console log")
            draft.add("-serial", "chardev:serial0")
        }
        let (boot, bootChoice) = StartParameter.chooseBoot(into: &draft)
        if !draft.cpuPinning.isEmpty {
            draft.add("-S", note: "start paused: dts pins each vCPU thread, then continues the guest")
        }
        draft.add(contentsOf: draft.context.architecture.extraOptions)

        return QEMUCommandLine(
            vmName: draft.context.vmName, architecture: draft.context.architecture.name,
            accelerator: draft.context.accelerator, prefix: draft.prefix,
            binary: draft.binary, options: draft.options,
            paths: draft.paths, ports: draft.ports, login: draft.login, start: draft.start,
            cpuPinning: draft.cpuPinning, startsPaused: !draft.cpuPinning.isEmpty,
            daemonize: draft.daemonize, memoryMiB: draft.context.memoryMiB, hugepageMount: draft.hugepageMount,
            filesQEMUOpens: draft.filesQEMUOpens, hasGuestAgent: draft.guestAgentConfigured,
            boot: boot, bootChoice: bootChoice, passthrough: draft.passthrough, defaultDriver: draft.defaultDriver,
            warnings: draft.warnings, fixedPorts: draft.fixedPorts, overlays: draft.overlays)
    }
}

