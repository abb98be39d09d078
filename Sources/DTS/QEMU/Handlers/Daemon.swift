/// `daemon = enable=yes;` — let QEMU daemonize itself.
///
/// dts defaults to `enable=no`: QEMU runs in the foreground under dts's supervision, which sees
/// it exit at once. With `enable=yes` dts tracks the daemon by its pid file and QMP. A VM host
/// that can only launch QEMU daemonized (a remote DUT) asks for it with
/// ``QEMUBuildOptions/daemonize``; the option then comes after the config's own.
public enum DaemonParameter: VMParameterHandler {
    public static let spec = VMParamSchema.daemon

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        guard param.entries.last?.bool("enable") == true else { return }
        addDaemonize(into: &draft)
    }

    /// Adds `-daemonize` once (from this parameter, or because the build asked for it).
    static func addDaemonize(into draft: inout CommandLineDraft, note: String? = nil) {
        guard !draft.daemonize else { return }
        draft.daemonize = true
        draft.add("-daemonize", note: note)
    }
}
