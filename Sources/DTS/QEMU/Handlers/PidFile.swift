/// `pid_file = name=/path;` — where QEMU writes its pid (default: the VM's runtime directory).
public enum PidFileParameter: VMParameterHandler {
    public static let spec = VMParamSchema.pidFile

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        let path = param.entries.last?["name"] ?? "\(builder.runtimeDirectory)/qemu.pid"
        builder.paths.pidFile = path
        builder.add("-pidfile", path)
    }
}
