/// `vnc = displayNum=1;` or `vnc = disable=True;` — a VNC display for debugging.
public enum VNCParameter: VMParameterHandler {
    public static let spec = VMParamSchema.vnc

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        guard let entry = param.entries.last, entry.bool("disable") != true else { return }
        guard let display = builder.configuredOrAllocated(entry.int("displayNum"), "a VNC display", at: entry.location, spec.name, { allocator, vm in
            try allocator.vncDisplay(vm: vm)
        }) else { return }
        builder.ports.vncDisplay = display
        builder.add("-vnc", "\(builder.allocator.listenAddress):\(display)")
        builder.add(contentsOf: builder.context.architecture.displayDevice)
    }
}
