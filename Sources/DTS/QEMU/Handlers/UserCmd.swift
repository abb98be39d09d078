/// `usercmd = cmd="-device e1000,netdev=x";` — raw QEMU arguments, appended as given.
///
/// The command is split into words (blanks separate, quotes group) without any shell
/// expansion; the words become argv entries, never a shell string. They are grouped into
/// options (``QEMUOption/grouping(_:)``) for `--explain` and the golden files; argv is the
/// words as split.
public enum UserCmdParameter: VMParameterHandler {
    public static let spec = VMParamSchema.userCmd

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        for entry in param.entries {
            guard let cmd = entry["cmd"], case .success(let words) = ValueKind.splitWords(cmd) else { continue }
            let options = QEMUOption.grouping(words)
            for option in options {
                guard let value = option.value else { continue }
                switch option.name {
                case "-netdev": // may be used by device driver=virtio-net-pci
                    if let id = QEMUOpts.property("id", in: value) { draft.defineNetdev(id) }
                case "-kernel", "-initrd":
                    draft.opens(value, as: option.name)
                case "-drive":
                    if let file = QEMUOpts.property("file", in: value) { draft.opens(file, as: "disk file") }
                default: break
                }
            }
            draft.add(contentsOf: options)
        }
    }
}
