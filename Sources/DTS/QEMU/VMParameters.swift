/// Every parameter of ``VMParamSchema`` mapped to its handler.
///
/// This table is the one place that dispatches a parameter (`cpu`, `device`, ...) to the code
/// that turns it into QEMU arguments; DTS's `add_vm_<param>` methods. Each handler is in
/// `Sources/DTS/QEMU/Handlers/`, named after its parameter, and registers under its spec's name.
public enum VMParameters {
    /// Handlers in documentation order.
    public static var handlers: [any VMParameterHandler.Type] {
        [
        QEMUPathParameter.self,
        NameParameter.self,
        EnableKVMParameter.self,
        MachineParameter.self,
        PidFileParameter.self,
        DaemonParameter.self,
        MonitorParameter.self,
        CPUParameter.self,
        MemParameter.self,
        DiskParameter.self,
        KernelParameter.self,
        NetParameter.self,
        DeviceParameter.self,
        VNCParameter.self,
        ControlParameter.self,
        QGAParameter.self,
        LoginParameter.self,
        StartParameter.self,
        DefDriverParameter.self,
        UserCmdParameter.self,
        MigrationParameter.self,
        ]
    }

    /// The handler for `name`, if known.
    public static func handler(named name: String) -> (any VMParameterHandler.Type)? {
        handlers.first { $0.spec.name == name }
    }
}

/// Builds a VM's QEMU command line from its parameters. Pure: same input, same output.
public enum QEMUCommandLineBuilder {
    /// Builds the command line for `vmName` from `params` (already merged and validated).
    ///
    /// - Parameters:
    ///   - accelerator: a run-wide override of `enable_kvm` (`--accel`), if any.
    ///   - allocator: where ports, directories and MACs come from.
    /// - Throws: every cross-parameter problem found, with its location.
    public static func build(vmName: String, params: [VirtParam], accelerator override: Accelerator? = nil,
                             allocator: any VMResourceAllocator) throws(ConfigErrors) -> QEMUCommandLine {
        var errors: [ConfigError] = []
        for param in params { errors += VMParamSchema.validate(param) }
        guard errors.isEmpty else { throw ConfigErrors(errors) }

        func param(_ name: String) -> VirtParam? { params.last { $0.name == name } }
        let binary = param("qemu")?.entries.last?["path"]
        let architecture = binary.flatMap(Architecture.forBinary)
            ?? Architecture.named(allocator.hostArchitecture) ?? Architecture.all[0]
        let configured = EnableKVMParameter.configured(param("enable_kvm"))
        let accelerator = override ?? configured
        var note: String?
        if let override, override != configured {
            note = "accelerator \(override.rawValue) chosen for this run (the config says enable=\(configured == .kvm ? "yes" : "no"))"
        }
        let context = BuildContext(
            vmName: vmName, architecture: architecture, accelerator: accelerator, acceleratorNote: note,
            machine: MachineParameter.configured(param("machine"), architecture: architecture),
            vcpus: param("cpu")?.entries.last?.int("number"),
            memoryMiB: param("mem")?.entries.last?["size"].flatMap(ValueKind.parseSizeMiB),
            hasVhostUser: param("device")?.entries.contains { $0["driver"] == "vhost-user" } ?? false)

        var builder = QEMUCommandBuilder(context: context, allocator: allocator)
        for param in params {
            VMParameters.handler(named: param.name)?.apply(param, to: &builder)
        }
        return try finish(builder, params: params)
    }

    /// Adds what the framework itself needs and checks rules that span parameters.
    static func finish(_ builder: consuming QEMUCommandBuilder, params: [VirtParam]) throws(ConfigErrors) -> QEMUCommandLine {
        var builder = builder
        let vmLocation = params.first?.location ?? .builtIn()
        for reference in builder.netdevReferences where !builder.netdevIDs.contains(reference.id) {
            builder.fail(reference.location, "device",
                         "opt_netdev=\(reference.id) names no netdev; defined: " + (builder.netdevIDs.sorted().joined(separator: ", ").nonEmpty ?? "none"))
        }
        if builder.context.hasVhostUser, builder.context.memoryMiB == nil {
            builder.fail(vmLocation, "mem", "vhost-user devices need shared guest memory: add 'mem = size=<MiB>;'")
        }
        if builder.ports.ssh == nil {
            builder.fail(params.last { $0.name == "net" }?.location ?? vmLocation, "net",
                         "no management network: dts reaches the guest over SSH through a 'type=user' net with a forward to guest port 22 (the default net has one)")
        }
        guard builder.errors.isEmpty else {
            // Report in file order, whichever handler found the problem.
            let ordered = builder.errors.enumerated().sorted { a, b in
                (a.element.location.line, a.offset) < (b.element.location.line, b.offset)
            }.map(\.element)
            throw ConfigErrors(ordered)
        }

        // The framework's own channels.
        builder.add("-nodefaults", note: "no implicit devices: every device on this command line comes from the config")
        builder.add("-display", "none")
        builder.add("-chardev", QEMUOpts.join("socket", [("id", "qmp"), ("path", builder.paths.qmpSocket), ("server", "on"), ("wait", "off")]),
                    note: "QMP: dts manages the VM through this socket")
        builder.add("-mon", "chardev=qmp,mode=control")
        if !builder.serialConfigured {
            builder.add("-chardev", QEMUOpts.join("file", [("id", "serial0"), ("path", builder.paths.consoleLog)]),
                        note: "the serial console, kept in the VM's console log")
            builder.add("-serial", "chardev:serial0")
        }
        if !builder.cpuPinning.isEmpty {
            builder.add("-S", note: "start paused: dts pins each vCPU thread, then continues the guest")
        }
        builder.add(contentsOf: builder.context.architecture.extraArgs)

        return QEMUCommandLine(
            vmName: builder.context.vmName, architecture: builder.context.architecture.name,
            accelerator: builder.context.accelerator, prefix: builder.prefix,
            argv: [builder.binary] + builder.args, explanations: builder.explanations,
            paths: builder.paths, ports: builder.ports, login: builder.login, start: builder.start,
            cpuPinning: builder.cpuPinning, startsPaused: !builder.cpuPinning.isEmpty,
            daemonize: builder.daemonize, hasGuestAgent: builder.guestAgentConfigured,
            passthrough: builder.passthrough, defaultDriver: builder.defaultDriver)
    }
}

