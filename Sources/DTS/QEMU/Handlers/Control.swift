/// `control = type=qga;` (and `type=telnet`, `type=socket`) — how dts reaches the guest besides SSH.
///
/// - `qga`: the QEMU guest agent on a virtio-serial port named `org.qemu.guest_agent.0`, its
///   socket in the VM's runtime directory.
/// - `telnet`: the serial console on a TCP port (telnet protocol), also logged to the console log.
/// - `socket`: the serial console on a unix socket, also logged to the console log.
///
/// Without `telnet` or `socket` the serial console goes to the console log file only.
public enum ControlParameter: VMParameterHandler {
    public static let spec = VMParamSchema.control

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        for entry in param.entries {
            switch entry["type"] {
            case "qga": addGuestAgent(into: &draft)
            case "telnet":
                guard !rejectSecondSerial(entry, &draft) else { continue }
                guard let port = draft.configuredOrAllocated(entry.int("opt_port"), "a telnet port", at: entry.location, spec.name, { allocator, vm in
                    try allocator.serialPort(vm: vm)
                }) else { continue }
                draft.ports.telnet = port
                draft.add("-chardev", QEMUOpts.join("socket", [
                    ("id", "serial0"), ("host", draft.allocator.listenAddress), ("port", String(port)),
                    ("telnet", "on"), ("server", "on"), ("wait", "off"), ("logfile", draft.paths.consoleLog),
                ]))
                draft.add("-serial", "chardev:serial0")
            case "socket":
                guard !rejectSecondSerial(entry, &draft) else { continue }
                let path = entry["opt_path"] ?? "\(draft.runtimeDirectory)/serial.sock"
                draft.paths.serialSocket = path
                draft.add("-chardev", QEMUOpts.join("socket", [
                    ("id", "serial0"), ("path", path), ("server", "on"), ("wait", "off"), ("logfile", draft.paths.consoleLog),
                ]))
                draft.add("-serial", "chardev:serial0")
            default: break
            }
        }
    }

    static func rejectSecondSerial(_ entry: VirtEntry, _ draft: inout CommandLineDraft) -> Bool {
        guard draft.serialConfigured else {
            draft.serialConfigured = true
            return false
        }
        draft.fail(entry.location, spec.name, "only one serial console (type=telnet or type=socket) per VM")
        return true
    }

    /// Adds the guest agent channel once (from `control type=qga` or the legacy `qga` parameter).
    static func addGuestAgent(into draft: inout CommandLineDraft) {
        guard !draft.guestAgentConfigured else { return }
        draft.guestAgentConfigured = true
        let path = "\(draft.runtimeDirectory)/qga.sock"
        draft.paths.guestAgentSocket = path
        draft.add("-chardev", QEMUOpts.join("socket", [("id", "qga0"), ("path", path), ("server", "on"), ("wait", "off")]))
        draft.add("-device", "virtio-serial-pci,id=vser0")
        draft.add("-device", "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0")
    }
}
