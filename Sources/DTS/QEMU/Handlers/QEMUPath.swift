/// `qemu = path=/usr/local/bin/qemu-system-x86_64;` — the emulator binary.
///
/// Several entries are allowed, as in DTS (`qemu = path=A; path=B;`). DTS tried each in turn and
/// kept the last that exists and is executable on the DUT, else its default emulator; dts does
/// the same, with a warning naming the entries it skipped: the last entry that is an executable
/// file on the VM's host wins; when none is, `qemu-system-<arch>` runs from `PATH` (the
/// architecture named by the last entry). A run-wide choice (`--qemu PATH`,
/// ``QEMUKvm/setQemuEmulator(_:)``) wins over the config. The binary's name selects the guest
/// architecture.
public enum QEMUPathParameter: VMParameterHandler {
    public static let spec = VMParamSchema.qemu

    /// The emulator was chosen before any handler ran, since it selects the architecture
    /// (``choose(_:override:isExecutable:)``, ``BuildContext/emulator``); this reports the choice.
    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        if let warning = draft.context.emulator.warning { draft.warn(warning.location, spec.name, warning.message) }
    }

    /// The emulator of a build: the binary to run (`nil`: the architecture's default) and the
    /// name that selects the architecture; the warning when entries were skipped.
    public struct Choice: Sendable {
        public var binary: String?
        var architectureName: String?
        var warning: ConfigWarning?
    }

    /// Chooses among the paths of `param` (see the type's documentation).
    static func choose(_ param: VirtParam?, override: String?, isExecutable: (String) -> Bool) -> Choice {
        if let override {
            return Choice(binary: override, architectureName: override)
        }
        guard let param else { return Choice() }
        let options = param.entries.compactMap { $0.option("path") }
        guard let last = options.last else { return Choice() }
        guard let chosen = options.lastIndex(where: { isExecutable($0.value) }) else {
            let fallback = Architecture.forBinary(last.value)?.binary ?? "qemu-system-<arch>"
            let given = options.count == 1 ? "\(last.value) is not" : "none of \(options.map(\.value).joined(separator: ", ")) is"
            let warning = ConfigWarning(last.location, key: spec.name,
                "\(given) an executable file on this host; \(fallback) from PATH runs instead, as DTS did")
            return Choice(binary: nil, architectureName: last.value, warning: warning)
        }
        guard options.count > 1 else { return Choice(binary: last.value, architectureName: last.value) }
        let skipped = options.indices.filter { $0 != chosen }.map { index in
            options[index].value + (index > chosen ? " (not an executable file on this host)" : " (an earlier entry)")
        }
        let warning = ConfigWarning(options[chosen].location, key: spec.name,
            "\(options.count) paths given: \(options[chosen].value) runs, the last that is an executable file on this host, "
                + "as DTS chose; skipped: " + skipped.joined(separator: ", "))
        return Choice(binary: options[chosen].value, architectureName: options[chosen].value, warning: warning)
    }

    /// The paths of a `qemu` parameter, in written order.
    public static func paths(of param: VirtParam) -> [String] { param.entries.compactMap { $0["path"] } }
}
