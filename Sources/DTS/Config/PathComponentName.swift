/// A name that becomes one component of a file path: a VM name (its runtime directory, with its
/// sockets, and its log directory), a suite name (its config `<suite>.cfg` and its output
/// directory), a case name (its log and artifacts).
///
/// Such a name must stay one component inside the directory it is joined to: a VM section named
/// `[../../../tmp/x/escaped]` once put its sockets and logs outside the private run directory.
/// Every place a name enters checks it here: `QEMUKvm`, `VirtConfig.load`, `dts config check`
/// (VM sections), `execution.cfg` (suites and cases) and the command line (`--vm`, `--suite`,
/// `--test-cases`).
public enum PathComponentName {
    /// The longest name, in UTF-8 bytes. Unix socket paths hold at most 107 bytes, and a VM's
    /// sockets live under `<run dir>/<vm>/`: longer names would not fit beside the run directory.
    public static let maxBytes = 64

    /// The longest case name, in UTF-8 bytes: a case names only its log and artifact files,
    /// never a socket, and DTS's own case names reach 79 bytes
    /// (`test_vm2vm_vhost_user_virtio10_pmd_with_mergeable_path_with_payload_valid_check`).
    /// File names hold 255; the rest is room for suffixes.
    public static let maxCaseBytes = 200

    /// What is wrong with `name` as a path component of at most `limit` bytes, or `nil` when it is fine.
    public static func problem(_ name: String, limit: Int = maxBytes) -> String? {
        if name.isEmpty { return "it is empty" }
        if name == "." || name == ".." { return "'\(name)' names a directory, not one of its entries" }
        for scalar in name.unicodeScalars {
            switch scalar.value {
            case 0x2F: return "it contains '/'"
            case 0x00: return "it contains a NUL character"
            case 0x01...0x1F, 0x7F...0x9F, 0x2028, 0x2029:
                return "it contains a control character (\(ConfigText.printable(String(scalar))))"
            default: continue
            }
        }
        let bytes = name.utf8.count
        if bytes > limit { return "it is \(bytes) bytes long; at most \(limit)" }
        return nil
    }

    /// An error at `location` when `name` is not a valid path component. `what` says what the
    /// name is (`VM name`, `suite name`, `case name`: case names may be up to ``maxCaseBytes``),
    /// `key` where it was given (`--vm`, `test_suites`).
    public static func error(_ name: String, _ what: String, at location: SourceLocation, key: String? = nil) -> ConfigError? {
        problem(name, limit: what == "case name" ? maxCaseBytes : maxBytes).map { ConfigError(location, key: key, "\(what) '\(name)' cannot name a file or directory: \($0)") }
    }

    /// Checks names given as command-line options: `(option, value, what)`, e.g.
    /// `("--vm", vm, "VM name")`. Throws every problem, located at `<command line>`.
    public static func checkCommandLine(_ names: [(option: String, value: String, what: String)]) throws(ConfigErrors) {
        let errors = names.compactMap { error($0.value, $0.what, at: commandLine, key: $0.option) }
        if !errors.isEmpty { throw ConfigErrors(errors) }
    }

    /// Where command-line options are reported.
    public static let commandLine = SourceLocation(file: "<command line>", line: 0)
}
