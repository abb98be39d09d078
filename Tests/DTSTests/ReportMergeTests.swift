@testable import DTS
import DTSTestSupport
import Foundation
import Testing

/// Two passing cases and one failing, for `--baseline` on a real (local) run.
final class LabFakeSuite: TestSuite {
    static let name = "lab_fake"
    static let cases: [TestCase<LabFakeSuite>] = [
        .functional("test_pass") { suite in
            let result = try await suite.context.dut.exec("echo fine", timeout: .seconds(5))
            try verify(result.output == "fine\n", "echo")
        },
        .functional("test_fail") { _ in try verify(false, "fails on purpose") },
    ]
    let context: TestContext
    init(context: TestContext) { self.context = context }
}

@Suite struct ReportMergeTests {
    @Test func mergeRebasesLogsKeepsOneResultPerCaseAndWarnsAboutShards() throws {
        let start = Date(timeIntervalSince1970: 1_790_000_000)
        func report(_ cases: [(String, String, CaseStatus)], shard: Int?) -> RunReport {
            let suites = Dictionary(grouping: cases, by: \.0).sorted { $0.key < $1.key }.map { suite, entries in
                SuiteResult(name: suite, cases: entries.map {
                    CaseResult(name: $0.1, kind: .functional, status: $0.2, reason: nil,
                               attempts: [CaseAttempt(status: $0.2, reason: nil, start: start, duration: 1)],
                               log: "\(suite)/\($0.1).log", perf: [], artifacts: ["\(suite)/\($0.1)/pcap"])
                }, setUpAllError: nil, tearDownAllError: nil, log: "\(suite)/suite.log", duration: 2)
            }
            var report = RunReport(start: start, duration: 5, command: [], interrupted: nil,
                                   executions: [ExecutionResult(execution: "Execution1", dut: "d", target: "t", suites: suites)],
                                   timeline: [], exitStatus: 0)
            report.shard = shard.map { ShardRecord(shard: Shard(index: $0, count: 3)!, planUnits: 4) }
            return report
        }
        let one = ReportMerge.Input(directory: "/srv/n/shard-1", report: report([("a", "x", .passed), ("b", "y", .failed)], shard: 1))
        let two = ReportMerge.Input(directory: "/srv/n/shard-2", report: report([("b", "y", .passed), ("c", "z", .passed)], shard: 2))
        let outcome = ReportMerge.merge([one, two], into: "/srv/n/merged", command: ["dts", "report", "merge"])
        let merged = outcome.report
        #expect(merged.casesByKey.mapValues(\.case.status) == [
            CaseKey(dut: "d", target: "t", suite: "a", testCase: "x"): .passed,
            CaseKey(dut: "d", target: "t", suite: "b", testCase: "y"): .passed,
            CaseKey(dut: "d", target: "t", suite: "c", testCase: "z"): .passed,
        ])
        #expect(merged.executions.count == 1)
        #expect(merged.executions[0].suites.map(\.name) == ["a", "b", "c"])
        let x = try #require(merged.casesByKey[CaseKey(dut: "d", target: "t", suite: "a", testCase: "x")]?.case)
        #expect(x.log == "../shard-1/a/x.log" && x.artifacts == ["../shard-1/a/x/pcap"])
        #expect(merged.executions[0].suites[2].log == "../shard-2/c/suite.log")
        #expect(merged.merged?.map(\.directory) == ["../shard-1", "../shard-2"])
        #expect(outcome.warnings.contains { $0.contains("b/y") && $0.contains("keeping /srv/n/shard-2's PASSED") })
        #expect(outcome.warnings.contains("missing shard 3/3"))
        #expect(outcome.warnings.contains("the merged results hold 3 of the plan's 4 cases"))
        #expect(merged.exitStatus == 0)
        let html = ReportWriters.html(merged)
        #expect(html.contains("<a href=\"../shard-1/report.html\">"))
        #expect(html.contains("href=\"../shard-1/a/x.log\""))
    }

    @Test func relativePaths() {
        #expect(ReportMerge.relativePath(from: "/a/b/merged", to: "/a/b/s1") == "../s1")
        #expect(ReportMerge.relativePath(from: "/a/merged", to: "/a/merged/s1") == "s1")
        #expect(ReportMerge.relativePath(from: "/a/x/y", to: "/b") == "../../../b")
        #expect(ReportMerge.relativePath(from: "/a", to: "/a") == ".")
    }

    /// `--baseline` with `--fail-on-regression`: a FAILED case that failed yesterday too exits 0;
    /// one that passed yesterday exits 1; the comparison heads report.html and is in compare.*.
    @Test func baselineAtTheEndOfARunAndFailOnRegression() async throws {
        func run(baseline: RunReport) async throws -> (RunReport, String) {
            let out = try TempDir("dts-baseline")
            var options = RunnerOptions(outputDirectory: out.path)
            options.baseline = Baseline(directory: "/srv/last-night", report: baseline)
            options.failOnRegression = true
            let report = try await Runner(plan: runnerLocalPlan([SuiteSelection(LabFakeSuite.self)]), options: options,
                                          run: Run(), progress: RunnerSilentProgress()).run()
            #expect(FileManager.default.fileExists(atPath: out.path + "/compare.json"))
            let html = try String(contentsOfFile: out.path + "/report.html", encoding: .utf8)
            #expect(html.range(of: "Compared with /srv/last-night")!.lowerBound < html.range(of: "<table")!.lowerBound)
            #expect(FileManager.default.fileExists(atPath: out.path + "/compare.html"))
            return (report, html)
        }
        func yesterday(_ fail: CaseStatus) -> RunReport {
            let cases = [CompareFixture.result("test_pass", .passed, suite: "lab_fake")!, CompareFixture.result("test_fail", fail, suite: "lab_fake")!]
            let executions = [ExecutionResult(execution: "Execution1", dut: "127.0.0.1", target: "x86_64-native-linuxapp-gcc", suites: [
                SuiteResult(name: "lab_fake", cases: cases, setUpAllError: nil, tearDownAllError: nil, log: "", duration: 1)])]
            return RunReport(start: Date(), duration: 1, command: [], interrupted: nil, executions: executions, timeline: [], exitStatus: 1)
        }
        let (same, _) = try await run(baseline: yesterday(.failed))
        #expect(same.allCases.first { $0.case.name == "test_fail" }?.case.status == .failed)
        #expect(same.exitStatus == 0)
        let (broke, html) = try await run(baseline: yesterday(.passed))
        #expect(broke.exitStatus == 1)
        #expect(html.contains("1 new failure,"))
    }
}
