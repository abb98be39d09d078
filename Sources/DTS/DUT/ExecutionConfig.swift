import Foundation

/// DTS's `execution.cfg`: what a run executes.
///
/// ```
/// [Execution1]
/// crbs = 127.0.0.1
/// test_suites =
///     host_basic,
///     vxlan_sample:test_vxlan_encap\test_vxlan_decap
/// targets = x86_64-native-linuxapp-gcc
/// parameters = nic_type=cfg:func=true:perf=false
/// ```
public struct ExecutionConfig: Sendable {
    /// One suite entry of `test_suites`, with the cases it picks (`suite:case1\case2`).
    public struct SuiteEntry: Sendable, Equatable {
        /// The suite name.
        public var name: String
        /// The cases picked, or `nil` for all.
        public var cases: [String]?
        /// Where the entry is.
        public var location: SourceLocation
    }

    /// One `[ExecutionN]` section.
    public struct Execution: Sendable {
        /// The section name.
        public var name: String
        /// Where the section starts.
        public var location: SourceLocation
        /// The DUTs (sections of `crbs.cfg`) to run on.
        public var crbs: [String]
        /// The driver DTS binds ports to (kept for suites; dts binds nothing itself).
        public var driverName: String?
        /// The suites and cases, in order.
        public var suites: [SuiteEntry]
        /// The targets (DTS build targets); at least one (`default` when absent).
        public var targets: [String]
        /// `parameters`, split at `:` then `=`.
        public var parameters: [String: String]
    }

    /// The file read.
    public var path: String
    /// Executions in file order.
    public var executions: [Execution]

    /// Reads and checks `path`.
    public init(path: String) throws(ConfigErrors) {
        let file = try ConfFile(contentsOf: path)
        var errors: [ConfigError] = []
        var executions: [Execution] = []
        for section in file.sections {
            let here = SourceLocation(file: path, line: section.line, section: section.name)
            errors += ConfigChecker.unknownKeys(in: section, of: path, known: ConfigChecker.executionKeys, what: "execution.cfg key")
            let crbs = section.item("crbs").map { SuiteConfig.split($0.value) } ?? []
            if crbs.isEmpty { errors.append(ConfigError(here, key: "crbs", "missing: name the DUT(s) this execution runs on")) }
            var suites: [SuiteEntry] = []
            if let item = section.item("test_suites") {
                for line in item.lines {
                    for piece in line.text.split(separator: ",") {
                        let text = piece.trimmingCharacters(in: .whitespaces)
                        guard !text.isEmpty else { continue }
                        let location = SourceLocation(file: path, line: line.line, section: section.name)
                        let parts = text.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                        var cases: [String]?
                        if parts.count == 2 {
                            cases = parts[1].split(separator: "\\").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                            if cases!.isEmpty {
                                errors.append(ConfigError(location, key: "test_suites", "'\(text)': no case after ':'"))
                            }
                        }
                        suites.append(SuiteEntry(name: parts[0], cases: cases, location: location))
                    }
                }
            }
            if suites.isEmpty { errors.append(ConfigError(here, key: "test_suites", "missing or empty: list the suites to run")) }
            var parameters: [String: String] = [:]
            if let item = section.item("parameters") {
                for piece in item.value.split(whereSeparator: { $0 == ":" || $0 == "\n" }) {
                    let pair = piece.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                    guard pair.count == 2, !pair[0].isEmpty else {
                        errors.append(ConfigError(SourceLocation(file: path, line: item.line, section: section.name), key: "parameters",
                                                  "'\(piece)' is not key=value (parameters look like nic_type=cfg:func=true:perf=false)"))
                        continue
                    }
                    parameters[pair[0]] = pair[1]
                }
            }
            for flag in ["func", "perf"] {
                if let value = parameters[flag], !["true", "false"].contains(value.lowercased()) {
                    errors.append(ConfigError(SourceLocation(file: path, line: section.item("parameters")?.line ?? section.line, section: section.name),
                                              key: "parameters", "\(flag)=\(value): expected true or false"))
                }
            }
            let targets = section.item("targets").map { SuiteConfig.split($0.value) } ?? []
            executions.append(Execution(name: section.name, location: here, crbs: crbs, driverName: section.item("drivername")?.value,
                                        suites: suites, targets: targets.isEmpty ? ["default"] : targets, parameters: parameters))
        }
        if file.sections.isEmpty {
            errors.append(ConfigError(SourceLocation(file: path, line: 0), "no [Execution] section"))
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        self.path = path
        self.executions = executions
    }
}

/// One DUT of DTS's `crbs.cfg` (a section named by the DUT's address).
public struct CRBConfig: Sendable, Equatable {
    /// The section name.
    public var name: String
    /// `dut_ip`.
    public var dutIP: String
    /// `dut_user` (default `root`).
    public var dutUser: String
    /// `dut_passwd` (may be empty: key or local).
    public var dutPassword: String
    /// `dut_port` (SSH port, default 22).
    public var dutPort: Int
    /// `tester_ip`, if any.
    public var testerIP: String?
    /// `tester_passwd`.
    public var testerPassword: String
    /// Every key of the section, for suites that need more (`channels`, `dut_cores`, ...).
    public var values: [String: String]
    /// Where the section is.
    public var location: SourceLocation

    /// `true` when the DUT is this machine (`127.0.0.1`, `::1`, `localhost`): reached without SSH.
    public var isLocal: Bool { Self.isLocalAddress(dutIP) }

    /// Whether `address` names this machine.
    public static func isLocalAddress(_ address: String) -> Bool {
        ["127.0.0.1", "localhost", "::1"].contains(address.lowercased())
    }

    /// The local machine as the DUT, when `crbs.cfg` does not describe it.
    public static func implicitLocal(_ name: String) -> CRBConfig {
        CRBConfig(name: name, dutIP: name, dutUser: NSUserName(), dutPassword: "", dutPort: 22, testerIP: nil, testerPassword: "",
                  values: [:], location: .builtIn("implicit local DUT"))
    }
}

/// DTS's `crbs.cfg`.
public struct CRBsConfig: Sendable {
    /// The file read.
    public var path: String
    /// DUTs in file order.
    public var crbs: [CRBConfig]

    /// The DUT whose section is `name`.
    public func crb(_ name: String) -> CRBConfig? { crbs.first { $0.name == name } }

    /// Reads and checks `path`.
    public init(path: String) throws(ConfigErrors) {
        let file = try ConfFile(contentsOf: path)
        var errors: [ConfigError] = []
        var crbs: [CRBConfig] = []
        for section in file.sections {
            let here = SourceLocation(file: path, line: section.line, section: section.name)
            errors += ConfigChecker.unknownKeys(in: section, of: path, known: ConfigChecker.crbKeys, what: "crbs.cfg key")
            guard let ip = section.item("dut_ip")?.value, !ip.isEmpty else {
                errors.append(ConfigError(here, key: "dut_ip", "missing: the DUT's address (127.0.0.1 for this machine)"))
                continue
            }
            var port = 22
            if let item = section.item("dut_port") {
                guard let value = Int(item.value), (1...65535).contains(value) else {
                    errors.append(ConfigError(SourceLocation(file: path, line: item.line, section: section.name), key: "dut_port",
                                              "expected a TCP port, got '\(item.value)'"))
                    continue
                }
                port = value
            }
            var values: [String: String] = [:]
            for item in section.items { values[item.key] = item.value }
            let tester = section.item("tester_ip")?.value
            crbs.append(CRBConfig(name: section.name, dutIP: ip, dutUser: section.item("dut_user")?.value ?? "root",
                                  dutPassword: section.item("dut_passwd")?.value ?? "", dutPort: port,
                                  testerIP: (tester?.isEmpty ?? true) ? nil : tester,
                                  testerPassword: section.item("tester_passwd")?.value ?? "", values: values, location: here))
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        self.path = path
        self.crbs = crbs
    }
}
