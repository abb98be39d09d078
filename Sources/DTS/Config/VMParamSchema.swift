/// Every VM parameter a config may set, with its options: DTS's `add_vm_<param>` names.
///
/// This registry is what reading and checking a config needs (names, options, value types,
/// defaults); `dts config reference` and docs/config.md are generated from it. Turning a
/// parameter into QEMU arguments is the job of a handler registered under the same name in the
/// command-line builder; a test checks that each spec here has exactly one.
public enum VMParamSchema {
    /// Every parameter's spec, in documentation order.
    public static let all: [ParamSpec] = [
        qemu, virtType, name, enableKVM, machine, pidFile, daemon, monitor, cpu, mem, disk, kernel, net, device, crypto, vnc,
        control, qga, login, start, defDriver, userCmd, migration,
    ]

    /// Parameter names in documentation order.
    public static var names: [String] { all.map(\.name) }

    /// The spec of parameter `name`, if known.
    public static func spec(named name: String) -> ParamSpec? {
        all.first { $0.name == name }
    }

    /// Validates a parameter: its name and every entry's options and values.
    public static func validate(_ param: VirtParam) -> [ConfigError] { check(param).errors }

    /// Validates a parameter, and says what it accepts but does not use as written.
    public static func check(_ param: VirtParam) -> (errors: [ConfigError], warnings: [ConfigWarning]) {
        guard let spec = spec(named: param.name) else {
            return ([ConfigError(param.location, Spelling.unknown("parameter", param.name, known: names))], [])
        }
        return spec.check(param)
    }
}
