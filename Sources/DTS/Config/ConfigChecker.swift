import Foundation

/// Validates config files without starting anything (`dts config check`).
///
/// It checks what dts would load, and only that, so that a DTS lab's whole `conf/` passes:
/// - `virt_global.cfg`: its `[KVM]` section (other hypervisors' sections get a note saying
///   they are not used);
/// - `crbs.cfg` (DUTs and testers), `execution.cfg` (what to run), `ports.cfg` (port topology);
/// - any other `.cfg` is a suite config: its VM sections (``VirtConfig/isVMSection(_:suite:)``:
///   `[vm*]`, and the sections the suite names as VMs) are built as `dts vm cmdline` builds them;
///   the suite's own sections (`[suite]`, `[test_*]`, `[TREX]`, ...) are not VM configs and are
///   not checked, even when they hold text that is not `key = value`;
/// - files in a `scene/` directory (DTS's scene files, unused since 2016) get a note.
public enum ConfigChecker {
    /// Keys DTS's `crbs.cfg` sections may hold.
    public static let crbKeys = [
        "dut_ip", "dut_user", "dut_passwd", "dut_key", "dut_port", "os", "dut_arch", "dut_cores", "channels", "bypass_core0",
        "tester_ip", "tester_user", "tester_passwd", "tester_key", "tester_port", "ixia_group", "pktgen_group", "snapshot_load_side",
    ]
    /// Keys DTS's `execution.cfg` sections may hold.
    public static let executionKeys = ["crbs", "drivername", "build_type", "rx_mode", "test_suites", "targets", "parameters"]

    /// What a check found: errors (the config is refused), warnings (accepted, read differently
    /// from its letter) and notes (what is not read), each once, in file order.
    public struct Report: Sendable {
        public var errors: [ConfigError] = []
        public var warnings: [ConfigWarning] = []
        public var notes: [ConfigWarning] = []
    }

    /// Checks `paths` and returns every problem found (empty when all are valid), each once.
    public static func check(paths: [String], options: QEMUBuildOptions = QEMUBuildOptions(),
                             allocator: () -> any VMResourceAllocator = { StaticAllocator(runtimeRoot: checkRuntimeRoot) }) -> [ConfigError] {
        report(paths: paths, options: options, allocator: allocator).errors
    }

    /// Checks one file (see ``check(paths:options:allocator:)``).
    public static func check(path: String, options: QEMUBuildOptions = QEMUBuildOptions(),
                             allocator: () -> any VMResourceAllocator = { StaticAllocator(runtimeRoot: checkRuntimeRoot) }) -> [ConfigError] {
        check(paths: [path], options: options, allocator: allocator)
    }

    /// Checks `paths`: errors, warnings and notes, each once.
    ///
    /// Every VM section of a suite config is built as `dts vm cmdline` builds it (defaults,
    /// the `virt_global.cfg` beside it, the section; `options` and a fresh allocator from
    /// `allocator` per VM), so the rules that span parameters are checked too: a file passes
    /// only if `dts vm cmdline` accepts each of its VMs, and both print the same warnings.
    public static func report(paths: [String], options: QEMUBuildOptions = QEMUBuildOptions(),
                              allocator: () -> any VMResourceAllocator = { StaticAllocator(runtimeRoot: checkRuntimeRoot) }) -> Report {
        var report = Report()
        var seen = (errors: Set<ConfigError>(), warnings: Set<ConfigWarning>())
        var globals: [String: ([VirtParam], [ConfigError])] = [:]
        for path in paths {
            let directory = (path as NSString).deletingLastPathComponent.nonEmpty ?? "."
            let global = globals[directory] ?? VirtConfig.globalLayer(confDirectory: directory)
            globals[directory] = global
            let found = check(path: path, global: global, options: options, allocator: allocator)
            for error in found.errors where seen.errors.insert(error).inserted { report.errors.append(error) }
            for warning in found.warnings where seen.warnings.insert(warning).inserted {
                if warning.severity == .note { report.notes.append(warning) } else { report.warnings.append(warning) }
            }
        }
        return report
    }

    /// Where the runtime files of checked VMs would go; nothing is created there.
    public static let checkRuntimeRoot = "/run/dts/check"

    /// The `.cfg` files of a directory, sorted (not those of its subdirectories, such as `scene/`).
    public static func configFiles(in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasSuffix(".cfg") }.sorted().map { "\(directory)/\($0)" }
    }

    private static func check(path: String, global: ([VirtParam], [ConfigError]), options: QEMUBuildOptions,
                              allocator: () -> any VMResourceAllocator) -> (errors: [ConfigError], warnings: [ConfigWarning]) {
        let base = (path as NSString).lastPathComponent
        let parent = ((path as NSString).deletingLastPathComponent as NSString).lastPathComponent
        if parent == "scene" {
            return ([], [ConfigWarning(SourceLocation(file: path, line: 0),
                                       "not used: a DTS scene file (conf/scene/); DTS stopped reading them in 2016 and dts never does",
                                       severity: .note)])
        }
        let (read, readErrors) = ConfFile.lenient(contentsOf: path)
        guard let file = read else { return (readErrors, []) }
        switch base {
        case "virt_global.cfg":
            var notes: [ConfigWarning] = []
            for section in file.sections where section.name != VirtConfig.globalSection {
                notes.append(ConfigWarning(SourceLocation(file: path, line: section.line, section: section.name),
                    "not used: dts runs QEMU/KVM VMs and reads only [\(VirtConfig.globalSection)] of virt_global.cfg",
                    severity: .note))
            }
            let problems = VirtConfig.relevant(readErrors) { $0 == VirtConfig.globalSection }
            guard problems.isEmpty else { return (problems, notes) }
            return (file.section(VirtConfig.globalSection).map { VirtConfig.parameters(of: $0, in: file).1 } ?? [], notes)
        case "crbs.cfg":
            guard readErrors.isEmpty else { return (readErrors, []) }
            return (knownKeys(file, crbKeys, what: "crbs.cfg key"), [])
        case "execution.cfg":
            guard readErrors.isEmpty else { return (readErrors, []) }
            var errors = knownKeys(file, executionKeys, what: "execution.cfg key")
            for section in file.sections where section.item("crbs") == nil {
                errors.append(ConfigError(SourceLocation(file: path, line: section.line, section: section.name), key: "crbs",
                                          "missing: name the DUT(s) this execution runs on"))
            }
            return (errors, [])
        case "ports.cfg":
            return (readErrors, []) // free-form per DUT in DTS; read by the port topology code
        default:
            return checkSuiteConfig(file, readErrors: readErrors, global: global, options: options, allocator: allocator)
        }
    }

    /// A suite config: its VM sections only, each built as `dts vm cmdline` builds it.
    private static func checkSuiteConfig(_ file: ConfFile, readErrors: [ConfigError], global: ([VirtParam], [ConfigError]),
                                         options: QEMUBuildOptions, allocator: () -> any VMResourceAllocator)
        -> (errors: [ConfigError], warnings: [ConfigWarning]) {
        let suite = ((file.path as NSString).lastPathComponent as NSString).deletingPathExtension
        let vms = file.sections.filter { VirtConfig.isVMSection($0.name, suite: suite) }
        // Not a VM config at all (DTS's app_name.cfg, pktgen.cfg, ipsec_ep0.cfg): nothing dts loads.
        guard !vms.isEmpty else { return ([], []) }
        let problems = VirtConfig.relevant(readErrors) { VirtConfig.isVMSection($0, suite: suite) }
        guard problems.isEmpty else { return (problems, []) }
        var errors = global.1
        var warnings: [ConfigWarning] = []
        for section in vms {
            if let error = PathComponentName.error(section.name, "VM name", at: SourceLocation(file: file.path, line: section.line)) {
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
                let command = try QEMUCommandLineBuilder.build(vmName: section.name, params: params, options: options, allocator: allocator())
                warnings += command.warnings
            } catch {
                errors += error.errors
            }
        }
        return (errors, warnings)
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
