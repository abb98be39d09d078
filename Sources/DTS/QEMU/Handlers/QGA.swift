/// `qga = enable=yes;` — the older DTS spelling of `control = type=qga;`.
public enum QGAParameter: VMParameterHandler {
    public static let spec = VMParamSchema.qga

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        if param.entries.last?.bool("enable") == true { ControlParameter.addGuestAgent(into: &builder) }
    }
}
