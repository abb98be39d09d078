/// `usercmd = cmd="-device e1000,netdev=x";` — raw QEMU arguments, appended as given.
///
/// The command is split into words (blanks separate, quotes group) without any shell
/// expansion; the words become argv entries, never a shell string.
public enum UserCmdParameter: VMParameterHandler {
    public static let spec = VMParamSchema.userCmd

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        for entry in param.entries {
            guard let cmd = entry["cmd"], case .success(let words) = ValueKind.splitWords(cmd) else { continue }
            // Netdevs declared here may be used by device driver=virtio-net-pci.
            for (index, word) in words.enumerated() where word == "-netdev" && index + 1 < words.count {
                for part in words[index + 1].split(separator: ",") where part.hasPrefix("id=") {
                    builder.defineNetdev(String(part.dropFirst(3)))
                }
            }
            builder.add(contentsOf: words)
        }
    }
}
