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

    /// Checks `paths` and returns every problem found (empty when all are valid), each once.
    ///
    /// Every VM section of a suite config is built as `dts vm cmdline` builds it (defaults,
    /// the `virt_global.cfg` beside it, the section; `options` and a fresh allocator from
    /// `allocator` per VM), so the rules that span parameters are checked too: a file passes
    /// only if `dts vm cmdline` accepts each of its VMs.
    public static func check(paths: [String], options: QEMUBuildOptions = QEMUBuildOptions(),
                             allocator: () -> any VMResourceAllocator = { StaticAllocator(runtimeRoot: checkRuntimeRoot) }) -> [ConfigError] {
        var seen = Set<ConfigError>()
        var globals: [String: ([VirtParam], [ConfigError])] = [:]
        var errors: [ConfigError] = []
        for path in paths {
            let directory = (path as NSString).deletingLastPathComponent.nonEmpty ?? "."
            let global = globals[directory] ?? VirtConfig.globalLayer(confDirectory: directory)
            globals[directory] = global
            for error in check(path: path, global: global, options: options, allocator: allocator) where seen.insert(error).inserted {
                errors.append(error)
            }
        }
        return errors
    }

    /// Checks one file (see ``check(paths:options:allocator:)``).
    public static func check(path: String, options: QEMUBuildOptions = QEMUBuildOptions(),
                             allocator: () -> any VMResourceAllocator = { StaticAllocator(runtimeRoot: checkRuntimeRoot) }) -> [ConfigError] {
        check(paths: [path], options: options, allocator: allocator)
    }

    /// Where the runtime files of checked VMs would go; nothing is created there.
    public static let checkRuntimeRoot = "/run/dts/check"

    /// The `.cfg` files of a directory, sorted.
    public static func configFiles(in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasSuffix(".cfg") }.sorted().map { "\(directory)/\($0)" }
    }

    private static func check(path: String, global: ([VirtParam], [ConfigError]), options: QEMUBuildOptions,
                              allocator: () -> any VMResourceAllocator) -> [ConfigError] {
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
            let vms = file.sections.filter { !VirtConfig.suiteSections.contains($0.name.lowercased()) }
            if !vms.isEmpty { errors += global.1 }
            for section in vms {
                if let error = PathComponentName.error(section.name, "VM name", at: SourceLocation(file: path, line: section.line)) {
                    errors.append(error)
                    continue
                }
                let (layer, problems) = VirtConfig.parameters(of: section, in: file)
                errors += problems
                // Built only when every parameter is valid, as `vm cmdline` does: the global
                // file's problems, if any, are reported with it.
                guard problems.isEmpty, global.1.isEmpty else { continue }
                let params = VirtConfig.layered(vm: section.name, global: global.0, section: layer)
                do {
                    _ = try QEMUCommandLineBuilder.build(vmName: section.name, params: params, options: options, allocator: allocator())
                } catch {
                    errors += error.errors
                }
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
