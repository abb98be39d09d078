@testable import DTS
import DTSTestSupport
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// The built `dts` binary running real suites on this machine as the DUT.
@Suite(.serialized) struct RunnerEndToEndTests {
    @Test func hostBasicPassesAndLeavesEveryArtifact() async throws {
        let conf = try TempDir("dts-e2e-conf")
        let out = try TempDir("dts-e2e-out")
        let result = try await DTSBinary.run(["run", "--suite", "host_basic", "--conf-dir", conf.path, "--output", out.path + "/results"])
        #expect(result.status == 0, "stdout: \(result.stdout)\nstderr: \(result.stderr)")
        let dir = out.path + "/results"
        for file in ["dts.log", "test_results.json", "results.json", "junit.xml", "report.html", "host_basic/suite.log",
                     "host_basic/test_kernel_release.log", "host_basic/test_shell_send_expect.log",
                     "host_basic/test_file_transfer.log", "host_basic/test_qemu_version.log"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/" + file), "missing \(file)")
        }
        let tree = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/test_results.json"))) as? [String: [String: [String: String]]]
        #expect(tree?["127.0.0.1"]?["default"] == [
            "host_basic/test_kernel_release": "passed", "host_basic/test_shell_send_expect": "passed",
            "host_basic/test_file_transfer": "passed", "host_basic/test_qemu_version": "passed",
        ])
        let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: dir + "/results.json")))
        #expect(report.exitStatus == 0)
        #expect(report.allCases.first { $0.case.name == "test_qemu_version" }?.case.perf.first?.rows.first?.first == "qemu-system-x86_64")
        let junit = try XMLDocument(contentsOf: URL(fileURLWithPath: dir + "/junit.xml"), options: [])
        #expect(junit.rootElement()?.attribute(forName: "tests")?.stringValue == "4")
        // The case log holds the commands sent on the DUT and their output.
        let unameLog = try String(contentsOfFile: dir + "/host_basic/test_kernel_release.log", encoding: .utf8)
        #expect(unameLog.contains("$ uname -r"))
        let shellLog = try String(contentsOfFile: dir + "/host_basic/test_shell_send_expect.log", encoding: .utf8)
        #expect(shellLog.contains("(shell) $ echo $((6 * 7))"))
        #expect(shellLog.contains("(shell) > 42"))
        #expect(result.stdout.contains("PASSED 4, FAILED 0"))
        // Not a TTY: plain lines, no escape sequences.
        #expect(!result.stdout.contains("\u{1B}["))
    }

    @Test func failuresConfigErrorsAndExecutionFile() async throws {
        let conf = try TempDir("dts-e2e-conf")
        let out = try TempDir("dts-e2e-out")
        _ = try conf.write("runner_selftest.cfg", "[suite]\nfail = true\nsleep_seconds = 0\n")
        _ = try conf.write("crbs.cfg", "[127.0.0.1]\ndut_ip = 127.0.0.1\ndut_user = root\ndut_passwd = not-in-logs\n")
        _ = try conf.write("execution.cfg", """
            [Execution1]
            crbs = 127.0.0.1
            test_suites =
                runner_selftest:test_verify\\test_sleep
            targets = x86_64-native-linuxapp-gcc
            parameters = nic_type=cfg:func=true:perf=false
            """)
        let failed = try await DTSBinary.run(["run", "--conf-dir", conf.path, "--output", out.path + "/a", "--re-run", "1"],
                                       environment: ["DTS_ACCEL": "tcg"])
        #expect(failed.status == 1, "\(failed.stdout)\n\(failed.stderr)")
        let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: out.path + "/a/results.json")))
        let verify = report.allCases.first { $0.case.name == "test_verify" }?.case
        #expect(verify?.status == .failed)
        #expect(verify?.attempts.count == 2)
        #expect(report.allCases.map(\.case.name) == ["test_verify", "test_sleep"])
        #expect(report.executions.first?.target == "x86_64-native-linuxapp-gcc")
        let everything = try String(contentsOfFile: out.path + "/a/dts.log", encoding: .utf8)
        #expect(!everything.contains("not-in-logs"))

        // DTS_OUTPUT picks the output directory.
        let viaEnv = try await DTSBinary.run(["run", "--conf-dir", conf.path, "--suite", "runner_selftest", "--test-cases", "test_sleep"],
                                       environment: ["DTS_OUTPUT": out.path + "/env"])
        #expect(viaEnv.status == 0, "\(viaEnv.stdout)\n\(viaEnv.stderr)")
        #expect(FileManager.default.fileExists(atPath: out.path + "/env/runner_selftest/test_sleep.log"))

        let unknown = try await DTSBinary.run(["run", "--conf-dir", conf.path, "--suite", "host_basik", "--output", out.path + "/b"])
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("unknown suite 'host_basik' (did you mean 'host_basic'?)"))
        #expect(!FileManager.default.fileExists(atPath: out.path + "/b/results.json"))

        // A suite config that does not parse stops the run before anything starts (2)...
        _ = try conf.write("host_basic.cfg", "[suite]\ncopy_size lots\n")
        let badSyntax = try await DTSBinary.run(["run", "--conf-dir", conf.path, "--suite", "host_basic", "--output", out.path + "/c"])
        #expect(badSyntax.status == 2)
        #expect(badSyntax.stderr.contains("host_basic.cfg:2: [suite] expected 'key = value'"))
        // ...a value of the wrong type fails the case that reads it, as ERROR naming file and line (3).
        _ = try conf.write("host_basic.cfg", "[suite]\ncopy_size = lots\n")
        let badValue = try await DTSBinary.run(["run", "--conf-dir", conf.path, "--suite", "host_basic", "--test-cases", "test_file_transfer",
                                          "--output", out.path + "/d"])
        #expect(badValue.status == 3)
        let valueReport = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: out.path + "/d/results.json")))
        #expect(valueReport.allCases.first?.case.reason?.contains("host_basic.cfg:2: [suite] copy_size: expected an integer, got 'lots'") == true)
    }

    /// A VM that cannot boot in setUpAll (its guest image is missing: nothing starts) is an
    /// infrastructure failure: every case ERROR, exit status 3, not 1 as for a test failure.
    @Test func aVMThatDoesNotBootEndsTheRunWithStatus3() async throws {
        let out = try TempDir("dts-e2e-noboot")
        try FileManager.default.createDirectory(atPath: out.file("conf"), withIntermediateDirectories: true)
        try out.write("conf/virt_global.cfg", "[KVM]\ncontrol = type=qga;\n")
        try out.write("conf/virt_basic.cfg", "[vm0]\nkernel = guest_image=dts-no-such-image;\nlogin = user=root,password=x;\n")
        let result = try await DTSBinary.run(["run", "--suite", "virt_basic", "--conf-dir", out.file("conf"), "--accel", "tcg", "--output", out.file("r")],
                                             environment: ["DTS_RUN_ROOT": out.file("run-root")])
        #expect(result.status == DTSExitCode.infrastructureError.rawValue, "\(result.output)")
        let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: out.file("r/results.json"))))
        let cases = report.executions.flatMap { $0.suites.flatMap(\.cases) }
        #expect(!cases.isEmpty && cases.allSatisfy { $0.status == .error }, "\(cases.map(\.status))")
        #expect(cases.first?.reason?.contains("failed at stage 'prepare'") == true, "\(cases.first?.reason ?? "")")
    }

    @Test func sigintStopsTheRunRunsTearDownsAndWritesPartialResults() async throws {
        let conf = try TempDir("dts-e2e-conf")
        let out = try TempDir("dts-e2e-out")
        let markers = try TempDir("dts-e2e-markers")
        _ = try conf.write("runner_selftest.cfg", "[suite]\nsleep_seconds = 247\nmarker_dir = \(markers.path)\n")
        let dts = try DTSProcessHarness.start(["run", "--conf-dir", conf.path, "--suite", "runner_selftest",
                                               "--test-cases", "test_sleep,test_verify", "--output", out.path + "/r"],
                                              log: out.path + "/stdout")
        defer { dts.killIfRunning() }

        // Wait until the long case's `sleep 247` runs on the DUT.
        let started = await dts.waitUntil(timeout: .seconds(20)) { !localProcesses(running: "sleep 247").isEmpty }
        try #require(started, "the long case never started: \(dts.output)")
        let (status, elapsed) = await dts.interrupt(waitingUpTo: .seconds(60))
        #expect(status == 130)
        #expect(elapsed < .seconds(30))

        let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: out.path + "/r/results.json")))
        #expect(report.interrupted == "SIGINT")
        #expect(report.allCases.map(\.case.name) == ["test_verify", "test_sleep"])
        #expect(report.allCases.map(\.case.status) == [.passed, .error])
        #expect(FileManager.default.fileExists(atPath: out.path + "/r/junit.xml"))
        let made = Set(try FileManager.default.contentsOfDirectory(atPath: markers.path))
        #expect(made == ["teardown-test_verify", "teardown-test_sleep", "teardown-all"])
        let left = localProcesses(running: "sleep 247")
        #expect(left.isEmpty)
        #expect(dts.output.contains("SIGINT: stopping the running case"))
    }
}
