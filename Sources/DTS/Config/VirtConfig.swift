import Foundation

/// Loads a VM's parameters the way DTS does, in this order:
///
/// 1. built-in defaults (``builtInDefaults(vm:)``: name, enable_kvm, machine, pid_file, daemon,
///    monitor and the management net);
/// 2. `virt_global.cfg`, section `[KVM]`;
/// 3. `<suite>.cfg`, section `[<vm>]`;
/// 4. calls made at run time (`setVMDevice`, as in DTS), which append entries.
///
/// A parameter set by a later layer replaces the whole parameter of an earlier one, keeping its
/// position. Every parameter and option is validated; all problems are reported together.
public enum VirtConfig {
    /// The section of `virt_global.cfg` that holds defaults for QEMU/KVM VMs. Its other sections
    /// (DTS ships `[LIBVIRT]` and `[XEN]`) belong to other hypervisors: dts does not read them.
    public static let globalSection = "KVM"
    /// VM sections of DTS suite configs whose names do not start with `vm`, by suite: the names
    /// those suites give `QEMUKvm` (DTS's `vhost_user_live_migration` migrates `host` to `backup`).
    public static let suiteVMSections: [String: Set<String>] = ["vhost_user_live_migration": ["host", "backup"]]

    /// Whether section `name` of `<suite>.cfg` describes a VM: its name starts with `vm` (as
    /// DTS's `vm0`, `vm1`, ...), or the suite names it as a VM (``suiteVMSections``). Every other
    /// section (`[suite]`, `[test_*]`, `[TREX]`, `[mount_info]`, ...) is the suite's own.
    public static func isVMSection(_ name: String, suite: String) -> Bool {
        name.unicodeScalars.starts(with: "vm".unicodeScalars) || suiteVMSections[suite]?.contains(name) == true
    }

    /// The problems of a leniently read file (``ConfFile/lenient(contentsOf:)``) that matter to
    /// the sections dts reads (`reads`): those inside such a section, and those outside any.
    static func relevant(_ errors: [ConfigError], reads: (String) -> Bool) -> [ConfigError] {
        errors.filter { error in error.location.section.map(reads) ?? true }
    }

    /// The defaults dts adds in code before reading any file (as DTS did).
    public static func builtInDefaults(vm: String) -> [VirtParam] {
        let here = SourceLocation.builtIn(section: vm)
        func param(_ name: String, _ entries: [[(String, String)]]) -> VirtParam {
            VirtParam(name: name, entries: entries.map { VirtEntry($0, location: here) }, location: here)
        }
        return [
            param("name", [[("name", vm)]]),
            param("enable_kvm", [[("enable", "yes")]]),
            param("machine", [[]]),
            param("pid_file", [[]]),
            param("daemon", [[("enable", "no")]]),
            param("monitor", [[]]),
            param("net", [[("type", "nic"), ("opt_vlan", "0"), ("opt_addr", "1f")], [("type", "user"), ("opt_vlan", "0")]]),
        ]
    }

    /// Loads the parameters of `vm` for `suite` from `confDirectory`.
    ///
    /// `virt_global.cfg` is optional; `<suite>.cfg` and its `[<vm>]` section are required.
    /// `vm` and `suite` must be valid path components (``PathComponentName``).
    public static func load(vm: String, suite: String, confDirectory: String) throws(ConfigErrors) -> [VirtParam] {
        let lookup = SourceLocation(file: confDirectory, line: 0)
        let names = [PathComponentName.error(vm, "VM name", at: lookup), PathComponentName.error(suite, "suite name", at: lookup)]
        if !names.compactMap({ $0 }).isEmpty { throw ConfigErrors(names.compactMap { $0 }) }
        var (global, errors) = globalLayer(confDirectory: confDirectory)
        var params: [VirtParam] = []
        let suitePath = "\(confDirectory)/\(suite).cfg"
        let (read, readErrors) = ConfFile.lenient(contentsOf: suitePath)
        // Problems in the suite's own sections are not the VM's (DTS never read them as VMs).
        let readProblems = relevant(readErrors) { $0 == vm || isVMSection($0, suite: suite) }
        errors += readProblems
        if readProblems.isEmpty, let file = read {
            if let section = file.section(vm) {
                let (layer, problems) = parameters(of: section, in: file)
                errors += problems
                params = layered(vm: vm, global: global, section: layer)
            } else {
                let vms = file.sections.map(\.name).filter { isVMSection($0, suite: suite) }
                errors.append(ConfigError(SourceLocation(file: suitePath, line: 0),
                                          "no section [\(vm)]; VM sections in this file: " + (vms.joined(separator: ", ").nonEmpty ?? "none")))
            }
        }

        guard errors.isEmpty else { throw ConfigErrors(errors) }
        return params
    }

    /// The parameters of `[KVM]` in `<confDirectory>/virt_global.cfg` (none when the file or the
    /// section is absent), and the problems found in them. Other sections are not read.
    public static func globalLayer(confDirectory: String) -> ([VirtParam], [ConfigError]) {
        let globalPath = "\(confDirectory)/virt_global.cfg"
        guard FileManager.default.fileExists(atPath: globalPath) else { return ([], []) }
        let (read, readErrors) = ConfFile.lenient(contentsOf: globalPath)
        let errors = relevant(readErrors) { $0 == globalSection }
        guard errors.isEmpty, let file = read else { return ([], errors) }
        guard let section = file.section(globalSection) else { return ([], []) }
        return parameters(of: section, in: file)
    }

    /// A VM's parameters from its layers: the built-in defaults, then `global`, then its own section.
    public static func layered(vm: String, global: [VirtParam], section: [VirtParam]) -> [VirtParam] {
        merge(merge(builtInDefaults(vm: vm), global), section)
    }

    /// Reads and validates every parameter of a VM section.
    public static func parameters(of section: ConfFile.Section, in file: ConfFile) -> ([VirtParam], [ConfigError]) {
        var params: [VirtParam] = []
        var errors = ConfigErrorList()
        for item in section.items {
            let location = SourceLocation(file: file.path, line: item.line, section: section.name)
            guard VMParamSchema.spec(named: item.key) != nil else {
                errors.append(ConfigError(location, Spelling.unknown("parameter", item.key, known: VMParamSchema.names)))
                continue
            }
            do {
                let entries = try VirtValueParser.parse(item.lines, file: file.path, section: section.name, key: item.key)
                let param = VirtParam(name: item.key, entries: entries, location: location)
                if entries.isEmpty {
                    errors.append(ConfigError(location, key: item.key, "no value; write at least one 'key=value' entry"))
                    continue
                }
                let problems = VMParamSchema.validate(param)
                errors.append(contentsOf: problems)
                if problems.isEmpty { params.append(param) }
            } catch {
                errors.append(contentsOf: error.errors)
            }
        }
        return (params, errors.list(more: SourceLocation(file: file.path, line: section.line, section: section.name)))
    }

    /// Overlays `layer` on `base`: a parameter in `layer` replaces the whole parameter in `base`
    /// at the same position; new parameters are appended in `layer`'s order.
    public static func merge(_ base: [VirtParam], _ layer: [VirtParam]) -> [VirtParam] {
        var result = base
        for param in layer {
            if let index = result.firstIndex(where: { $0.name == param.name }) {
                result[index] = param
            } else {
                result.append(param)
            }
        }
        return result
    }
}
