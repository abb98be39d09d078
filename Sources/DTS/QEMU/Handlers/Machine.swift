/// `machine = machine=pc,opt_gic_version=3;` — the machine type (added by default).
public enum MachineParameter: VMParameterHandler {
    public static let spec = VMParamSchema.machine

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        var pairs: [(String, String)] = []
        if let entry = param.entries.last, let gic = entry["opt_gic_version"] {
            if draft.context.architecture.name != "aarch64" {
                draft.fail(entry.location(of: "opt_gic_version"), spec.name,
                           "opt_gic_version applies to aarch64 guests only (this guest is \(draft.context.architecture.name))")
            }
            pairs.append(("gic-version", gic))
        }
        draft.add("-machine", QEMUOpts.join(draft.context.machine, pairs))
    }

    /// The machine from the config, or the architecture's default.
    static func configured(_ param: VirtParam?, architecture: Architecture) -> String {
        param?.entries.last?["machine"] ?? architecture.machine
    }
}
