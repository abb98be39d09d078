/// `vnc = displayNum=1;` or `vnc = disable=True;` — a VNC display for debugging.
public enum VNCParameter: VMParameterHandler {
    public static let spec = VMParamSchema.vnc

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        guard let entry = param.entries.last, entry.bool("disable") != true else { return }
        guard let display = draft.configuredOrAllocated(entry.int("displayNum"), "a VNC display", at: entry.location, spec.name,
                                                        port: { 5900 + $0 }, { allocator, vm in
            try allocator.vncDisplay(vm: vm)
        }) else { return }
        draft.ports.vncDisplay = display
        draft.add("-vnc", "\(draft.allocator.listenAddress):\(display)")
        draft.add(contentsOf: [draft.context.architecture.displayDevice])
    }
}
