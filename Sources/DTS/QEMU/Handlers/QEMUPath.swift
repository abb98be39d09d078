/// `qemu = path=/usr/local/bin/qemu-system-x86_64;` — the emulator binary.
public enum QEMUPathParameter: VMParameterHandler {
    public static let spec = ParamSpec(name: "qemu", summary: "the emulator binary", options: [
        OptionSpec("path", .path, required: true, default: "qemu-system-<arch>",
                   "path of the QEMU binary; its name also selects the guest architecture"),
    ])

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        if let path = param.entries.last?["path"] { builder.binary = path }
    }
}
