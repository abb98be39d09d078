@testable import DTS
import DTSTestSupport
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// A report with every status, two executions, a perf table and timeline events.
func resultsSampleReport(timeline: Bool = true) -> RunReport {
    let start = Date(timeIntervalSince1970: 1_790_000_000)
    func attempt(_ status: CaseStatus, _ reason: String? = nil, _ duration: Double = 0.5) -> CaseAttempt {
        CaseAttempt(status: status, reason: reason, start: start, duration: duration)
    }
    func result(_ name: String, _ attempts: [CaseAttempt], perf: [PerfTable] = []) -> CaseResult {
        CaseResult(name: name, kind: name.hasPrefix("test_perf") ? .performance : .functional, status: attempts.last!.status,
                   reason: attempts.last!.reason, attempts: attempts, log: "Vxlan_Sample/\(name).log", perf: perf, artifacts: [])
    }
    let table = PerfTable(title: "throughput", columns: ["frame", "Mpps"], rows: [["64", "14.2"]])
    let suite = SuiteResult(name: "Vxlan_Sample", cases: [
        result("test_vxlan_encap", [attempt(.passed)]),
        result("test_vxlan_decap", [attempt(.failed, "first try"), attempt(.failed, "rx 0 packets, expected 100 <&> \"quoted\" \u{1B}[31m")]),
        result("test_vxlan_tso", [attempt(.skipped, "no TSO")]),
        result("test_vxlan_csum", [attempt(.error, "timed out after 600 seconds")]),
        result("test_perf_vxlan", [attempt(.passed, nil, 3)], perf: [table]),
    ], setUpAllError: nil, tearDownAllError: nil, log: "Vxlan_Sample/suite.log", duration: 6)
    let blocked = SuiteResult(name: "host_basic", cases: [result("test_kernel_release", [attempt(.blocked, "setUpAll failed: x")])],
                              setUpAllError: "setUpAll failed: x", tearDownAllError: nil, log: "host_basic/suite.log", duration: 1)
    let events = timeline ? [BootStageEvent(vm: "vm0", stage: "qemu", start: start, end: start.addingTimeInterval(1)),
                             BootStageEvent(vm: "vm0", stage: "ssh", start: start.addingTimeInterval(1), end: start.addingTimeInterval(11))] : []
    return RunReport(start: start, duration: 7, command: ["dts", "run", "--suite", "vxlan_sample"], interrupted: nil,
                     executions: [ExecutionResult(execution: "Execution1", dut: "127.0.0.1", target: "x86_64-native-linuxapp-gcc", suites: [suite]),
                                  ExecutionResult(execution: "Execution1", dut: "127.0.0.1", target: "i686-native-linuxapp-gcc", suites: [blocked])],
                     timeline: events, exitStatus: 3)
}

@Suite struct ResultsTests {
    @Test func testResultsJSONHasDTSShape() throws {
        let data = try ReportWriters.testResultsJSON(resultsSampleReport())
        let tree = try #require(try JSONSerialization.jsonObject(with: data) as? [String: [String: [String: String]]])
        #expect(tree == [
            "127.0.0.1": [
                "x86_64-native-linuxapp-gcc": [
                    "vxlan_sample/test_vxlan_encap": "passed",
                    "vxlan_sample/test_vxlan_decap": "failed",
                    "vxlan_sample/test_vxlan_tso": "skipped",
                    "vxlan_sample/test_vxlan_csum": "error",
                    "vxlan_sample/test_perf_vxlan": "passed",
                ],
                "i686-native-linuxapp-gcc": ["host_basic/test_kernel_release": "blocked"],
            ],
        ])
    }

    @Test func resultsJSONRoundTrips() throws {
        let report = resultsSampleReport()
        let data = try ReportWriters.resultsJSON(report)
        #expect(try ReportWriters.readResults(data) == report)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let executions = try #require(object["executions"] as? [[String: Any]])
        let cases = try #require((executions[0]["suites"] as? [[String: Any]])?[0]["cases"] as? [[String: Any]])
        #expect(cases[1]["status"] as? String == "FAILED")
        #expect((cases[1]["attempts"] as? [Any])?.count == 2)
        #expect((cases[4]["perf"] as? [[String: Any]])?.first?["title"] as? String == "throughput")
        #expect(object["start"] as? String == "2026-09-21T14:13:20Z")
    }

    @Test func junitXMLParsesAndCountsMatch() throws {
        let xml = ReportWriters.junitXML(resultsSampleReport())
        let document = try XMLDocument(xmlString: xml, options: [])
        let root = try #require(document.rootElement())
        #expect(root.name == "testsuites")
        #expect(root.attribute(forName: "tests")?.stringValue == "6")
        #expect(root.attribute(forName: "failures")?.stringValue == "2")
        #expect(root.attribute(forName: "errors")?.stringValue == "1")
        #expect(root.attribute(forName: "skipped")?.stringValue == "1")
        let suites = root.elements(forName: "testsuite")
        #expect(suites.count == 2)
        let vxlan = suites[0]
        #expect(vxlan.attribute(forName: "name")?.stringValue == "Vxlan_Sample [127.0.0.1 x86_64-native-linuxapp-gcc]")
        #expect(vxlan.attribute(forName: "tests")?.stringValue == "5")
        #expect(vxlan.attribute(forName: "time")?.stringValue == "6.000")
        let cases = vxlan.elements(forName: "testcase")
        #expect(cases.map { $0.attribute(forName: "name")?.stringValue ?? "" } ==
                ["test_vxlan_encap", "test_vxlan_decap", "test_vxlan_tso", "test_vxlan_csum", "test_perf_vxlan"])
        #expect(cases[0].elements(forName: "failure").isEmpty && cases[0].elements(forName: "error").isEmpty)
        let failure = try #require(cases[1].elements(forName: "failure").first)
        #expect(failure.attribute(forName: "message")?.stringValue == "rx 0 packets, expected 100 <&> \"quoted\" [31m")
        #expect(cases[1].attribute(forName: "time")?.stringValue == "1.000")
        #expect(cases[2].elements(forName: "skipped").first?.attribute(forName: "message")?.stringValue == "no TSO")
        #expect(cases[3].elements(forName: "error").first?.attribute(forName: "message")?.stringValue == "timed out after 600 seconds")
        #expect(cases[0].elements(forName: "system-out").first?.stringValue?.contains("log: Vxlan_Sample/test_vxlan_encap.log") == true)
        let blocked = try #require(suites[1].elements(forName: "testcase").first?.elements(forName: "failure").first)
        #expect(blocked.attribute(forName: "type")?.stringValue == "BLOCKED")
    }

    @Test func junitEscapesHostileText() throws {
        var report = resultsSampleReport()
        report.executions[0].suites[0].cases[1].reason = "bad <tag> & \"q\" 'a' \u{1B}[31m\u{0}end"
        let xml = ReportWriters.junitXML(report)
        let document = try XMLDocument(xmlString: xml, options: [])
        let failure = try #require(try document.nodes(forXPath: "//testcase[@name='test_vxlan_decap']/failure").first as? XMLElement)
        #expect(failure.attribute(forName: "message")?.stringValue == "bad <tag> & \"q\" 'a' [31mend")
        #expect(failure.stringValue == "bad <tag> & \"q\" 'a' [31mend")
        // A multi-line reason keeps its lines in the attribute too.
        report.executions[0].suites[0].cases[1].reason = "line 1\nline 2"
        let multiline = try XMLDocument(xmlString: ReportWriters.junitXML(report), options: [])
        let message = try multiline.nodes(forXPath: "//testcase[@name='test_vxlan_decap']/failure/@message").first
        #expect(message?.stringValue == "line 1\nline 2")
    }

    @Test func htmlIsSelfContainedWithTableAndTimeline() throws {
        let html = ReportWriters.html(resultsSampleReport())
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        for forbidden in ["http://", "https://", "<script", "src=", "<link"] { #expect(!html.contains(forbidden), "\(forbidden)") }
        #expect(html.contains("<td class=\"FAILED\">FAILED</td>"))
        #expect(html.contains("rx 0 packets, expected 100 &lt;&amp;&gt; &quot;quoted&quot;"))
        #expect(html.contains("<a href=\"Vxlan_Sample/test_vxlan_encap.log\">"))
        #expect(html.contains("<th>frame</th><th>Mpps</th>"))
        // ssh stage: starts at 1 s of 11 s, lasts 10 s.
        #expect(html.contains("left:9.09%;width:90.91%"))
        let empty = ReportWriters.html(resultsSampleReport(timeline: false))
        #expect(empty.contains("No VM start stages were recorded"))
        // Well-formed enough for an XML parser (every tag closed).
        let body = try #require(html.range(of: "<body>")).lowerBound
        _ = try XMLDocument(xmlString: String(html[body...]).replacingOccurrences(of: "</html>", with: ""), options: [])
    }

    @Test func writeAllCreatesEveryFile() throws {
        let dir = try TempDir("dts-results")
        try ReportWriters.writeAll(resultsSampleReport(), to: dir.path)
        for name in ["test_results.json", "results.json", "junit.xml", "report.html"] {
            #expect(FileManager.default.fileExists(atPath: dir.path + "/" + name), "\(name)")
        }
        #expect(throws: RunnerError.self) { try ReportWriters.writeAll(resultsSampleReport(), to: dir.path + "/missing/dir") }
    }

    @Test func exitStatusBySeverity() {
        func execution(_ statuses: [CaseStatus]) -> [ExecutionResult] {
            [ExecutionResult(execution: "E", dut: "d", target: "t", suites: [SuiteResult(name: "s", cases: statuses.map {
                CaseResult(name: "test_x", kind: .functional, status: $0, reason: nil, attempts: [], log: "", perf: [], artifacts: [])
            }, setUpAllError: nil, tearDownAllError: nil, log: "", duration: 0)])]
        }
        #expect(RunReport.exitStatus(for: execution([.passed, .skipped]), interruptedBy: nil) == 0)
        #expect(RunReport.exitStatus(for: execution([.passed, .failed]), interruptedBy: nil) == 1)
        #expect(RunReport.exitStatus(for: execution([.blocked]), interruptedBy: nil) == 1)
        #expect(RunReport.exitStatus(for: execution([.failed, .error]), interruptedBy: nil) == 3)
        #expect(RunReport.exitStatus(for: execution([.passed]), interruptedBy: SIGTERM) == 143)
    }

    /// The exit codes are defined once (DTSExitCode); docs/running.md's table and the README say the same numbers.
    @Test func exitCodesMatchTheDocs() throws {
        #expect(DTSExitCode.interrupted.rawValue == DTSExitCode.status(stoppedBy: SIGINT))
        #expect(DTSExitCode.terminated.rawValue == DTSExitCode.status(stoppedBy: SIGTERM))
        let running = try String(contentsOfFile: DTSBinary.packageRoot + "/docs/running.md", encoding: .utf8)
        let section = try #require(running.components(separatedBy: "## Exit status\n").dropFirst().first)
        let table = section.trimmingCharacters(in: .newlines).components(separatedBy: "\n\n").first ?? ""
        let documented = table.split(separator: "\n").dropFirst(2).flatMap { row in
            row.split(separator: "|").first.map { $0.split(separator: "/").compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) } } ?? []
        }
        #expect(Set(documented) == Set(DTSExitCode.allCases.map(\.rawValue)), "\(table)")
        let readme = try String(contentsOfFile: DTSBinary.packageRoot + "/README.md", encoding: .utf8)
        let line = try #require(readme.components(separatedBy: "Exit status: ").dropFirst().first?.components(separatedBy: "`dts vm start`").first)
        for code in DTSExitCode.allCases { #expect(line.contains("\(code.rawValue)"), "README exit status line lacks \(code)") }
    }

    @Test func runLogRoutesLinesToSuiteAndCaseLogsAndRedacts() throws {
        let dir = try TempDir("dts-log")
        let redactor = Redactor()
        redactor.register("topsecret")
        let log = try RunLog(directory: dir.path, redactor: redactor)
        let logger = log.logger(label: "t")
        logger.info("before suite")
        try log.beginSuite("s/suite.log")
        try log.beginCase("s/test_a.log", append: false)
        log.record("root@dut", .command, "login -p topsecret", redactor: redactor)
        logger.info("password is topsecret")
        log.endCase()
        try log.beginCase("s/test_a.log", append: true)
        logger.info("second attempt")
        log.endCase()
        log.endSuite()
        logger.info("after")
        log.close()
        let main = try String(contentsOfFile: dir.path + "/dts.log", encoding: .utf8)
        let suite = try String(contentsOfFile: dir.path + "/s/suite.log", encoding: .utf8)
        let testCase = try String(contentsOfFile: dir.path + "/s/test_a.log", encoding: .utf8)
        #expect(main.contains("before suite") && main.contains("after") && main.contains("root@dut $ login -p ***"))
        #expect(!suite.contains("before suite") && !suite.contains("after") && suite.contains("second attempt"))
        #expect(testCase.contains("root@dut $ login -p ***") && testCase.contains("second attempt"))
        #expect(!(main + suite + testCase).contains("topsecret"))
    }
}

@Suite struct ResultsSessionLoggingTests {
    @Test func loggingSessionRecordsAnySessionRedacted() async throws {
        let sink = LocalSessionLogCollector()
        let redactor = Redactor()
        redactor.register("pa55word")
        let session = LoggingSession(wrapping: LocalSession(endpoint: "plain"), log: sink, redactor: redactor)
        let result = try await session.exec("echo user pa55word; echo warn >&2; exit 3", timeout: .seconds(5))
        #expect(result.status == 3)
        let shell = try await session.openShell()
        let output = try await shell.sendExpect("echo $((2 + 3)) pa55word", "# ", timeout: .seconds(5))
        #expect(output == "5 pa55word")
        try await shell.sendControlC()
        await session.close()
        let lines = sink.events.map { "\($0.endpoint) \($0.kind.rawValue): \($0.text)" }
        #expect(lines.contains("plain command: echo user ***; echo warn >&2; exit 3"))
        #expect(lines.contains("plain output: user ***\n"))
        #expect(lines.contains("plain stderr: warn\n"))
        #expect(lines.contains("plain status: exit status 3"))
        #expect(lines.contains("plain (shell) command: echo $((2 + 3)) ***"))
        #expect(lines.contains("plain (shell) output: 5 ***"))
        #expect(lines.contains("plain (shell) status: ^C"))
        #expect(!lines.joined().contains("pa55word"))
    }

    /// Where a session runs and whether it logs are properties of the session, kept by wrappers.
    @Test func locationAndLogAreSessionData() {
        let sink = LocalSessionLogCollector()
        let local = LocalSession(endpoint: "plain")
        #expect(local.location == .local && local.sessionLog == nil)
        #expect(LocalSession(log: sink).sessionLog != nil)
        let wrapped = LoggingSession(wrapping: local, log: sink)
        #expect(wrapped.location == .local && wrapped.sessionLog != nil)
        let dut = Dut(session: wrapped, run: Run())
        #expect(!dut.isRemote && dut.address == "127.0.0.1" && dut.sessionLog != nil)
        #expect(!Dut(run: Run()).isRemote && Dut(run: Run()).sessionLog == nil)
    }

    /// Secrets are found in the bytes: a combining mark after the secret does not hide it.
    @Test func redactionWorksOnBytes() {
        let redactor = Redactor()
        redactor.register("pw1")
        redactor.register("x")
        redactor.register("longer-pw1")
        #expect(redactor.redact("a pw1\u{0301} b") == "a ***\u{0301} b")
        #expect(redactor.redact("longer-pw1 pw1pw1 x") == "*** ****** x")
        #expect(redactor.redact("é€ unchanged") == "é€ unchanged")
    }

    @Test func runnerWrapsSessionsThatDoNotLog() async throws {
        let out = try TempDir("dts-runner")
        let connector: DUTConnector = { crb, _, _ in LocalSession(endpoint: "quiet@\(crb.dutIP)") }
        let runner = Runner(plan: runnerLocalPlan([SuiteSelection(RunnerSelfTestProbe.self)]),
                            options: RunnerOptions(outputDirectory: out.path), run: Run(), progress: RunnerSilentProgress(), connector: connector)
        let report = try await runner.run()
        #expect(report.exitStatus == 0)
        let caseLog = try String(contentsOfFile: out.path + "/fake_probe/test_echo.log", encoding: .utf8)
        #expect(caseLog.contains("quiet@127.0.0.1 $ echo probe"))
        #expect(caseLog.contains("quiet@127.0.0.1 > probe"))
    }
}

final class RunnerSelfTestProbe: TestSuite {
    static let name = "fake_probe"
    static let cases: [TestCase<RunnerSelfTestProbe>] = [
        .functional("test_echo") { suite in
            let result = try await suite.context.dut.exec("echo probe", timeout: .seconds(5))
            try verify(result.output == "probe\n", "echo")
        },
    ]
    let context: TestContext
    init(context: TestContext) { self.context = context }
}
