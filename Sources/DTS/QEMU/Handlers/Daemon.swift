/// `daemon = enable=yes;` — let QEMU daemonize itself.
///
/// dts defaults to `enable=no`: QEMU runs in the foreground under dts's supervision, which sees
/// it exit at once. With `enable=yes` dts tracks the daemon by its pid file and QMP.
public enum DaemonParameter: VMParameterHandler {
    public static let spec = VMParamSchema.daemon

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        guard param.entries.last?.bool("enable") == true else { return }
        draft.daemonize = true
        draft.add("-daemonize")
    }
}
