/// `monitor = path=/path;` — the human monitor (HMP) on a unix socket.
public enum MonitorParameter: VMParameterHandler {
    public static let spec = VMParamSchema.monitor

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        let path = param.entries.last?["path"] ?? "\(draft.runtimeDirectory)/monitor.sock"
        draft.paths.monitorSocket = path
        draft.add("-chardev", QEMUOpts.join("socket", [("id", "hmp"), ("path", path), ("server", "on"), ("wait", "off")]))
        draft.add("-mon", "chardev=hmp,mode=readline")
    }
}
