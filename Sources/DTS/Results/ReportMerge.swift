import Foundation

/// `dts report merge OUT DIR...`: the results of several output directories (the shards of one
/// plan, or separate runs) as one report, written like a run's (``ReportWriters/writeAll(_:comparison:to:)``).
///
/// Executions with the same name, DUT and target become one; their suites keep the order in which
/// the directories are given; a suite found in several directories keeps each case once. A case
/// found twice (the same DUT, target, suite and case) keeps the later directory's result, with a
/// warning. Log and artifact paths are rewritten to point into their own directory, relative to
/// the merged one, so `report.html`'s links open each shard's logs. When the directories are
/// shards, the merge warns about missing or repeated shards and about cases of the plan that no
/// shard reports.
public enum ReportMerge {
    /// One directory to merge and its results.
    public struct Input: Sendable {
        /// The output directory.
        public var directory: String
        /// Its `results.json`.
        public var report: RunReport

        /// Reads `<directory>/results.json`.
        public init(directory: String) throws(ResultsReadError) {
            self.directory = directory
            report = try ReportWriters.readResults(directory: directory)
        }

        /// Results given in code.
        public init(directory: String, report: RunReport) {
            self.directory = directory
            self.report = report
        }
    }

    /// The merged report and what the merge noticed.
    public struct Outcome: Sendable {
        /// The merged results.
        public var report: RunReport
        /// Overlaps, missing shards, an incomplete plan.
        public var warnings: [String]
    }

    /// Merges `inputs` for the output directory `output` (paths in the result are relative to it).
    public static func merge(_ inputs: [Input], into output: String, command: [String]) -> Outcome {
        var warnings: [String] = []
        var executions: [ExecutionResult] = []
        var seen: [CaseKey: String] = [:]
        var timeline: [BootStageEvent] = []
        var sources: [MergedSource] = []
        for input in inputs {
            let base = relativePath(from: output, to: input.directory)
            let rebase = { (path: String) -> String in path.hasPrefix("/") ? path : base + "/" + path }
            sources.append(MergedSource(directory: base, shard: input.report.shard, exitStatus: input.report.exitStatus,
                                        interrupted: input.report.interrupted, cases: input.report.allCases.count))
            for execution in input.report.executions {
                let index: Int
                if let found = executions.firstIndex(where: {
                    $0.execution == execution.execution && $0.dut == execution.dut && $0.target == execution.target
                }) {
                    index = found
                } else {
                    executions.append(ExecutionResult(execution: execution.execution, dut: execution.dut, target: execution.target, suites: []))
                    index = executions.count - 1
                }
                for var suite in execution.suites {
                    suite.log = rebase(suite.log)
                    suite.cases = suite.cases.map { result in
                        var result = result
                        result.log = rebase(result.log)
                        result.artifacts = result.artifacts.map(rebase)
                        return result
                    }
                    for result in suite.cases {
                        let key = CaseKey(dut: execution.dut, target: execution.target, suite: suite.name, testCase: result.name)
                        if let earlier = seen[key] {
                            warnings.append("\(key) is in \(earlier) and \(input.directory): keeping \(input.directory)'s \(result.status.rawValue)")
                            remove(key, from: &executions)
                        }
                        seen[key] = input.directory
                    }
                    if let existing = executions[index].suites.firstIndex(where: { $0.name == suite.name }) {
                        executions[index].suites[existing].cases += suite.cases
                        executions[index].suites[existing].duration += suite.duration
                        executions[index].suites[existing].setUpAllError = executions[index].suites[existing].setUpAllError ?? suite.setUpAllError
                        executions[index].suites[existing].tearDownAllError = executions[index].suites[existing].tearDownAllError ?? suite.tearDownAllError
                    } else {
                        executions[index].suites.append(suite)
                    }
                }
            }
            timeline += input.report.timeline.map { event in
                var event = event
                if inputs.count > 1 { event.vm = "\(base): \(event.vm)" }
                return event
            }
        }
        executions = executions.map { execution in
            var execution = execution
            execution.suites.removeAll { $0.cases.isEmpty && $0.setUpAllError == nil }
            return execution
        }
        warnings += shardWarnings(inputs, mergedCases: seen.count)

        let reports = inputs.map(\.report)
        let start = reports.map(\.start).min() ?? Date()
        let end = reports.map { $0.start.addingTimeInterval($0.duration) }.max() ?? start
        let interrupted = inputs.filter { $0.report.interrupted != nil }
        var report = RunReport(start: start, duration: end.timeIntervalSince(start), command: command,
                               interrupted: interrupted.isEmpty ? nil
                                   : interrupted.map { "\($0.directory): \($0.report.interrupted!)" }.joined(separator: "; "),
                               executions: executions, timeline: timeline,
                               exitStatus: interrupted.first?.report.exitStatus ?? RunReport.exitStatus(for: executions, interruptedBy: nil))
        report.merged = sources
        return Outcome(report: report, warnings: warnings)
    }

    /// Removes a case merged earlier (a later directory has it too).
    private static func remove(_ key: CaseKey, from executions: inout [ExecutionResult]) {
        for e in executions.indices where executions[e].dut == key.dut && executions[e].target == key.target {
            for s in executions[e].suites.indices where executions[e].suites[s].name == key.suite {
                executions[e].suites[s].cases.removeAll { $0.name == key.testCase }
            }
        }
    }

    /// Missing or repeated shards, shards of different plans, and plan cases no shard reports.
    static func shardWarnings(_ inputs: [Input], mergedCases: Int) -> [String] {
        let shards = inputs.compactMap { input in input.report.shard.map { (input.directory, $0) } }
        guard !shards.isEmpty else { return [] }
        var warnings: [String] = []
        if shards.count < inputs.count {
            warnings.append("\(inputs.count - shards.count) of the directories are not shards; merged anyway")
        }
        let counts = Set(shards.map(\.1.shard.count))
        guard counts.count == 1, let total = counts.first else {
            return warnings + ["the shards come from different splits (\(counts.sorted().map { "of \($0)" }.joined(separator: ", "))): check the directories"]
        }
        let indexes = shards.map(\.1.shard.index)
        let missing = (1...total).filter { !indexes.contains($0) }
        if !missing.isEmpty { warnings.append("missing shard\(missing.count > 1 ? "s" : "") " + missing.map { "\($0)/\(total)" }.joined(separator: ", ")) }
        for index in Set(indexes).sorted() where indexes.filter({ $0 == index }).count > 1 {
            warnings.append("shard \(index)/\(total) is given \(indexes.filter { $0 == index }.count) times: "
                            + shards.filter { $0.1.shard.index == index }.map(\.0).joined(separator: ", "))
        }
        let planned = Set(shards.map(\.1.planUnits))
        if planned.count == 1, let units = planned.first, units != mergedCases, shards.count == inputs.count {
            warnings.append("the merged results hold \(mergedCases) of the plan's \(units) cases")
        }
        return warnings
    }

    /// `target` relative to the directory `base` (`../shard-1` from `merged` to `shard-1`); both are
    /// made absolute from the current directory first.
    public static func relativePath(from base: String, to target: String) -> String {
        func components(_ path: String) -> [String] {
            let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
            return URL(fileURLWithPath: absolute).standardizedFileURL.pathComponents.filter { $0 != "/" }
        }
        let from = components(base), to = components(target)
        var common = 0
        while common < from.count, common < to.count, from[common] == to[common] { common += 1 }
        let parts = Array(repeating: "..", count: from.count - common) + to[common...]
        return parts.isEmpty ? "." : parts.joined(separator: "/")
    }
}
