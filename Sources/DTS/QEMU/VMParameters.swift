/// A handler for one VM parameter: the QEMU arguments it emits.
///
/// DTS calls these `add_vm_<param>`. Each conforming type lives in its own file under
/// `Sources/DTS/QEMU/Handlers/`, named after the parameter.
public protocol VMParameterHandler {
    /// The parameter's entry in ``VMParamSchema``: the handler is registered under its name.
    static var spec: ParamSpec { get }
    /// Adds the parameter's options (and facts) to `draft`.
    static func apply(_ param: VirtParam, to draft: inout CommandLineDraft)
}

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
        VirtTypeParameter.self,
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
        CryptoParameter.self,
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
