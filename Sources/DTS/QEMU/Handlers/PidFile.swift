/// `pid_file = name=/path;` — where QEMU writes its pid (default: the VM's runtime directory).
public enum PidFileParameter: VMParameterHandler {
    public static let spec = VMParamSchema.pidFile

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        let path = param.entries.last?["name"] ?? "\(draft.runtimeDirectory)/qemu.pid"
        draft.paths.pidFile = path
        draft.add("-pidfile", path)
    }
}
