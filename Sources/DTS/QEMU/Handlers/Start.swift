/// `start = wait_seconds=120,login_timeout=60,...;` — deadlines for bringing the VM up.
public enum StartParameter: VMParameterHandler {
    public static let spec = ParamSpec(name: "start", summary: "start-up deadlines", options: [
        OptionSpec("wait_seconds", .integer(1...3600), default: "120", "deadline for the guest to boot (guest agent and management address)"),
        OptionSpec("login_timeout", .integer(1...3600), default: "60", "deadline for the SSH login"),
        OptionSpec("login_prompt", .text, default: "login:", "kept for DTS configs; dts logs in over SSH"),
        OptionSpec("password_prompt", .text, default: "Password:", "kept for DTS configs; dts logs in over SSH"),
    ])

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        guard let entry = param.entries.last else { return }
        if let n = entry.int("wait_seconds") { builder.start.waitSeconds = n }
        if let n = entry.int("login_timeout") { builder.start.loginTimeout = n }
        if let s = entry["login_prompt"] { builder.start.loginPrompt = s }
        if let s = entry["password_prompt"] { builder.start.passwordPrompt = s }
    }
}
