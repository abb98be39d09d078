/// `disk = file=/path/vm0.img,opt_format=qcow2;` — a drive. Several entries give several drives.
public enum DiskParameter: VMParameterHandler {
    public static let spec = ParamSpec(name: "disk", summary: "disk images", repeatable: true, options: [
        OptionSpec("file", .path, required: true, "image file"),
        OptionSpec("opt_format", .choice(["raw", "qcow2", "vmdk", "vdi", "vpc", "vhdx", "qed"]), "image format (QEMU probes it when absent)"),
        OptionSpec("opt_if", .choice(["ide", "scsi", "virtio", "none", "sd", "pflash", "mtd", "floppy"]), default: "ide on x86_64, virtio on aarch64", "drive interface"),
        OptionSpec("opt_index", .integer(0...31), "index on the interface"),
        OptionSpec("opt_media", .choice(["disk", "cdrom"]), default: "disk", "media type"),
    ])

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        for entry in param.entries {
            guard let file = entry["file"] else { continue }
            var pairs: [(String, String)] = [("file", file)]
            if let format = entry["opt_format"] { pairs.append(("format", format)) }
            pairs.append(("if", entry["opt_if"] ?? builder.context.architecture.diskInterface))
            if let index = entry["opt_index"] { pairs.append(("index", index)) }
            if let media = entry["opt_media"] { pairs.append(("media", media)) }
            builder.add("-drive", QEMUOpts.join(nil, pairs))
        }
    }
}
