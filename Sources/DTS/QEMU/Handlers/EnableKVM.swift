/// `enable_kvm = enable=yes;` — the accelerator: KVM (default) or TCG with `enable=no`.
///
/// A run-wide override (`--accel`, `DTS_ACCEL`) wins over the config; the builder records why.
public enum EnableKVMParameter: VMParameterHandler {
    public static let spec = VMParamSchema.enableKVM

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        draft.add("-accel", draft.context.accelerator.rawValue, note: draft.context.acceleratorNote)
    }

    /// What the config says, before any override.
    static func configured(_ param: VirtParam?) -> Accelerator {
        guard let enabled = param?.entries.last?.bool("enable") else { return .kvm }
        return enabled ? .kvm : .tcg
    }
}
