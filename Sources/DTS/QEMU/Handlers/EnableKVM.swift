/// `enable_kvm = enable=yes;` — the accelerator: KVM (default) or TCG with `enable=no`.
///
/// A run-wide override (`--accel`, `DTS_ACCEL`) wins over the config; the builder records why.
public enum EnableKVMParameter: VMParameterHandler {
    public static let spec = ParamSpec(name: "enable_kvm", summary: "hardware acceleration", options: [
        OptionSpec("enable", .boolean, required: true, default: "yes", "yes: -accel kvm; no: -accel tcg (software emulation)"),
    ])

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        builder.add("-accel", builder.context.accelerator.rawValue, note: builder.context.acceleratorNote)
    }

    /// What the config says, before any override.
    static func configured(_ param: VirtParam?) -> Accelerator {
        guard let enabled = param?.entries.last?.bool("enable") else { return .kvm }
        return enabled ? .kvm : .tcg
    }
}
