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

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        for entry in param.entries {
            switch entry["type"] {
            case "qga": addGuestAgent(into: &builder)
            case "telnet":
                guard !rejectSecondSerial(entry, &builder) else { continue }
                guard let port = builder.configuredOrAllocated(entry.int("opt_port"), "a telnet port", at: entry.location, spec.name, { allocator, vm in
                    try allocator.serialPort(vm: vm)
                }) else { continue }
                builder.ports.telnet = port
                builder.add("-chardev", QEMUOpts.join("socket", [
                    ("id", "serial0"), ("host", builder.allocator.listenAddress), ("port", String(port)),
                    ("telnet", "on"), ("server", "on"), ("wait", "off"), ("logfile", builder.paths.consoleLog),
                ]))
                builder.add("-serial", "chardev:serial0")
            case "socket":
                guard !rejectSecondSerial(entry, &builder) else { continue }
                let path = entry["opt_path"] ?? "\(builder.runtimeDirectory)/serial.sock"
                builder.paths.serialSocket = path
                builder.add("-chardev", QEMUOpts.join("socket", [
                    ("id", "serial0"), ("path", path), ("server", "on"), ("wait", "off"), ("logfile", builder.paths.consoleLog),
                ]))
                builder.add("-serial", "chardev:serial0")
            default: break
            }
        }
    }

    static func rejectSecondSerial(_ entry: VirtEntry, _ builder: inout QEMUCommandBuilder) -> Bool {
        guard builder.serialConfigured else {
            builder.serialConfigured = true
            return false
        }
        builder.fail(entry.location, spec.name, "only one serial console (type=telnet or type=socket) per VM")
        return true
    }

    /// Adds the guest agent channel once (from `control type=qga` or the legacy `qga` parameter).
    static func addGuestAgent(into builder: inout QEMUCommandBuilder) {
        guard !builder.guestAgentConfigured else { return }
        builder.guestAgentConfigured = true
        let path = "\(builder.runtimeDirectory)/qga.sock"
        builder.paths.guestAgentSocket = path
        builder.add("-chardev", QEMUOpts.join("socket", [("id", "qga0"), ("path", path), ("server", "on"), ("wait", "off")]))
        builder.add("-device", "virtio-serial-pci,id=vser0")
        builder.add("-device", "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0")
    }
}
