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
            // Netdevs declared here may be used by device driver=virtio-net-pci.
            for option in options where option.name == "-netdev" {
                for part in (option.value ?? "").split(separator: ",") where part.hasPrefix("id=") {
                    draft.defineNetdev(String(part.dropFirst(3)))
                }
            }
            draft.add(contentsOf: options)
        }
    }
}
