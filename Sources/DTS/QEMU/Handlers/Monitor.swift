/// `monitor = path=/path;` — the human monitor (HMP) on a unix socket.
public enum MonitorParameter: VMParameterHandler {
    public static let spec = VMParamSchema.monitor

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        let path = param.entries.last?["path"] ?? "\(builder.runtimeDirectory)/monitor.sock"
        builder.paths.monitorSocket = path
        builder.add("-chardev", QEMUOpts.join("socket", [("id", "hmp"), ("path", path), ("server", "on"), ("wait", "off")]))
        builder.add("-mon", "chardev=hmp,mode=readline")
    }
}
