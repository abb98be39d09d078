/// `disk = file=/path/vm0.img,opt_format=qcow2;` — a drive. Several entries give several drives.
/// With `overlay=yes` QEMU writes to a throw-away qcow2 overlay over the image
/// (``QEMUCommandLine/DiskOverlay``), so the image itself is only read.
public enum DiskParameter: VMParameterHandler {
    public static let spec = VMParamSchema.disk

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        for entry in param.entries {
            guard let file = entry["file"] else { continue }
            var pairs: [(String, String)] = [("file", file)]
            if let format = entry["opt_format"] { pairs.append(("format", format)) }
            var note: String?
            if entry.bool("overlay") == true, let overlay = overlay(of: entry, file: file, into: &draft) {
                pairs = [("file", overlay.path), ("format", "qcow2")]
                note = "a throw-away overlay over \(file) (overlay=yes): dts makes it before QEMU starts and removes it when the VM stops"
            }
            pairs.append(("if", entry["opt_if"] ?? draft.context.architecture.diskInterface))
            if let index = entry["opt_index"] { pairs.append(("index", index)) }
            if let media = entry["opt_media"] { pairs.append(("media", media)) }
            draft.add("-drive", QEMUOpts.join(nil, pairs), note: note)
            draft.opens(file, as: "disk file")
        }
    }

    /// The overlay of `entry`'s image, `<run>/disk<N>.qcow2` (N counts the VM's overlays), or
    /// `nil` with the problem recorded: the base's format must be given (QEMU refuses to probe a
    /// backing file's format), and a CD-ROM is never written to.
    private static func overlay(of entry: VirtEntry, file: String, into draft: inout CommandLineDraft) -> QEMUCommandLine.DiskOverlay? {
        guard let format = entry["opt_format"] else {
            draft.fail(entry.location(of: "overlay"), spec.name, "overlay=yes needs opt_format (the format of \(file), the overlay's backing file)")
            return nil
        }
        if entry["opt_media"] == "cdrom" {
            draft.fail(entry.location(of: "overlay"), spec.name, "overlay=yes on a CD-ROM (opt_media=cdrom), which the guest cannot write")
            return nil
        }
        let overlay = QEMUCommandLine.DiskOverlay(path: "\(draft.runtimeDirectory)/disk\(draft.overlays.count).qcow2", base: file, baseFormat: format)
        draft.overlays.append(overlay)
        return overlay
    }
}
