/// `disk = file=/path/vm0.img,opt_format=qcow2;` — a drive. Several entries give several drives.
public enum DiskParameter: VMParameterHandler {
    public static let spec = VMParamSchema.disk

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        for entry in param.entries {
            guard let file = entry["file"] else { continue }
            var pairs: [(String, String)] = [("file", file)]
            if let format = entry["opt_format"] { pairs.append(("format", format)) }
            pairs.append(("if", entry["opt_if"] ?? draft.context.architecture.diskInterface))
            if let index = entry["opt_index"] { pairs.append(("index", index)) }
            if let media = entry["opt_media"] { pairs.append(("media", media)) }
            draft.add("-drive", QEMUOpts.join(nil, pairs))
            draft.opens(file, as: "disk file")
        }
    }
}
