/// `start = wait_seconds=120,login_timeout=60,...;` — deadlines for bringing the VM up.
public enum StartParameter: VMParameterHandler {
    public static let spec = VMParamSchema.start

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        guard let entry = param.entries.last else { return }
        if let n = entry.int("wait_seconds") { draft.start.waitSeconds = n }
        if let n = entry.int("login_timeout") { draft.start.loginTimeout = n }
        if let s = entry["login_prompt"] { draft.start.loginPrompt = s }
        if let s = entry["password_prompt"] { draft.start.passwordPrompt = s }
    }
}
