@testable import DTS
import DTSTestSupport
import Foundation
import Suites
import Testing
import Synchronization

// MARK: fake suites for the runner's state machine (the DUT under them is the real local session)

/// What the fake suites did, in order.
final class RunnerEventLog: Sendable {
    private let storage = Mutex<[String]>([])
    func add(_ event: String) { storage.withLock { $0.append(event) } }
    var events: [String] { storage.withLock { $0 } }
    func reset() { storage.withLock { $0 = [] } }
}

struct RunnerInfrastructureProblem: Error, CustomStringConvertible {
    var description: String { "the lab caught fire" }
}

final class RunnerMixedSuite: TestSuite {
    static let name = "fake_mixed"
    nonisolated static let events = RunnerEventLog()
    nonisolated(unsafe) static var flakyRuns = 0
    static let cases: [TestCase<RunnerMixedSuite>] = [
        .functional("test_pass") { suite in
            let result = try await suite.context.dut.exec("echo fine", timeout: .seconds(5))
            try verify(result.output == "fine\n", "echo")
        },
        .functional("test_fail") { _ in try verify(1 + 1 == 3, "arithmetic is broken") },
        .functional("test_skip") { _ in try skip("needs a NIC this host lacks") },
        .functional("test_throw") { _ in throw RunnerInfrastructureProblem() },
        .functional("test_timeout", timeout: .milliseconds(400)) { _ in try await Task.sleep(for: .seconds(60)) },
        .functional("test_exec_timeout", timeout: .milliseconds(500)) { suite in
            _ = try await suite.context.dut.exec("sleep 61.91", timeout: .seconds(120))
        },
        .functional("test_flaky") { suite in
            RunnerMixedSuite.flakyRuns += 1
            try verify(RunnerMixedSuite.flakyRuns >= 2, "first run fails")
        },
        .performance("test_perf_numbers") { suite in
            var table = PerfTable(title: "rate", columns: ["frame", "mpps"])
            table.add([64, 14.88])
            suite.context.recordPerformance(table)
        },
    ]

    let context: TestContext
    init(context: TestContext) { self.context = context }
    func setUpAll() async throws { Self.events.add("setUpAll") }
    func setUp() async throws { Self.events.add("setUp \(context.currentCase ?? "?")") }
    func tearDown() async throws { Self.events.add("tearDown \(context.currentCase ?? "?")") }
    func tearDownAll() async throws { Self.events.add("tearDownAll") }
}

final class RunnerBrokenSetUpSuite: TestSuite {
    static let name = "fake_broken"
    nonisolated static let events = RunnerEventLog()
    static let cases: [TestCase<RunnerBrokenSetUpSuite>] = [
        .functional("test_a") { _ in RunnerBrokenSetUpSuite.events.add("ran a") },
        .functional("test_b") { _ in RunnerBrokenSetUpSuite.events.add("ran b") },
    ]
    let context: TestContext
    init(context: TestContext) { self.context = context }
    func setUpAll() async throws { throw RunnerInfrastructureProblem() }
    func tearDown() async throws { Self.events.add("tearDown") }
    func tearDownAll() async throws { Self.events.add("tearDownAll") }
}

final class RunnerSkippedSuite: TestSuite {
    static let name = "fake_skipped"
    static let cases: [TestCase<RunnerSkippedSuite>] = [.functional("test_a") { _ in }]
    let context: TestContext
    init(context: TestContext) { self.context = context }
    func setUpAll() async throws { try skip("no hugepages") }
}

final class RunnerLongSuite: TestSuite {
    static let name = "fake_long"
    nonisolated static let events = RunnerEventLog()
    static let cases: [TestCase<RunnerLongSuite>] = [
        .functional("test_long") { suite in
            RunnerLongSuite.events.add("long started")
            _ = try await suite.context.dut.exec("sleep 121.83", timeout: .seconds(300))
        },
        .functional("test_after") { _ in RunnerLongSuite.events.add("after ran") },
    ]
    let context: TestContext
    init(context: TestContext) { self.context = context }
    func tearDown() async throws { Self.events.add("tearDown \(context.currentCase ?? "?")") }
    func tearDownAll() async throws { Self.events.add("tearDownAll") }
}

final class RunnerBadConfigSuite: TestSuite {
    static let name = "fake_bad_config"
    static let cases: [TestCase<RunnerBadConfigSuite>] = [
        .functional("test_number") { suite in _ = try suite.context.config.int("frames") },
    ]
    let context: TestContext
    init(context: TestContext) { self.context = context }
}

struct RunnerSilentProgress: RunProgress {
    func suiteStarted(_ suite: String, dut: String, target: String) {}
    func caseStarted(_ suite: String, _ name: String, attempt: Int) {}
    func caseFinished(_ suite: String, _ name: String, attempt: CaseAttempt) {}
    func note(_ text: String) {}
}

func runnerLocalPlan(_ selections: [SuiteSelection], parameters: [String: String] = [:]) -> RunPlan {
    RunPlan(executions: [PlannedExecution(name: "Execution1", crb: .implicitLocal("127.0.0.1"), target: "x86_64-native-linuxapp-gcc",
                                          parameters: parameters, suites: selections)])
}

@Suite(.serialized) struct RunnerTests {
    @Test func everyOutcomeIsClassifiedAndTearDownFollowsEachCase() async throws {
        RunnerMixedSuite.events.reset()
        RunnerMixedSuite.flakyRuns = 0
        let out = try TempDir("dts-runner")
        let runner = Runner(plan: runnerLocalPlan([SuiteSelection(RunnerMixedSuite.self)], parameters: ["func": "true", "perf": "true"]),
                            options: RunnerOptions(outputDirectory: out.path, reRuns: 1, cancelGrace: .seconds(5)),
                            run: Run(), progress: RunnerSilentProgress())
        let report = try await runner.run()
        let cases = try #require(report.executions.first?.suites.first?.cases)
        let status = Dictionary(uniqueKeysWithValues: cases.map { ($0.name, $0.status) })
        #expect(status == ["test_pass": .passed, "test_fail": .failed, "test_skip": .skipped, "test_throw": .error,
                           "test_timeout": .error, "test_exec_timeout": .error, "test_flaky": .passed, "test_perf_numbers": .passed])
        let byName = Dictionary(uniqueKeysWithValues: cases.map { ($0.name, $0) })
        #expect(byName["test_fail"]?.reason?.contains("arithmetic is broken") == true)
        #expect(byName["test_skip"]?.reason == "needs a NIC this host lacks")
        #expect(byName["test_throw"]?.reason?.contains("the lab caught fire") == true)
        #expect(byName["test_timeout"]?.reason?.hasPrefix("timed out after") == true)
        #expect(byName["test_exec_timeout"]?.reason?.hasPrefix("timed out after") == true)
        // --re-run 1: failed and errored cases ran twice, each attempt recorded; passing ones once.
        #expect(byName["test_fail"]?.attempts.map(\.status) == [.failed, .failed])
        #expect(byName["test_throw"]?.attempts.count == 2)
        #expect(byName["test_flaky"]?.attempts.map(\.status) == [.failed, .passed])
        #expect(byName["test_pass"]?.attempts.count == 1)
        #expect(byName["test_skip"]?.attempts.count == 1)
        #expect(byName["test_perf_numbers"]?.perf == [PerfTable(title: "rate", columns: ["frame", "mpps"], rows: [["64", "14.88"]])])
        // Hooks: setUp and tearDown around every attempt, tearDownAll last.
        let events = RunnerMixedSuite.events.events
        #expect(events.first == "setUpAll")
        #expect(events.last == "tearDownAll")
        let attempts = cases.reduce(0) { $0 + $1.attempts.count }
        #expect(events.filter { $0.hasPrefix("setUp ") }.count == attempts)
        #expect(events.filter { $0.hasPrefix("tearDown ") }.count == attempts)
        #expect(events.contains("tearDown test_timeout"))
        // The timed-out sleep 61.91 was killed with its case.
        let left = localProcesses(running: "sleep 61.91")
        #expect(left.isEmpty)
        #expect(report.exitStatus == DTSExitCode.infrastructureError.rawValue)
        // Logs: the case log holds the command and its output.
        let passLog = try String(contentsOfFile: out.path + "/fake_mixed/test_pass.log", encoding: .utf8)
        #expect(passLog.contains("$ echo fine"))
        #expect(passLog.contains("> fine"))
        let flakyLog = try String(contentsOfFile: out.path + "/fake_mixed/test_flaky.log", encoding: .utf8)
        #expect(flakyLog.contains("attempt 1") && flakyLog.contains("attempt 2"))
        #expect(FileManager.default.fileExists(atPath: out.path + "/fake_mixed/suite.log"))
        #expect(FileManager.default.fileExists(atPath: out.path + "/junit.xml"))
    }

    @Test func functionalAndPerformanceSelectionFollowsParameters() {
        let all = SuiteSelection(RunnerMixedSuite.self)
        #expect(!all.caseNames(parameters: [:]).contains("test_perf_numbers"))
        #expect(all.caseNames(parameters: ["func": "false", "perf": "true"]) == ["test_perf_numbers"])
        let picked = SuiteSelection(RunnerMixedSuite.self, cases: ["test_perf_numbers", "test_pass"])
        #expect(picked.caseNames(parameters: [:]) == ["test_pass", "test_perf_numbers"])
    }

    @Test func setUpAllFailureBlocksEveryCaseAndTearDownAllRuns() async throws {
        RunnerBrokenSetUpSuite.events.reset()
        let out = try TempDir("dts-runner")
        let runner = Runner(plan: runnerLocalPlan([SuiteSelection(RunnerBrokenSetUpSuite.self), SuiteSelection(RunnerSkippedSuite.self)]),
                            options: RunnerOptions(outputDirectory: out.path), run: Run(), progress: RunnerSilentProgress())
        let report = try await runner.run()
        let broken = try #require(report.executions.first?.suites.first)
        #expect(broken.cases.map(\.status) == [.blocked, .blocked])
        #expect(broken.setUpAllError?.contains("the lab caught fire") == true)
        #expect(RunnerBrokenSetUpSuite.events.events == ["tearDownAll"])
        let skipped = try #require(report.executions.first?.suites.last)
        #expect(skipped.cases.map(\.status) == [.skipped])
        #expect(skipped.cases.first?.reason == "no hugepages")
        #expect(report.exitStatus == DTSExitCode.testFailures.rawValue)
    }

    @Test func stopRequestCancelsTheCaseRunsTearDownsAndStops() async throws {
        RunnerLongSuite.events.reset()
        let out = try TempDir("dts-runner")
        let control = RunControl()
        let runner = Runner(plan: runnerLocalPlan([SuiteSelection(RunnerLongSuite.self)]), options: RunnerOptions(outputDirectory: out.path),
                            run: Run(), control: control, progress: RunnerSilentProgress())
        let started = ContinuousClock.now
        let run = Task { try await runner.run() }
        while !RunnerLongSuite.events.events.contains("long started") { try await Task.sleep(for: .milliseconds(50)) }
        try await Task.sleep(for: .milliseconds(200))
        control.requestStop(.signal(SIGINT))
        let report = try await run.value
        #expect(ContinuousClock.now - started < .seconds(30))
        let cases = try #require(report.executions.first?.suites.first?.cases)
        #expect(cases.map(\.name) == ["test_long"])
        #expect(cases.first?.status == .error)
        #expect(cases.first?.reason?.contains("interrupted by SIGINT") == true)
        #expect(RunnerLongSuite.events.events == ["long started", "tearDown test_long", "tearDownAll"])
        #expect(report.interrupted == "SIGINT")
        #expect(report.exitStatus == DTSExitCode.interrupted.rawValue)
        let left = localProcesses(running: "sleep 121.83")
        #expect(left.isEmpty)
        let saved = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: out.path + "/results.json")))
        #expect(saved.interrupted == "SIGINT")
    }

    @Test func cleanupRegistryRunsOnEveryPathNewestFirst() async throws {
        let out = try TempDir("dts-runner")
        let run = Run(root: out.path + "/runs")
        let runner = Runner(plan: runnerLocalPlan([SuiteSelection(RunnerSkippedSuite.self)]), options: RunnerOptions(outputDirectory: out.path),
                            run: run, progress: RunnerSilentProgress())
        let order = RunnerEventLog()
        await run.register("vm0") { order.add("vm0") }
        let token = await run.register("backend") { order.add("backend") }
        await run.register("vm1") { order.add("vm1") }
        await run.register("stuck") { try? await Task.sleep(for: .seconds(600)) }
        await run.unregister(token)
        run.timeline.record(vm: "vm0", stage: "boot", start: Date(), end: Date().addingTimeInterval(2))
        let started = ContinuousClock.now
        _ = await run.cleanUpAll(timeout: .milliseconds(300))
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(order.events == ["vm1", "vm0"])
        #expect(await run.pending.isEmpty)
        #expect(await run.history.contains { $0.hasPrefix("stuck: still running") })
        // A cleanup registered later runs at the end of the run, and the run directory goes with it.
        let directory = try run.directory.path
        #expect(FileManager.default.fileExists(atPath: directory))
        await run.register("late") { order.add("late") }
        let report = try await runner.run()
        #expect(report.timeline.map(\.stage) == ["boot"])
        #expect(order.events == ["vm1", "vm0", "late"])
        #expect(await run.pending.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: directory), "the run directory outlived the run")
    }

    @Test func suiteConfigErrorsBlockTheSuiteWithFileAndLine() async throws {
        let conf = try TempDir("dts-conf")
        _ = try conf.write("fake_bad_config.cfg", "[suite]\nframes = many\n")
        let out = try TempDir("dts-runner")
        let runner = Runner(plan: runnerLocalPlan([SuiteSelection(RunnerBadConfigSuite.self)]),
                            options: RunnerOptions(outputDirectory: out.path, settings: RunSettings(confDirectory: conf.path)),
                            run: Run(), progress: RunnerSilentProgress())
        let report = try await runner.run()
        let result = try #require(report.executions.first?.suites.first?.cases.first)
        #expect(result.status == .error)
        #expect(result.reason?.contains("fake_bad_config.cfg:2") == true)
        #expect(result.reason?.contains("expected an integer, got 'many'") == true)
    }

    @Test func remoteDUTSaysItNeedsSSH() async throws {
        let out = try TempDir("dts-runner")
        var crb = CRBConfig.implicitLocal("10.0.0.9")
        crb.dutIP = "10.0.0.9"
        let plan = RunPlan(executions: [PlannedExecution(name: "E", crb: crb, target: "t", parameters: [:],
                                                         suites: [SuiteSelection(RunnerSkippedSuite.self)])])
        let report = try await Runner(plan: plan, options: RunnerOptions(outputDirectory: out.path), run: Run(), progress: RunnerSilentProgress(),
                                  connector: Runner.localOnly).run()
        let result = try #require(report.allCases.first?.case)
        #expect(result.status == .error)
        #expect(result.reason?.contains("remote DUTs need the SSH layer") == true)
        #expect(report.exitStatus == DTSExitCode.infrastructureError.rawValue)
    }

    @Test func outputDirectoryIsReusedOnlyWhenDtsWroteIt() throws {
        let dir = try TempDir("dts-out")
        _ = try dir.write("notes.txt", "mine")
        #expect(throws: RunnerError.self) { try Runner.prepareOutputDirectory(dir.path) }
        _ = try dir.write("results.json", "{}")
        try Runner.prepareOutputDirectory(dir.path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }
}

@Suite struct RunnerRegistryTests {
    @Test func registeredSuitesHaveUniqueDTSNames() {
        #expect(SuiteInfo.validate(SuiteRegistry.all) == [])
        #expect(SuiteRegistry.suite(named: "host_basic") != nil)
        for type in SuiteRegistry.all {
            #expect(SuiteInfo.cases(of: type).allSatisfy { $0.name.hasPrefix("test_") })
        }
    }

    @Test func onlyTheRunnerSelfTestIsInternal() {
        #expect(SuiteRegistry.all.filter { $0.isInternal }.map { $0.name } == ["runner_selftest"])
        // Internal suites still resolve by name for dts run.
        #expect(SuiteRegistry.suite(named: "runner_selftest") != nil)
    }

    @Test func validationCatchesDuplicatesAndBadNames() {
        final class Dup: TestSuite {
            static let name = "host_basic"
            static let cases: [TestCase<Dup>] = [.functional("test_a") { _ in }, .functional("test_a") { _ in }, .functional("check") { _ in }]
            init(context: TestContext) {}
        }
        let problems = SuiteInfo.validate(SuiteRegistry.all + [Dup.self])
        #expect(problems.contains("suite name 'host_basic' is registered twice"))
        #expect(problems.contains("host_basic: case 'test_a' is defined twice"))
        #expect(problems.contains("host_basic: case 'check' does not start with test_"))
    }
}

@Suite struct RunnerConfigTests {
    @Test func executionConfigParsesDTSFormat() throws {
        let dir = try TempDir("dts-conf")
        let path = try dir.write("execution.cfg", """
            # comment
            [Execution1]
            crbs = 127.0.0.1
            drivername = vfio-pci
            test_suites =
                host_basic,
                runner_selftest:test_verify\\test_sleep,
                fake_mixed
            targets =
                x86_64-native-linuxapp-gcc
            parameters = nic_type=cfg:func=true:perf=false
            """)
        let config = try ExecutionConfig(path: path)
        let execution = try #require(config.executions.first)
        #expect(execution.crbs == ["127.0.0.1"])
        #expect(execution.suites.map(\.name) == ["host_basic", "runner_selftest", "fake_mixed"])
        #expect(execution.suites[1].cases == ["test_verify", "test_sleep"])
        #expect(execution.suites[1].location.line == 7)
        #expect(execution.targets == ["x86_64-native-linuxapp-gcc"])
        #expect(execution.parameters == ["nic_type": "cfg", "func": "true", "perf": "false"])
        #expect(execution.driverName == "vfio-pci")

        let plan = try RunPlan.resolve(execution: config, crbs: nil, suites: [], testCases: [],
                                       registry: SuiteRegistry.all + [RunnerMixedSuite.self])
        #expect(plan.executions.count == 1)
        #expect(plan.executions[0].crb.isLocal)
        #expect(plan.executions[0].suites.map { $0.type.name } == ["host_basic", "runner_selftest", "fake_mixed"])
        let overridden = try RunPlan.resolve(execution: config, crbs: nil, suites: ["host_basic"], testCases: ["test_qemu_version"],
                                             registry: SuiteRegistry.all)
        #expect(overridden.executions[0].suites.map { $0.type.name } == ["host_basic"])
        #expect(overridden.executions[0].suites[0].cases == ["test_qemu_version"])
    }

    @Test func dutOptionReplacesTheExecutionsCRBs() throws {
        let dir = try TempDir("dts-conf")
        let config = try ExecutionConfig(path: try dir.write("execution.cfg", "[Execution1]\ncrbs = 127.0.0.1\ntest_suites = host_basic\ntargets = t1\n"))
        let crbs = try CRBsConfig(path: try dir.write("crbs.cfg", "[lab-dut]\ndut_ip = 10.9.9.9\ndut_user = root\ndut_passwd = pw\n"))
        let plan = try RunPlan.resolve(execution: config, crbs: crbs, suites: [], testCases: [], registry: SuiteRegistry.all, duts: ["lab-dut"])
        #expect(plan.executions.map(\.crb.dutIP) == ["10.9.9.9"])
        #expect(plan.executions.map(\.target) == ["t1"])
        // Without an execution.cfg too.
        let direct = try RunPlan.resolve(execution: nil, crbs: crbs, suites: ["host_basic"], testCases: [], registry: SuiteRegistry.all,
                                         duts: ["lab-dut", "127.0.0.1"])
        #expect(direct.executions.map(\.crb.dutIP) == ["10.9.9.9", "127.0.0.1"])
        // An unknown DUT names what is known.
        #expect {
            _ = try RunPlan.resolve(execution: nil, crbs: crbs, suites: ["host_basic"], testCases: [], registry: SuiteRegistry.all, duts: ["lab-dux"])
        } throws: { error in
            "\(error)".contains("<command line>: --dut: unknown DUT 'lab-dux'") && "\(error)".contains("did you mean 'lab-dut'?")
        }
    }

    @Test func planErrorsNameFileAndLine() throws {
        let dir = try TempDir("dts-conf")
        let path = try dir.write("execution.cfg", """
            [Execution1]
            crbs = 10.1.1.1
            test_suites =
                host_basik,
                host_basic:test_nope
            parameters = func=maybe
            """)
        #expect {
            _ = try ExecutionConfig(path: path)
        } throws: { error in
            (error as? ConfigErrors)?.description.contains("execution.cfg:6: [Execution1] parameters: func=maybe: expected true or false") == true
        }
        let fixed = try dir.write("execution2.cfg", """
            [Execution1]
            crbs = 10.1.1.1
            test_suites =
                host_basik,
                host_basic:test_nope
            """)
        let config = try ExecutionConfig(path: fixed)
        let crbs = try CRBsConfig(path: try dir.write("crbs.cfg", "[10.1.1.2]\ndut_ip = 10.1.1.2\ndut_passwd = pw\n"))
        do {
            _ = try RunPlan.resolve(execution: config, crbs: crbs, suites: [], testCases: [], registry: SuiteRegistry.all)
            Issue.record("expected errors")
        } catch {
            let text = error.description
            #expect(text.contains("execution2.cfg:4: [Execution1] suite: unknown suite 'host_basik' (did you mean 'host_basic'?)"))
            #expect(text.contains("execution2.cfg:5: [Execution1] test case: unknown case 'test_nope' in suite host_basic"))
            #expect(text.contains("execution2.cfg:1: [Execution1] crbs: unknown DUT '10.1.1.1'"))
        }
        #expect(throws: ConfigErrors.self) {
            _ = try RunPlan.resolve(execution: nil, crbs: nil, suites: ["host_basic", "runner_selftest"], testCases: ["test_a"],
                                    registry: SuiteRegistry.all)
        }
    }

    @Test func crbsConfigReadsDUTs() throws {
        let dir = try TempDir("dts-conf")
        let path = try dir.write("crbs.cfg", """
            [127.0.0.1]
            dut_ip = 127.0.0.1
            dut_user = root
            dut_passwd =
            channels = 4
            [lab-dut]
            dut_ip = 192.0.2.10
            dut_user = tester
            dut_passwd = hunter2
            dut_port = 2222
            """)
        let crbs = try CRBsConfig(path: path)
        #expect(crbs.crbs.map(\.name) == ["127.0.0.1", "lab-dut"])
        #expect(crbs.crb("127.0.0.1")?.isLocal == true)
        #expect(crbs.crb("127.0.0.1")?.values["channels"] == "4")
        let lab = try #require(crbs.crb("lab-dut"))
        #expect(!lab.isLocal && lab.dutPort == 2222 && lab.dutUser == "tester" && lab.dutPassword == "hunter2")
        let bad = try dir.write("bad.cfg", "[x]\ndut_ipp = 1.2.3.4\n")
        #expect {
            _ = try CRBsConfig(path: bad)
        } throws: { error in
            let text = (error as? ConfigErrors)?.description ?? ""
            return text.contains("bad.cfg:2: [x] dut_ipp: unknown crbs.cfg key 'dut_ipp' (did you mean 'dut_ip'?)")
                && text.contains("bad.cfg:1: [x] dut_ip: missing")
        }
        // `dts config check` reports the same key error for a file named crbs.cfg.
        let checked = try dir.write("crbs.cfg", "[x]\ndut_ipp = 1.2.3.4\n")
        let reported = ConfigChecker.check(path: checked).map(\.description)
        #expect(reported.count == 1
                && reported[0].hasPrefix("\(checked):2: [x] dut_ipp: unknown crbs.cfg key 'dut_ipp' (did you mean 'dut_ip'?)"), "\(reported)")
    }

    @Test func suiteConfigTypedGetters() throws {
        let dir = try TempDir("dts-conf")
        let path = try dir.write("s.cfg", """
            [vm0]
            cpu = model=host
            [suite]
            frames = 100
            enabled = yes
            sizes = 64, 128,
                1518
            name = abc
            broken = 12x
            """)
        let config = try SuiteConfig(path: path)
        #expect(try config.int("frames") == 100)
        #expect(try config.bool("enabled"))
        #expect(try config.list("sizes") == ["64", "128", "1518"])
        #expect(try config.string("name") == "abc")
        #expect(try config.int("absent", default: 7) == 7)
        #expect(config.string("absent", default: "d") == "d")
        #expect {
            _ = try config.int("broken")
        } throws: { error in
            (error as? ConfigError)?.description == "\(path):9: [suite] broken: expected an integer, got '12x'"
        }
        #expect {
            _ = try config.string("missing")
        } throws: { error in
            (error as? ConfigError)?.description.contains("\(path):3: [suite] missing: required suite setting missing") == true
        }
        let none = try SuiteConfig(path: dir.path + "/absent.cfg")
        #expect(none.keys.isEmpty)
        #expect(throws: ConfigError.self) { _ = try none.bool("x") }
    }
}

final class RunnerStubbornSuite: TestSuite {
    static let name = "fake_stubborn"
    nonisolated static let events = RunnerEventLog()
    /// Set by the test once the run has ended.
    nonisolated static let release = Latch<Void>()
    static let cases: [TestCase<RunnerStubbornSuite>] = [
        // Ignores cancellation until the test releases it (a wait that cancellation does not end,
        // not a busy loop, which would hold the suite's actor): the runner gives up on it after the
        // grace period. No fixed delay: the test releases it once the run has ended, however
        // loaded the machine is.
        .functional("test_ignores_cancel", timeout: .milliseconds(300)) { _ in
            await RunnerStubbornSuite.release.wait()
            RunnerStubbornSuite.events.add("case ended")
        },
    ]
    let context: TestContext
    init(context: TestContext) { self.context = context }
    func tearDown() async throws { Self.events.add("tearDown") }
}

@Suite struct RunnerStubbornCaseTests {
    @Test(.timeLimit(.minutes(1))) func caseIgnoringCancellationIsAbandonedAfterGrace() async throws {
        let out = try TempDir("dts-runner")
        let runner = Runner(plan: runnerLocalPlan([SuiteSelection(RunnerStubbornSuite.self)]),
                            options: RunnerOptions(outputDirectory: out.path, cancelGrace: .milliseconds(500)), run: Run(), progress: RunnerSilentProgress())
        let report = try await runner.run()
        // The run ended while the case was still going.
        #expect(!RunnerStubbornSuite.events.events.contains("case ended"))
        let result = try #require(report.allCases.first?.case)
        #expect(result.status == .error)
        #expect(result.reason?.contains("did not stop within 0.5 seconds of cancellation") == true)
        #expect(RunnerStubbornSuite.events.events == ["tearDown"])
        // Released now, the abandoned case finishes on its own, after the run.
        RunnerStubbornSuite.release.set(())
        for _ in 0..<100 where RunnerStubbornSuite.events.events.count < 2 {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(RunnerStubbornSuite.events.events == ["tearDown", "case ended"])
    }
}
