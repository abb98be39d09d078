/// `start = wait_seconds=120,login_timeout=60,...;` — deadlines for bringing the VM up.
public enum StartParameter: VMParameterHandler {
    public static let spec = VMParamSchema.start

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        guard let entry = param.entries.last else { return }
        if let n = entry.int("wait_seconds") { builder.start.waitSeconds = n }
        if let n = entry.int("login_timeout") { builder.start.loginTimeout = n }
        if let s = entry["login_prompt"] { builder.start.loginPrompt = s }
        if let s = entry["password_prompt"] { builder.start.passwordPrompt = s }
    }
}
