/// Renders the reference of every VM parameter and option from ``VMParamSchema``, so that the
/// documentation (`docs/config.md`) cannot drift from the code (a test compares them).
public enum ParamReference {
    /// Markdown: one section per parameter with a table of its options.
    public static func markdown() -> String {
        var out = ""
        for spec in VMParamSchema.all {
            out += "### `\(spec.name)`: \(spec.summary)\n\n"
            out += spec.repeatable ? "Several entries allowed (separate them with `;`).\n\n" : "One entry.\n\n"
            if let discriminator = spec.discriminator {
                for variant in spec.variants {
                    out += "`\(discriminator)=\(variant.name)`: \(variant.summary).\n\n"
                    out += table(variant.options)
                }
                for (name, message) in spec.removedVariants.sorted(by: { $0.key < $1.key }) {
                    out += "`\(discriminator)=\(name)`: rejected: \(message).\n\n"
                }
            } else {
                out += table(spec.options)
            }
        }
        return out
    }

    static func table(_ options: [OptionSpec]) -> String {
        guard !options.isEmpty else { return "No options.\n\n" }
        var out = "| option | type | default | required | meaning |\n|---|---|---|---|---|\n"
        for option in options {
            let cells = [
                "`\(option.name)`", option.ignored == nil ? option.kind.expected : "anything (warns)",
                option.defaultValue.map { "`\($0)`" } ?? "", option.required ? "yes" : "",
                option.summary,
            ].map { $0.replacingAll("|", with: "\\|") }
            out += "| " + cells.joined(separator: " | ") + " |\n"
        }
        return out + "\n"
    }
}
