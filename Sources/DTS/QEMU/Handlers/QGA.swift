/// `qga = enable=yes;` — the older DTS spelling of `control = type=qga;`.
public enum QGAParameter: VMParameterHandler {
    public static let spec = ParamSpec(name: "qga", summary: "guest agent (older spelling of control type=qga)", options: [
        OptionSpec("enable", .boolean, required: true, "yes: add the guest agent channel"),
    ])

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        if param.entries.last?.bool("enable") == true { ControlParameter.addGuestAgent(into: &builder) }
    }
}
