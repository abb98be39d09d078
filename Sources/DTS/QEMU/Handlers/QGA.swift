/// `qga = enable=yes;` — the older DTS spelling of `control = type=qga;`.
public enum QGAParameter: VMParameterHandler {
    public static let spec = VMParamSchema.qga

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        if param.entries.last?.bool("enable") == true { ControlParameter.addGuestAgent(into: &draft) }
    }
}
