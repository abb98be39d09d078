import Foundation

/// A case's identity across runs: DUT, target, suite and case name.
public struct CaseKey: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    /// The DUT (its `crbs.cfg` section).
    public var dut: String
    /// The target.
    public var target: String
    /// The suite.
    public var suite: String
    /// The case.
    public var testCase: String

    /// Creates a key.
    public init(dut: String, target: String, suite: String, testCase: String) {
        self.dut = dut
        self.target = target
        self.suite = suite
        self.testCase = testCase
    }

    public static func < (a: CaseKey, b: CaseKey) -> Bool {
        (a.dut, a.target, a.suite, a.testCase) < (b.dut, b.target, b.suite, b.testCase)
    }

    /// `suite/case on dut (target)`.
    public var description: String { "\(suite)/\(testCase) on \(dut) (\(target))" }
}

extension RunReport {
    /// Every case by its key, with its suite (a key seen twice keeps the later case).
    public var casesByKey: [CaseKey: (suite: SuiteResult, case: CaseResult)] {
        var cases: [CaseKey: (suite: SuiteResult, case: CaseResult)] = [:]
        for entry in allCases {
            let key = CaseKey(dut: entry.execution.dut, target: entry.execution.target, suite: entry.suite.name, testCase: entry.case.name)
            cases[key] = (entry.suite, entry.case)
        }
        return cases
    }
}

/// How one case changed between two runs.
public struct CaseChange: Sendable, Codable, Equatable {
    /// The case.
    public var key: CaseKey
    /// Its state in the old run; `nil` when the old run did not have it.
    public var old: CaseStatus?
    /// Its state in the new run; `nil` when the new run did not run it.
    public var new: CaseStatus?
    /// Why it did not pass in the new run (in the old one when the new one did not run it).
    public var reason: String?
    /// Its log in the new run, relative to the new run's directory.
    public var log: String?

    /// Creates a change.
    public init(key: CaseKey, old: CaseStatus?, new: CaseStatus?, reason: String?, log: String?) {
        self.key = key
        self.old = old
        self.new = new
        self.reason = reason
        self.log = log
    }
}

/// What changed between two runs (`dts report compare OLD NEW`, `dts run --baseline DIR`):
/// the morning-after question, "what broke since yesterday?".
///
/// A case fails when it is FAILED, BLOCKED or ERROR. ``newFailures`` fail now and did not fail
/// before (they passed, were skipped, or are new); ``fixed`` failed and pass now; ``stillFailing``
/// fail in both; ``newlySkipped`` are SKIPPED now and were not before; ``added`` are new cases
/// that did not fail; ``notRun`` were in the old run (and in scope) but not in the new one. The
/// perf figures of cases in both runs are compared by ``PerfComparison``. Only new failures and
/// perf drops are regressions (``hasRegressions``, `--fail-on-regression`).
public struct RunComparison: Sendable, Codable, Equatable {
    /// The old run (its directory).
    public var old: String
    /// The new run (its directory).
    public var new: String
    /// Failing now, not failing before.
    public var newFailures: [CaseChange]
    /// Failing before, passing now.
    public var fixed: [CaseChange]
    /// Failing in both runs.
    public var stillFailing: [CaseChange]
    /// Skipped now, passed or failed before.
    public var newlySkipped: [CaseChange]
    /// Not in the old run, passed or skipped now.
    public var added: [CaseChange]
    /// In the old run, not run now.
    public var notRun: [CaseChange]
    /// Cases that did not fail in either run and are not newly skipped.
    public var unchanged: Int
    /// Every perf figure found in both runs, with its delta.
    public var perf: [PerfDelta]

    /// Compares `new` with `old`. `scope`, when given, limits the old cases that count to those
    /// keys (a shard compares only the cases it planned to run, not the other shards').
    /// `defaultTolerance` (percent) applies to the perf figures of suites that give none.
    public init(old: RunReport, new: RunReport, oldLabel: String, newLabel: String, scope: Set<CaseKey>? = nil,
                defaultTolerance: Double = PerfComparison.defaultTolerance) {
        self.old = oldLabel
        self.new = newLabel
        let before = old.casesByKey.filter { scope?.contains($0.key) ?? true }
        let after = new.casesByKey
        newFailures = []; fixed = []; stillFailing = []; newlySkipped = []; added = []; notRun = []; unchanged = 0; perf = []
        for key in Set(before.keys).union(after.keys).sorted() {
            let was = before[key]?.case, now = after[key]?.case
            let change = CaseChange(key: key, old: was?.status, new: now?.status,
                                    reason: now.map { $0.reason } ?? was?.reason, log: now?.log)
            switch (was?.status, now?.status) {
            case (_, nil): notRun.append(change)
            case (let before, let after?) where after.isFailure:
                if before?.isFailure == true { stillFailing.append(change) } else { newFailures.append(change) }
            case (nil, _): added.append(change)
            case (let before?, .passed?) where before.isFailure: fixed.append(change)
            case (let before?, .skipped?) where before != .skipped: newlySkipped.append(change)
            default: unchanged += 1
            }
            if let was, let now {
                let tolerance = after[key]?.suite.perfTolerance ?? before[key]?.suite.perfTolerance ?? defaultTolerance
                perf += PerfComparison.compare(old: was.perf, new: now.perf, key: key, tolerance: tolerance)
            }
        }
    }

    /// Makes every case log path relative to another directory: `base` is the new run's directory
    /// seen from there (`dts report compare --output`).
    public mutating func relocateLogs(under base: String) {
        guard base != "." else { return }
        func move(_ changes: inout [CaseChange]) {
            for i in changes.indices {
                if let log = changes[i].log, !log.hasPrefix("/") { changes[i].log = base + "/" + log }
            }
        }
        move(&newFailures); move(&fixed); move(&stillFailing); move(&newlySkipped); move(&added); move(&notRun)
    }

    /// The perf figures that dropped beyond their tolerance.
    public var perfDrops: [PerfDelta] { perf.filter(\.regressed) }

    /// New failures or perf drops: what `--fail-on-regression` exits 1 for.
    public var hasRegressions: Bool { !newFailures.isEmpty || !perfDrops.isEmpty }

    /// One line: `2 new failures, 1 fixed, ...`.
    public var summary: String {
        var parts = ["\(newFailures.count) new failure\(newFailures.count == 1 ? "" : "s")", "\(fixed.count) fixed",
                     "\(stillFailing.count) still failing", "\(newlySkipped.count) newly skipped",
                     "\(perfDrops.count) perf drop\(perfDrops.count == 1 ? "" : "s") of \(perf.count) figures"]
        if !added.isEmpty { parts.append("\(added.count) new passing or skipped") }
        if !notRun.isEmpty { parts.append("\(notRun.count) not run") }
        return parts.joined(separator: ", ")
    }
}

extension CaseStatus {
    /// FAILED, BLOCKED or ERROR: the case did not pass and was not skipped.
    public var isFailure: Bool { self == .failed || self == .blocked || self == .error }
}

/// The results a run compares with at its end (`dts run --baseline DIR`).
public struct Baseline: Sendable {
    /// The directory the results come from.
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

/// An output directory whose results cannot be read.
public struct ResultsReadError: Error, Sendable, CustomStringConvertible {
    /// The file.
    public var path: String
    /// What is wrong.
    public var reason: String

    public var description: String { "\(path): \(reason)" }
}

extension ReportWriters {
    /// Reads `<directory>/results.json`, with an error naming the file.
    public static func readResults(directory: String) throws(ResultsReadError) -> RunReport {
        let path = directory + "/results.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) && isDirectory.boolValue
            throw ResultsReadError(path: path, reason: exists ? "missing: not a dts output directory (or the run did not finish writing)"
                                                              : "no such directory")
        }
        do {
            return try readResults(data)
        } catch {
            throw ResultsReadError(path: path, reason: "not a dts results.json: \(error)")
        }
    }
}
