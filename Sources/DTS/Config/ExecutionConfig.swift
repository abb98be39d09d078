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
                    for piece in line.text.scalarSplit(",") {
                        let text = piece.scalarTrimmed
                        guard !text.isEmpty else { continue }
                        let location = SourceLocation(file: path, line: line.line, section: section.name)
                        let parts = text.scalarSplit(":", maxSplits: 1).map(\.scalarTrimmed)
                        var cases: [String]?
                        if parts.count == 2 {
                            cases = parts[1].scalarSplit("\\").map(\.scalarTrimmed).filter { !$0.isEmpty }
                            if cases!.isEmpty {
                                errors.append(ConfigError(location, key: "test_suites", "'\(text)': no case after ':'"))
                            }
                        }
                        // Suite and case names name the output directories and logs.
                        let names = [(parts[0], "suite name")] + (cases ?? []).map { ($0, "case name") }
                        errors += names.compactMap { PathComponentName.error($0.0, $0.1, at: location, key: "test_suites") }
                        suites.append(SuiteEntry(name: parts[0], cases: cases, location: location))
                    }
                }
            }
            if suites.isEmpty { errors.append(ConfigError(here, key: "test_suites", "missing or empty: list the suites to run")) }
            var parameters: [String: String] = [:]
            if let item = section.item("parameters") {
                for piece in item.value.scalarSplit(":\n", omittingEmpty: true) {
                    let pair = piece.scalarSplit("=", maxSplits: 1).map(\.scalarTrimmed)
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
