import Foundation

/// Validates config files without starting anything (`dts config check`).
///
/// The kind of file is told by its name: `virt_global.cfg` (VM defaults, section `[KVM]`),
/// `crbs.cfg` (DUTs and testers), `execution.cfg` (what to run), `ports.cfg` (port topology);
/// any other `.cfg` is a suite config whose sections are VMs, except `[suite]` which holds the
/// suite's own parameters.
public enum ConfigChecker {
    /// Keys DTS's `crbs.cfg` sections may hold.
    public static let crbKeys = [
        "dut_ip", "dut_user", "dut_passwd", "dut_key", "dut_port", "os", "dut_arch", "dut_cores", "channels", "bypass_core0",
        "tester_ip", "tester_user", "tester_passwd", "tester_key", "tester_port", "ixia_group", "pktgen_group", "snapshot_load_side",
    ]
    /// Keys DTS's `execution.cfg` sections may hold.
    public static let executionKeys = ["crbs", "drivername", "build_type", "rx_mode", "test_suites", "targets", "parameters"]

    /// Checks `paths` and returns every problem found (empty when all are valid).
    public static func check(paths: [String]) -> [ConfigError] {
        paths.flatMap(check(path:))
    }

    /// The `.cfg` files of a directory, sorted.
    public static func configFiles(in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasSuffix(".cfg") }.sorted().map { "\(directory)/\($0)" }
    }

    /// Checks one file.
    public static func check(path: String) -> [ConfigError] {
        let file: ConfFile
        do { file = try ConfFile(contentsOf: path) } catch { return error.errors }
        let base = (path as NSString).lastPathComponent
        var errors: [ConfigError] = []
        switch base {
        case "virt_global.cfg":
            for section in file.sections {
                errors += VirtConfig.parameters(of: section, in: file).1
            }
        case "crbs.cfg":
            errors += knownKeys(file, crbKeys, what: "crbs.cfg key")
        case "execution.cfg":
            errors += knownKeys(file, executionKeys, what: "execution.cfg key")
            for section in file.sections where section.item("crbs") == nil {
                errors.append(ConfigError(SourceLocation(file: path, line: section.line, section: section.name), key: "crbs",
                                          "missing: name the DUT(s) this execution runs on"))
            }
        case "ports.cfg":
            break // free-form per DUT in DTS; read by the port topology code
        default:
            for section in file.sections where !VirtConfig.suiteSections.contains(section.name.lowercased()) {
                errors += VirtConfig.parameters(of: section, in: file).1
            }
        }
        return errors
    }

    static func knownKeys(_ file: ConfFile, _ keys: [String], what: String) -> [ConfigError] {
        file.sections.flatMap { unknownKeys(in: $0, of: file.path, known: keys, what: what) }
    }

    /// One error per key of `section` that is not in `known`, naming the key and the closest known one.
    static func unknownKeys(in section: ConfFile.Section, of path: String, known: [String], what: String) -> [ConfigError] {
        section.items.filter { !known.contains($0.key) }.map { item in
            ConfigError(SourceLocation(file: path, line: item.line, section: section.name), key: item.key,
                        Spelling.unknown(what, item.key, known: known))
        }
    }
}
