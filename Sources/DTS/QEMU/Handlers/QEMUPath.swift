/// `qemu = path=/usr/local/bin/qemu-system-x86_64;` — the emulator binary.
public enum QEMUPathParameter: VMParameterHandler {
    public static let spec = VMParamSchema.qemu

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        if let path = param.entries.last?["path"] { draft.binary = path }
    }
}
