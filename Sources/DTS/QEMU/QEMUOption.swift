/// One option of a QEMU command line: its name, its value if it takes one, and why it is there.
///
/// The builder emits options, never loose argv words; ``QEMUCommandLine/argv`` is their
/// flattening. So `dts vm cmdline --explain` and the golden files know which word is an
/// option and which is its value without guessing.
public struct QEMUOption: Sendable, Equatable {
    /// The option as QEMU spells it (`-device`). For a positional word from `usercmd` (one that
    /// neither starts with `-` nor follows an option), the word itself.
    public var name: String
    /// The option's value (`virtio-net-pci,netdev=...`), or `nil` for a flag such as `-S`.
    public var value: String?
    /// Why the option is there, or how it differs from what the config literally says.
    public var note: String?

    public init(_ name: String, _ value: String? = nil, note: String? = nil) {
        self.name = name
        self.value = value
        self.note = note
    }

    /// The option's argv words: its name, then its value if any.
    public var arguments: [String] { value.map { [name, $0] } ?? [name] }

    /// Groups raw command-line words (`usercmd`) into options: a word that starts with `-` is an
    /// option and the next word, unless it starts with `-` too, is its value; any other word
    /// stands alone. Only the grouping is inferred: the options' ``arguments``, joined, are
    /// always `words`.
    public static func grouping(_ words: [String]) -> [QEMUOption] {
        var options: [QEMUOption] = []
        var index = 0
        while index < words.count {
            let word = words[index]
            if word.startsWithScalar("-"), index + 1 < words.count, !words[index + 1].startsWithScalar("-") {
                options.append(QEMUOption(word, words[index + 1]))
                index += 2
            } else {
                options.append(QEMUOption(word))
                index += 1
            }
        }
        return options
    }
}

/// QEMU's `-opt key=value,key=value` syntax: a `,` inside a value is written `,,`.
public enum QEMUOpts {
    /// Escapes one value.
    public static func escape(_ value: String) -> String { value.replacingAll(",", with: ",,") }

    /// Joins `head` (e.g. a driver name) and `key=value` pairs, escaping values.
    public static func join(_ head: String?, _ pairs: [(String, String)]) -> String {
        var parts: [String] = []
        if let head { parts.append(head) }
        parts.append(contentsOf: pairs.map { "\($0.0)=\(escape($0.1))" })
        return parts.joined(separator: ",")
    }

    /// The value of property `key` in an option value such as `user,id=n0,hostfwd=...`, read as
    /// QEMU reads it: split at every `,` scalar, where `,,` is an escaped comma.
    public static func property(_ key: String, in value: String) -> String? {
        let prefix = Array(key.unicodeScalars) + ["="]
        return scalarParts(value).first { $0.starts(with: prefix) }.map { ConfigText.string($0.dropFirst(prefix.count)) }
    }

    /// The parts of an option value (`user`, `id=n0`, `hostfwd=...`), split as QEMU splits them:
    /// at every `,` scalar, where `,,` is an escaped comma (unescaped in the parts).
    /// ``join(_:_:)`` of the parts, re-escaped, gives the value back.
    public static func parts(_ value: String) -> [String] {
        scalarParts(value).map { ConfigText.string($0[...]) }
    }

    private static func scalarParts(_ value: String) -> [[Unicode.Scalar]] {
        var parts: [[Unicode.Scalar]] = [[]]
        let scalars = Array(value.unicodeScalars)
        var i = 0
        while i < scalars.count {
            if scalars[i] == "," {
                if i + 1 < scalars.count, scalars[i + 1] == "," { parts[parts.count - 1].append(","); i += 2; continue }
                parts.append([])
            } else {
                parts[parts.count - 1].append(scalars[i])
            }
            i += 1
        }
        return parts
    }
}
