/// `monitor = path=/path;` or `monitor = port=N;` — the human monitor (HMP).
///
/// dts always has its own human monitor on a unix socket (the VM's runtime directory unless
/// `path=` says otherwise), beside QMP. DTS in 2015 wrote `monitor = port=N;` for a monitor on
/// TCP: dts adds one on the loopback address, port N (an empty `port=` allocates a free one,
/// reported by `dts vm start` and in the run log).
public enum MonitorParameter: VMParameterHandler {
    public static let spec = VMParamSchema.monitor

    /// The loopback address the TCP monitor listens on: it takes commands without a password.
    static let tcpAddress = "127.0.0.1"

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        let entry = param.entries.last
        let path = entry?["path"] ?? "\(draft.runtimeDirectory)/monitor.sock"
        draft.paths.monitorSocket = path
        draft.add("-chardev", QEMUOpts.join("socket", [("id", "hmp"), ("path", path), ("server", "on"), ("wait", "off")]))
        draft.add("-mon", "chardev=hmp,mode=readline")

        guard let entry, let option = entry.option("port") else { return }
        guard let port = draft.configuredOrAllocated(ConfigText.decimal(option.value), "a TCP port for the human monitor",
                                                     at: option.location, spec.name, { allocator, vm in try allocator.monitorPort(vm: vm) })
        else { return }
        draft.ports.monitor = port
        draft.add("-chardev", QEMUOpts.join("socket", [("id", "hmptcp"), ("host", tcpAddress), ("port", String(port)),
                                                       ("server", "on"), ("wait", "off")]),
                  note: "monitor port=\(option.value): a human monitor on loopback TCP port \(port), beside dts's own on a unix socket")
        draft.add("-mon", "chardev=hmptcp,mode=readline")
    }
}
