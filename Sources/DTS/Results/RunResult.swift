import Foundation

/// The outcome of a case (DTS's result words; ERROR and SKIPPED as in the newer DTS).
public enum CaseStatus: String, Sendable, Codable, CaseIterable {
    /// Every check held.
    case passed = "PASSED"
    /// A `verify` failed.
    case failed = "FAILED"
    /// The suite's `setUpAll` (or the case's `setUp`) failed, so the case could not run.
    case blocked = "BLOCKED"
    /// The case does not apply here (`skip`).
    case skipped = "SKIPPED"
    /// The framework or the infrastructure failed (an unexpected error, a timeout, an interruption).
    case error = "ERROR"

    /// The word DTS's `test_results.json` uses (lowercase).
    public var dtsWord: String { rawValue.lowercased() }
}

/// One run of a case (re-runs add more).
public struct CaseAttempt: Sendable, Codable, Equatable {
    /// The outcome of this attempt.
    public var status: CaseStatus
    /// Why it did not pass (failure message, error, skip reason).
    public var reason: String?
    /// When it started.
    public var start: Date
    /// How long setUp + case + tearDown took, in seconds.
    public var duration: Double
}

/// A case's result: the last attempt decides the status.
public struct CaseResult: Sendable, Codable, Equatable {
    /// The DTS case name.
    public var name: String
    /// Functional or performance.
    public var kind: CaseKind
    /// Final status (the last attempt's).
    public var status: CaseStatus
    /// The last attempt's reason.
    public var reason: String?
    /// Every attempt, in order.
    public var attempts: [CaseAttempt]
    /// The case log, relative to the output directory.
    public var log: String
    /// Performance tables the case recorded.
    public var perf: [PerfTable]
    /// Extra files the case attached, relative to the output directory when inside it.
    public var artifacts: [String]

    /// Total seconds over every attempt.
    public var duration: Double { attempts.reduce(0) { $0 + $1.duration } }
}

/// A suite's results on one DUT and target.
public struct SuiteResult: Sendable, Codable, Equatable {
    /// The DTS suite name.
    public var name: String
    /// Cases in run order.
    public var cases: [CaseResult]
    /// Why `setUpAll` failed, if it did.
    public var setUpAllError: String?
    /// Why `tearDownAll` failed, if it did.
    public var tearDownAllError: String?
    /// The suite log, relative to the output directory.
    public var log: String
    /// Seconds from setUpAll to the end of tearDownAll.
    public var duration: Double
    /// The suite's perf tolerance in percent (`accepted_tolerance` in its `[suite]` section, as in
    /// DTS), when it has one: `dts report compare` flags perf drops beyond it.
    public var perfTolerance: Double? = nil
}

/// One DUT and target of an execution.
public struct ExecutionResult: Sendable, Codable, Equatable {
    /// The execution section (`Execution1`) or `command line`.
    public var execution: String
    /// The DUT's name (its `crbs.cfg` section).
    public var dut: String
    /// The target (DTS build target name).
    public var target: String
    /// Suites in run order.
    public var suites: [SuiteResult]
}

/// One stage of a VM's start, for the report's timeline (`boot`, `ssh`, `guest-agent`, ...).
public struct BootStageEvent: Sendable, Codable, Equatable {
    /// The VM name.
    public var vm: String
    /// The stage name.
    public var stage: String
    /// When it started.
    public var start: Date
    /// When it ended.
    public var end: Date

    /// Creates an event.
    public init(vm: String, stage: String, start: Date, end: Date) {
        self.vm = vm
        self.stage = stage
        self.start = start
        self.end = end
    }
}

/// Everything a run produced (`results.json`).
public struct RunReport: Sendable, Codable, Equatable {
    /// The dts version that wrote it.
    public var tool = "dts"
    /// When the run started.
    public var start: Date
    /// Seconds the run took.
    public var duration: Double
    /// The command line.
    public var command: [String]
    /// Set when SIGINT or SIGTERM stopped the run: the cases after it did not run.
    public var interrupted: String?
    /// Every execution, DUT and target.
    public var executions: [ExecutionResult]
    /// VM start stages recorded by the VM layer.
    public var timeline: [BootStageEvent]
    /// The exit status the run ends with.
    public var exitStatus: Int32
    /// Set when the run was one shard of a plan (`--shard K/N`).
    public var shard: ShardRecord? = nil
    /// Set by `dts report merge`: the output directories merged into this report.
    public var merged: [MergedSource]? = nil

    /// Every case, with its suite, DUT and target.
    public var allCases: [(execution: ExecutionResult, suite: SuiteResult, case: CaseResult)] {
        executions.flatMap { execution in
            execution.suites.flatMap { suite in suite.cases.map { (execution, suite, $0) } }
        }
    }

    /// Counts of final statuses.
    public var counts: [CaseStatus: Int] {
        var counts: [CaseStatus: Int] = [:]
        for entry in allCases { counts[entry.case.status, default: 0] += 1 }
        return counts
    }

    /// The exit status these results call for: 3 if any ERROR, else 1 if any FAILED or BLOCKED,
    /// else 0. An interrupted run returns 128 + the signal.
    public static func exitStatus(for executions: [ExecutionResult], interruptedBy signal: Int32?) -> Int32 {
        if let signal { return DTSExitCode.status(stoppedBy: signal) }
        let statuses = executions.flatMap { $0.suites.flatMap { $0.cases.map(\.status) } }
        if statuses.contains(.error) { return DTSExitCode.infrastructureError.rawValue }
        if statuses.contains(.failed) || statuses.contains(.blocked) { return DTSExitCode.testFailures.rawValue }
        return DTSExitCode.success.rawValue
    }
}

/// Which shard of which plan a run was (`results.json`), so that a merge can tell what is missing.
public struct ShardRecord: Sendable, Codable, Equatable {
    /// `K/N`.
    public var shard: Shard
    /// How many cases the whole plan (every shard) has.
    public var planUnits: Int

    /// Creates a record.
    public init(shard: Shard, planUnits: Int) {
        self.shard = shard
        self.planUnits = planUnits
    }
}

/// One output directory a merged report was made from.
public struct MergedSource: Sendable, Codable, Equatable {
    /// The directory, relative to the merged output directory when it could be made so.
    public var directory: String
    /// Its shard, if it was one.
    public var shard: ShardRecord?
    /// Its own exit status.
    public var exitStatus: Int32
    /// Set when it was interrupted.
    public var interrupted: String?
    /// How many cases it holds.
    public var cases: Int
}
