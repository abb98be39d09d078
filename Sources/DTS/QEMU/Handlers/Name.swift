/// `name = name=vm0;` — the VM's name (added by default from the section name).
public enum NameParameter: VMParameterHandler {
    public static let spec = VMParamSchema.name

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        guard let name = param.entries.last?["name"] else { return }
        draft.add("-name", QEMUOpts.join(QEMUOpts.escape(name), [("debug-threads", "on")]),
                  note: "debug-threads=on names vCPU threads so pinning can be checked in /proc")
    }
}
