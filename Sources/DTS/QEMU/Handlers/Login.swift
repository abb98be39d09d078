/// `login = user=root,password=tester;` — guest credentials for SSH. No QEMU arguments.
public enum LoginParameter: VMParameterHandler {
    public static let spec = VMParamSchema.login

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        guard let entry = param.entries.last, let user = entry["user"] else { return }
        draft.login = .init(user: user, password: entry["password"])
    }
}
