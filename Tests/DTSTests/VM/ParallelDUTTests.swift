@testable import DTS
import DTSTestSupport
import Foundation
import Synchronization
import Testing

/// Sleeps on its DUT and records when, so that a test can tell whether two DUTs ran at once.
final class LabSleepSuite: TestSuite {
    static let name = "lab_sleep"
    nonisolated static let spans = Mutex<[String: (start: ContinuousClock.Instant, end: ContinuousClock.Instant)]>([:])
    nonisolated static let events = RunnerEventLog()
    static let cases: [TestCase<LabSleepSuite>] = [
        .functional("test_sleep") { suite in
            let start = ContinuousClock.now
            LabSleepSuite.events.add("started \(suite.context.dut.name)")
            let seconds = suite.context.parameters["sleep"] ?? "1.5"
            _ = try await suite.context.dut.exec(argv: ["sleep", seconds], timeout: .seconds(300))
            LabSleepSuite.spans.withLock { $0[suite.context.dut.name] = (start, ContinuousClock.now) }
        },
    ]
    let context: TestContext
    init(context: TestContext) { self.context = context }
    func tearDownAll() async throws { Self.events.add("tearDownAll \(context.dut.name)") }
}

/// Several DUTs in one run, on this machine (two `crbs.cfg` names for 127.0.0.1): one worker per
/// DUT, `--jobs`, per-DUT logs, Ctrl-C reaching every worker.
@Suite(.serialized) struct ParallelDUTRunnerTests {
    static func plan(sleep: String) -> RunPlan {
        RunPlan(executions: ["dut-a", "dut-b"].map { name in
            var crb = CRBConfig.implicitLocal("127.0.0.1")
            crb.name = name
            return PlannedExecution(name: "Execution1", crb: crb, target: "default", parameters: ["sleep": sleep],
                                    suites: [SuiteSelection(LabSleepSuite.self)])
        })
    }

    @Test func dutsRunAtOnceUnlessJobsIsOne() async throws {
        for jobs in [nil, 1] as [Int?] {
            LabSleepSuite.spans.withLock { $0 = [:] }
            let out = try TempDir("dts-parallel")
            let report = try await Runner(plan: Self.plan(sleep: "1.5"), options: RunnerOptions(outputDirectory: out.path, jobs: jobs),
                                          run: Run(), progress: RunnerSilentProgress()).run()
            #expect(report.executions.map(\.dut) == ["dut-a", "dut-b"])
            #expect(report.allCases.allSatisfy { $0.case.status == .passed })
            let spans = LabSleepSuite.spans.withLock { $0 }
            let a = try #require(spans["dut-a"]), b = try #require(spans["dut-b"])
            let overlap = a.start < b.end && b.start < a.end
            #expect(overlap == (jobs == nil), "jobs \(String(describing: jobs)): a \(a), b \(b)")
            for dut in ["dut-a", "dut-b"] {
                #expect(FileManager.default.fileExists(atPath: "\(out.path)/\(dut)/dut.log"))
                let caseLog = try String(contentsOfFile: "\(out.path)/\(dut)/lab_sleep/test_sleep.log", encoding: .utf8)
                #expect(caseLog.contains("$ sleep 1.5"))
                #expect(report.allCases.first { $0.execution.dut == dut }?.case.log == "\(dut)/lab_sleep/test_sleep.log")
            }
            let aLog = try String(contentsOfFile: out.path + "/dut-a/lab_sleep/suite.log", encoding: .utf8)
            #expect(!aLog.contains("dut-b"), "dut-a's suite log has dut-b's lines")
        }
    }

    @Test func stopRequestStopsEveryWorker() async throws {
        LabSleepSuite.events.reset()
        let out = try TempDir("dts-parallel-stop")
        let control = RunControl()
        let runner = Runner(plan: Self.plan(sleep: "117.31"), options: RunnerOptions(outputDirectory: out.path),
                            run: Run(), control: control, progress: RunnerSilentProgress())
        let started = ContinuousClock.now
        let run = Task { try await runner.run() }
        while LabSleepSuite.events.events.filter({ $0.hasPrefix("started") }).count < 2 {
            if ContinuousClock.now - started > .seconds(60) { control.requestStop(.signal(SIGINT)); break }
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .milliseconds(300))
        control.requestStop(.signal(SIGINT))
        let report = try await run.value
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(report.allCases.count == 2)
        #expect(report.allCases.allSatisfy { $0.case.status == .error && $0.case.reason?.contains("interrupted by SIGINT") == true })
        #expect(Set(LabSleepSuite.events.events.filter { $0.hasPrefix("tearDownAll") }) == ["tearDownAll dut-a", "tearDownAll dut-b"])
        #expect(report.exitStatus == DTSExitCode.interrupted.rawValue)
        #expect(localProcesses(running: "sleep 117.31").isEmpty)
    }
}

extension RealGuestTests {
    /// Two namespace DUTs: `host_basic` on one and `virt_basic` (a TCG guest) on the other in one
    /// run, first one DUT at a time (`--jobs 1`), then both at once: same results, the parallel
    /// run takes less than the sequential one, and nothing is left on either DUT.
    ///
    /// The first DUT also runs `runner_selftest`'s `test_sleep` (12 s of `sleep` on the DUT), as a
    /// lab DUT waits on traffic generators: on two cores the TCG guest keeps the CPUs busy, and
    /// host_basic alone (about 3 s) is within the machine's noise.
    @Suite struct ParallelDUTTests {
        @Test func hostBasicAndVirtBasicOnTwoNamespaceDUTsAtOnce() async throws {
            try VMFixture.requireGuestImage()
            let a = try RemoteNamespaceHost()
            defer { a.tearDown() }
            let b = try RemoteNamespaceHost()
            defer { b.tearDown() }
            let conf = try TempDir("dts-parallel-conf")
            let out = try TempDir("dts-parallel-out")
            for file in ["virt_global.cfg", "virt_basic.cfg", "host_basic.cfg"]
            where FileManager.default.fileExists(atPath: DTSBinary.packageRoot + "/conf/" + file) {
                try FileManager.default.copyItem(atPath: DTSBinary.packageRoot + "/conf/" + file, toPath: conf.path + "/" + file)
            }
            _ = try conf.write("crbs.cfg", a.crbsSection("ns-a") + b.crbsSection("ns-b"))
            _ = try conf.write("runner_selftest.cfg", "[suite]\nsleep_seconds = 12\n")
            _ = try conf.write("execution.cfg", """
                [Execution1]
                crbs = ns-a
                test_suites = host_basic, runner_selftest:test_sleep
                targets = x86_64-native-linuxapp-gcc

                [Execution2]
                crbs = ns-b
                test_suites = virt_basic:test_vm_kernel\\test_vm_file_copy\\test_vm_guest_agent
                targets = x86_64-native-linuxapp-gcc

                """)
            var seconds: [String: Double] = [:]
            var trees: [String: [String: [String: [String: String]]]] = [:]
            for (label, extra) in [("sequential", ["--jobs", "1"]), ("parallel", [])] {
                let dir = out.path + "/" + label
                let clock = ContinuousClock.now
                let result = try await DTSBinary.run(["run", "--conf-dir", conf.path, "--accel", "tcg", "--output", dir] + extra)
                seconds[label] = (ContinuousClock.now - clock).seconds
                #expect(result.status == 0, "\(label): \(result.output)")
                let report = try ReportWriters.readResults(directory: dir)
                #expect(report.allCases.count == 8 && report.allCases.allSatisfy { $0.case.status == .passed },
                        "\(label): \(report.allCases.map { "\($0.execution.dut) \($0.case.name): \($0.case.status) \($0.case.reason ?? "")" })")
                print("\(label): " + report.executions.flatMap { e in e.suites.map { "\(e.dut) \($0.name) \(String(format: "%.1f", $0.duration)) s" } }
                    .joined(separator: ", ") + ", run \(String(format: "%.1f", report.duration)) s")
                let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/test_results.json"))
                trees[label] = try JSONSerialization.jsonObject(with: data) as? [String: [String: [String: String]]]
                // Per-DUT subtrees, the guest's logs under its DUT, plain progress lines naming the DUT.
                #expect(FileManager.default.fileExists(atPath: dir + "/ns-a/host_basic/test_file_transfer.log"))
                #expect(FileManager.default.fileExists(atPath: dir + "/ns-b/virt_basic/test_vm_kernel.log"))
                let console = (try? String(contentsOfFile: dir + "/ns-b/vms/vm0/console.log", encoding: .utf8)) ?? ""
                #expect(console.contains("DTS-GUEST-READY"), "\(label): no console log under ns-b/vms")
                #expect(result.stdout.contains("[ns-a] == host_basic on ns-a") && result.stdout.contains("[ns-b] == virt_basic on ns-b"),
                        "\(label): \(result.stdout)")
                // Nothing left on either DUT: no QEMU, no run directory, no scratch directory, no session.
                let uid = String(getpwnam(RemoteNamespaceHost.user)!.pointee.pw_uid)
                #expect(qemuProcesses(matching: "/tmp/dts-vms.").filter { RemoteVMTests.status($0, "Uid") == uid }.isEmpty)
                #expect(RemoteVMTests.ownRunDirectories().isEmpty)
                let scratch = ((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter { $0.hasPrefix("dts-host-basic.") }
                    .filter { ((try? FileManager.default.attributesOfItem(atPath: "/tmp/" + $0)[.ownerAccountName]) as? String) == RemoteNamespaceHost.user }
                #expect(scratch.isEmpty, "\(label): host_basic's scratch left: \(scratch)")
                #expect(a.waitForNoSessions() && b.waitForNoSessions(), "\(label): a session is still open")
            }
            #expect(trees["parallel"] == trees["sequential"])
            let sequential = seconds["sequential"]!, parallel = seconds["parallel"]!
            print("two namespace DUTs (host_basic + a 12 s sleep, virt_basic): one at a time \(String(format: "%.1f", sequential)) s, "
                  + "at once \(String(format: "%.1f", parallel)) s (ratio \(String(format: "%.2f", parallel / sequential)))")
            #expect(parallel < sequential, "at once \(parallel) s, one at a time \(sequential) s")
        }
    }
}
