@testable import DTS
import DTSTestSupport
import Foundation
import Testing

/// Crafted results for `report compare`: one case per category, and perf tables whose figures
/// move within and beyond their suites' tolerance.
enum CompareFixture {
    static let dut = "lab-dut-1", target = "x86_64-native-linuxapp-gcc"

    static func result(_ name: String, _ status: CaseStatus?, suite: String, perf: [PerfTable] = []) -> CaseResult? {
        guard let status else { return nil }
        let reason: String? = status == .passed ? nil : "\(name) is \(status.rawValue)"
        return CaseResult(name: name, kind: perf.isEmpty ? .functional : .performance, status: status, reason: reason,
                          attempts: [CaseAttempt(status: status, reason: reason, start: Date(timeIntervalSince1970: 1_790_000_000), duration: 1)],
                          log: "\(suite)/\(name).log", perf: perf, artifacts: [])
    }

    static func report(_ states: [String: CaseStatus?], perf: [String: [PerfTable]], tolerance: [String: Double]) -> RunReport {
        var suites: [String: [CaseResult]] = [:]
        for (path, status) in states.sorted(by: { $0.key < $1.key }) {
            let parts = path.split(separator: "/").map(String.init)
            if let result = result(parts[1], status, suite: parts[0], perf: perf[path] ?? []) { suites[parts[0], default: []].append(result) }
        }
        let results = suites.sorted { $0.key < $1.key }.map { name, cases in
            var suite = SuiteResult(name: name, cases: cases, setUpAllError: nil, tearDownAllError: nil, log: "\(name)/suite.log", duration: 1)
            suite.perfTolerance = tolerance[name]
            return suite
        }
        let executions = [ExecutionResult(execution: "Execution1", dut: dut, target: target, suites: results)]
        return RunReport(start: Date(timeIntervalSince1970: 1_790_000_000), duration: 10, command: ["dts", "run"], interrupted: nil,
                         executions: executions, timeline: [], exitStatus: RunReport.exitStatus(for: executions, interruptedBy: nil))
    }

    static func throughput(_ mpps64: String, _ mpps128: String, latency: String) -> PerfTable {
        PerfTable(title: "throughput", columns: ["frame", "Mpps", "latency (us)"],
                  rows: [["64", mpps64, latency], ["128", mpps128, latency], ["1518", "line rate", "n/a"]])
    }

    /// Yesterday and today.
    static var old: RunReport {
        report(["func/test_new_failure": .passed, "func/test_fixed": .failed, "func/test_still_failing": .error,
                "func/test_newly_skipped": .passed, "func/test_not_run": .passed, "func/test_same": .passed,
                "func/test_skipped_both": .skipped,
                "perf_tight/test_perf_rate": .passed, "perf_loose/test_perf_rate": .passed],
               perf: ["perf_tight/test_perf_rate": [throughput("14.00 Mpps", "10.0", latency: "10")],
                      "perf_loose/test_perf_rate": [throughput("14.00 Mpps", "10.0", latency: "10")]],
               tolerance: ["perf_loose": 10])
    }

    static var new: RunReport {
        report(["func/test_new_failure": .failed, "func/test_fixed": .passed, "func/test_still_failing": .failed,
                "func/test_newly_skipped": .skipped, "func/test_same": .passed, "func/test_skipped_both": .skipped,
                "func/test_brand_new": .passed, "func/test_brand_new_broken": .blocked,
                "perf_tight/test_perf_rate": .passed, "perf_loose/test_perf_rate": .passed],
               perf: ["perf_tight/test_perf_rate": [throughput("13.00 Mpps", "9.8", latency: "10.4")],
                      "perf_loose/test_perf_rate": [throughput("13.00 Mpps", "9.8", latency: "12")]],
               tolerance: ["perf_loose": 10])
    }

    static func write(_ report: RunReport, to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try ReportWriters.writeAll(report, to: directory)
    }
}

@Suite struct ReportCompareTests {
    @Test func everyCategoryAndPerfDeltasWithTolerance() throws {
        let comparison = RunComparison(old: CompareFixture.old, new: CompareFixture.new, oldLabel: "old", newLabel: "new")
        #expect(comparison.newFailures.map(\.key.testCase) == ["test_brand_new_broken", "test_new_failure"])
        #expect(comparison.newFailures.map(\.new) == [.blocked, .failed])
        #expect(comparison.newFailures.first?.old == nil)
        #expect(comparison.fixed.map(\.key.testCase) == ["test_fixed"])
        #expect(comparison.stillFailing.map(\.key.testCase) == ["test_still_failing"])
        #expect(comparison.stillFailing.first.map { ($0.old, $0.new) } ?? (nil, nil) == (.error, .failed))
        #expect(comparison.newlySkipped.map(\.key.testCase) == ["test_newly_skipped"])
        #expect(comparison.added.map(\.key.testCase) == ["test_brand_new"])
        #expect(comparison.notRun.map(\.key.testCase) == ["test_not_run"])
        #expect(comparison.notRun.first?.new == nil)
        #expect(comparison.unchanged == 4) // test_same, test_skipped_both, both perf cases
        #expect(comparison.newFailures.first { $0.key.testCase == "test_new_failure" }?.log == "func/test_new_failure.log")

        // Perf: 2 tables × (2 rows × 2 numeric columns); "line rate" and "n/a" are labels.
        #expect(comparison.perf.count == 8)
        func delta(_ suite: String, _ row: String, _ column: String) -> PerfDelta? {
            comparison.perf.first { $0.key.suite == suite && $0.row == row && $0.column == column }
        }
        // -7.1% throughput: beyond the default 5%, within perf_loose's accepted_tolerance 10%.
        let tight64 = try #require(delta("perf_tight", "64", "Mpps"))
        #expect(tight64.regressed && tight64.tolerance == PerfComparison.defaultTolerance)
        #expect(tight64.unit == "Mpps" && tight64.old == 14 && tight64.new == 13)
        #expect(abs((tight64.percent ?? 0) + 7.142857) < 0.001)
        let loose64 = try #require(delta("perf_loose", "64", "Mpps"))
        #expect(!loose64.regressed && loose64.tolerance == 10)
        // -2%: within both.
        #expect(delta("perf_tight", "128", "Mpps")?.regressed == false)
        // Latency is lower-is-better: +4% is within 5%, +20% is beyond 10%.
        let tightLatency = try #require(delta("perf_tight", "64", "latency (us)"))
        #expect(tightLatency.direction == .lowerIsBetter && tightLatency.unit == "us" && !tightLatency.regressed)
        #expect(delta("perf_loose", "64", "latency (us)")?.regressed == true)
        #expect(delta("perf_loose", "128", "latency (us)")?.regressed == true)
        #expect(comparison.perfDrops.count == 3)
        #expect(comparison.hasRegressions)

        // The same run against itself: nothing changed.
        let same = RunComparison(old: CompareFixture.new, new: CompareFixture.new, oldLabel: "a", newLabel: "b")
        #expect(same.newFailures.isEmpty && same.fixed.isEmpty && same.newlySkipped.isEmpty && same.perfDrops.isEmpty)
        #expect(same.stillFailing.count == 3 && !same.hasRegressions)
    }

    @Test func numbersAndUnitsAreReadFromStringCells() {
        #expect(PerfComparison.parse("14.88")! == (14.88, nil))
        #expect(PerfComparison.parse("14.88 Mpps")! == (14.88, "Mpps"))
        #expect(PerfComparison.parse("95%")! == (95, "%"))
        #expect(PerfComparison.parse("1e3")! == (1000, nil))
        #expect(PerfComparison.parse("-3.5 Gbit/s")! == (-3.5, "Gbit/s"))
        for label in ["7.2.19", "1:7.2+dfsg", "qemu-system-x86_64", "", "n/a", "12 34", "inf", "nan"] {
            #expect(PerfComparison.parse(label) == nil, "\(label)")
        }
        #expect(PerfComparison.direction(column: "Mpps", unit: nil) == .higherIsBetter)
        #expect(PerfComparison.direction(column: "milliseconds", unit: nil) == .lowerIsBetter)
        #expect(PerfComparison.direction(column: "rate", unit: "ms") == .lowerIsBetter)
        #expect(PerfComparison.direction(column: "% line rate", unit: "%") == .higherIsBetter)
    }

    @Test func compareCommandPrintsWritesAndExitsOneOnRegressions() async throws {
        let dir = try TempDir("dts-compare")
        let old = dir.path + "/nightly-1", new = dir.path + "/nightly-2"
        try CompareFixture.write(CompareFixture.old, to: old)
        try CompareFixture.write(CompareFixture.new, to: new)
        let result = try await DTSBinary.run(["report", "compare", old, new])
        #expect(result.status == 1, "\(result.output)")
        #expect(result.stdout.contains("2 new failures, 1 fixed, 1 still failing, 1 newly skipped, 3 perf drops of 8 figures"))
        #expect(result.stdout.contains("New failures (2):"))
        #expect(result.stdout.contains("test_new_failure on lab-dut-1 (x86_64-native-linuxapp-gcc): PASSED → FAILED: test_new_failure is FAILED"))
        #expect(result.stdout.contains("Not run (1):"))
        #expect(result.stdout.contains("perf_tight/test_perf_rate on lab-dut-1 (x86_64-native-linuxapp-gcc) · throughput · 64 · Mpps: 14 → 13 Mpps (-7.1%, tolerance 5%)"))

        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: new + "/compare.json"))) as? [String: Any])
        #expect((json["newFailures"] as? [Any])?.count == 2)
        #expect((json["fixed"] as? [Any])?.count == 1)
        #expect((json["stillFailing"] as? [Any])?.count == 1)
        #expect((json["newlySkipped"] as? [Any])?.count == 1)
        let perf = try #require(json["perf"] as? [[String: Any]])
        #expect(perf.count == 8 && perf.filter { $0["regressed"] as? Bool == true }.count == 3)
        #expect(try ReportWriters.readComparison(Data(contentsOf: URL(fileURLWithPath: new + "/compare.json")))
                == RunComparison(old: CompareFixture.old, new: CompareFixture.new, oldLabel: old, newLabel: new))
        let html = try String(contentsOfFile: new + "/compare.html", encoding: .utf8)
        #expect(html.contains("<h3>New failures (2)</h3>"))
        #expect(html.contains("<a href=\"func/test_new_failure.log\">"))
        #expect(html.contains("class=\"FAILED\">drop</td>"))

        // --output elsewhere: the links still reach NEW's logs.
        let elsewhere = dir.path + "/cmp"
        let moved = try await DTSBinary.run(["report", "compare", old, new, "--output", elsewhere])
        #expect(moved.status == 1)
        #expect(try String(contentsOfFile: elsewhere + "/compare.html", encoding: .utf8).contains("<a href=\"../nightly-2/func/test_new_failure.log\">"))

        // No regressions: exit 0 (still-failing cases do not count).
        let calm = try await DTSBinary.run(["report", "compare", new, new, "--output", dir.path + "/calm"])
        #expect(calm.status == 0, "\(calm.output)")
        #expect(calm.stdout.contains("0 new failures"))

        // A directory without results: exit 2, naming the file.
        let missing = try await DTSBinary.run(["report", "compare", dir.path + "/nope", new])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains(dir.path + "/nope/results.json"))
    }
}
