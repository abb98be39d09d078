import Foundation

/// A problem that stops the runner itself (not a case).
public enum RunnerError: Error, Sendable, CustomStringConvertible {
    /// The output directory or one of its files cannot be written.
    case output(path: String, reason: String)
    /// A remote DUT was named but this build cannot reach it yet.
    case remoteNeedsSSH(crb: String, address: String)
    /// Connecting to a DUT failed.
    case connect(crb: String, reason: String)

    public var description: String {
        switch self {
        case .output(let path, let reason): return "output \(path): \(reason)"
        case .remoteNeedsSSH(let crb, let address):
            return "DUT [\(crb)] at \(address) is remote: remote DUTs need the SSH layer (DTSSSH), which this runner does not use yet; use dut_ip = 127.0.0.1 for this machine"
        case .connect(let crb, let reason): return "cannot connect to DUT [\(crb)]: \(reason)"
        }
    }
}

/// A suite to run and the cases picked (`nil`: every case the execution's `func`/`perf` allow).
public struct SuiteSelection: Sendable {
    /// The suite type.
    public var type: any TestSuite.Type
    /// Case names picked explicitly (they run whatever their kind).
    public var cases: [String]?

    /// Creates a selection.
    public init(_ type: any TestSuite.Type, cases: [String]? = nil) {
        self.type = type
        self.cases = cases
    }

    /// The cases to run, in the suite's order, given the execution parameters.
    public func caseNames(parameters: [String: String]) -> [String] {
        let all = SuiteInfo.cases(of: type)
        if let cases { return all.map(\.name).filter { cases.contains($0) } }
        let functional = parameters["func"].map { $0.lowercased() == "true" } ?? true
        let performance = parameters["perf"].map { $0.lowercased() == "true" } ?? false
        return all.filter { $0.kind == .functional ? functional : performance }.map(\.name)
    }
}

/// One DUT and target to run suites on.
public struct PlannedExecution: Sendable {
    /// The execution section name (`Execution1`), or `command line`.
    public var name: String
    /// The DUT.
    public var crb: CRBConfig
    /// The target label.
    public var target: String
    /// The execution parameters.
    public var parameters: [String: String]
    /// The suites, in order.
    public var suites: [SuiteSelection]

    /// Creates a planned execution.
    public init(name: String, crb: CRBConfig, target: String, parameters: [String: String], suites: [SuiteSelection]) {
        self.name = name
        self.crb = crb
        self.target = target
        self.parameters = parameters
        self.suites = suites
    }
}

/// What `dts run` will do, resolved from `execution.cfg`, `crbs.cfg`, the registry and options.
public struct RunPlan: Sendable {
    /// Every DUT × target, in order.
    public var executions: [PlannedExecution]

    /// Creates a plan.
    public init(executions: [PlannedExecution]) { self.executions = executions }

    /// Resolves a plan.
    /// - Parameters:
    ///   - execution: the parsed `execution.cfg`, or `nil` to run `suites` on the local DUT.
    ///   - crbs: the parsed `crbs.cfg`, if present; `127.0.0.1`/`localhost` need no section.
    ///   - suites: `--suite` names; when given they replace every execution's `test_suites`.
    ///   - testCases: `--test-cases`; needs exactly one suite.
    ///   - registry: every known suite type.
    ///   - duts: `--dut`; when given, every execution runs on these DUTs instead of its `crbs`.
    public static func resolve(execution: ExecutionConfig?, crbs: CRBsConfig?, suites: [String], testCases: [String],
                               registry: [any TestSuite.Type], duts: [String] = []) throws(ConfigErrors) -> RunPlan {
        var errors: [ConfigError] = []
        let known = registry.map { $0.name }
        let commandLine = SourceLocation(file: "<command line>", line: 0)

        func lookup(_ name: String, cases: [String]?, at location: SourceLocation) -> SuiteSelection? {
            guard let type = registry.first(where: { $0.name == name }) else {
                errors.append(ConfigError(location, key: "suite", Spelling.unknown("suite", name, known: known)))
                return nil
            }
            if let cases {
                let names = SuiteInfo.cases(of: type).map(\.name)
                for missing in cases where !names.contains(missing) {
                    errors.append(ConfigError(location, key: "test case",
                                              Spelling.unknown("case", missing, known: names, context: " in suite \(name)")))
                }
            }
            return SuiteSelection(type, cases: cases)
        }

        var override: [SuiteSelection]?
        if !suites.isEmpty {
            if !testCases.isEmpty && suites.count != 1 {
                errors.append(ConfigError(commandLine, key: "--test-cases", "needs exactly one --suite (got \(suites.count))"))
            }
            override = suites.compactMap { lookup($0, cases: testCases.isEmpty ? nil : testCases, at: commandLine) }
        } else if !testCases.isEmpty {
            errors.append(ConfigError(commandLine, key: "--test-cases", "needs a --suite"))
        }

        var planned: [PlannedExecution] = []
        if let execution {
            for section in execution.executions {
                let selections = override ?? section.suites.compactMap { lookup($0.name, cases: $0.cases, at: $0.location) }
                for crbName in duts.isEmpty ? section.crbs : duts {
                    var crb = crbs?.crb(crbName)
                    if crb == nil, CRBConfig.isLocalAddress(crbName) { crb = .implicitLocal(crbName) }
                    guard let crb else {
                        // A name from --dut is the command line's mistake (once), not the execution section's.
                        if !duts.isEmpty, errors.contains(where: { $0.key == "--dut" && $0.message.contains("'\(crbName)'") }) { continue }
                        let known = crbs?.crbs.map(\.name) ?? []
                        errors.append(ConfigError(duts.isEmpty ? section.location : commandLine, key: duts.isEmpty ? "crbs" : "--dut",
                                                  crbs == nil ? "DUT '\(crbName)' is not this machine and there is no crbs.cfg describing it"
                                                             : Spelling.unknown("DUT", crbName, known: known, context: " (no such section in \(crbs!.path))")))
                        continue
                    }
                    for target in section.targets {
                        planned.append(PlannedExecution(name: section.name, crb: crb, target: target,
                                                        parameters: section.parameters, suites: selections))
                    }
                }
            }
        } else {
            if suites.isEmpty {
                errors.append(ConfigError(commandLine, key: "--suite", "nothing to run: give --suite or an execution.cfg (--config-file)"))
            }
            var targets: [CRBConfig] = []
            for name in duts {
                if let crb = crbs?.crb(name) {
                    targets.append(crb)
                } else if CRBConfig.isLocalAddress(name) {
                    targets.append(.implicitLocal(name))
                } else {
                    errors.append(ConfigError(commandLine, key: "--dut",
                                              crbs == nil ? "DUT '\(name)' is not this machine and there is no crbs.cfg describing it"
                                                         : Spelling.unknown("DUT", name, known: crbs!.crbs.map(\.name), context: " (no such section in \(crbs!.path))")))
                }
            }
            if duts.isEmpty { targets = [crbs?.crbs.first(where: \.isLocal) ?? .implicitLocal("127.0.0.1")] }
            for crb in targets {
                planned.append(PlannedExecution(name: "command line", crb: crb, target: "default", parameters: [:], suites: override ?? []))
            }
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return RunPlan(executions: planned)
    }
}

extension RunPlan {
    /// The executions grouped by DUT, each group in plan order, groups in the order their DUT
    /// first appears: one worker per group, so executions on one DUT run one after another.
    public var workerGroups: [(dut: String, executions: [Int])] {
        var groups: [(dut: String, executions: [Int])] = []
        for (index, execution) in executions.enumerated() {
            if let group = groups.firstIndex(where: { $0.dut == execution.crb.name }) {
                groups[group].executions.append(index)
            } else {
                groups.append((execution.crb.name, [index]))
            }
        }
        return groups
    }

    /// Where a DUT's logs go, relative to the output directory: `<dut>/` when the plan has several
    /// DUTs (each DUT's own subtree), else the output directory itself (`""`).
    public func dutDirectory(_ dut: String) -> String {
        Set(executions.map(\.crb.name)).count > 1 ? Runner.safe(dut) + "/" : ""
    }

    /// Where an execution's suite directories go, relative to the output directory: the DUT's
    /// directory, then `<target>/` when that DUT has several executions.
    public func logPrefix(of index: Int) -> String {
        let execution = executions[index]
        let onDUT = executions.filter { $0.crb.name == execution.crb.name }.count
        return dutDirectory(execution.crb.name) + (onDUT > 1 ? Runner.safe(execution.target) + "/" : "")
    }
}
