@testable import DTS
import DTSProcess
import DTSTestSupport
import Foundation
import Testing

extension RealGuestTests {
    /// `dts run --suite virt_basic` on this machine: a real guest under TCG, every artifact written.
    @Suite struct VMRunEndToEndTests {
        @Test func virtBasicPassesAndWritesVMArtifacts() async throws {
            try VMFixture.requireGuestImage()
            let out = try TempDir("dts-e2e-vm")
            let root = out.path + "/run-root"
            let result = try await DTSBinary.run(["run", "--suite", "virt_basic", "--accel", "tcg", "--output", out.path + "/r"],
                                           environment: ["DTS_RUN_ROOT": root])
            #expect(result.status == 0, "stdout: \(result.stdout)\nstderr: \(result.stderr)")
            let dir = out.path + "/r"
            let tree = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/test_results.json"))) as? [String: [String: [String: String]]]
            // One DUT, one target (conf/execution.cfg names it).
            let targets = tree?["127.0.0.1"] ?? [:]
            #expect(targets.count == 1)
            let results = targets.values.first ?? [:]
            #expect(results.count == 5 && results.values.allSatisfy { $0 == "passed" }, "\(results)")
            // Per VM: argv, console log, QEMU stderr, QMP transcript (two starts: vm0 and vm0-2 after the restart).
            for vm in ["vm0", "vm0-2"] {
                for file in ["argv", "console.log", "qemu.stderr", "qmp.log"] {
                    #expect(FileManager.default.fileExists(atPath: "\(dir)/vms/\(vm)/\(file)"), "missing vms/\(vm)/\(file)")
                }
            }
            // Commands sent to the VM DUT are in the case log, like the host DUT's.
            let caseLog = try String(contentsOfFile: dir + "/virt_basic/test_vm_kernel.log", encoding: .utf8)
            #expect(caseLog.contains("root@127.0.0.1:") && caseLog.contains("$ uname -r"), "case log:\n\(caseLog)")
            #expect(!caseLog.contains("tester"), "the guest password leaked into the case log")
            let console = try String(contentsOfFile: dir + "/vms/vm0/console.log", encoding: .utf8)
            #expect(console.contains("DTS-GUEST-READY"))
            // The boot stages are in the report's timeline.
            let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: dir + "/results.json")))
            #expect(report.timeline.contains { $0.vm == "vm0" && $0.stage == "ssh" })
            let html = try String(contentsOfFile: dir + "/report.html", encoding: .utf8)
            #expect(html.contains("guest-agent"))
            // Nothing left running or mounted by the run.
            #expect(qemuProcesses(matching: root).isEmpty)
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasPrefix("run-") }.isEmpty,
                    "the run directory is left behind")
        }

        /// A guest that panics at boot: setUpAll fails within seconds (not after wait_seconds), every
        /// case's reason is the panic in a line or two (the console stays in vms/vm0/console.log).
        @Test func aPanickingGuestEndsTheSuiteFastWithShortReasons() async throws {
            try VMFixture.requireGuestImage()
            let out = try TempDir("dts-e2e-panic")
            let conf = out.file("conf")
            try FileManager.default.createDirectory(atPath: conf, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: DTSBinary.packageRoot + "/conf/virt_global.cfg", toPath: conf + "/virt_global.cfg")
            try out.write("conf/virt_basic.cfg", """
                [vm0]
                cpu = model=host,number=1;
                mem = size=256;
                kernel = guest_image=dts-guest,append=rdinit=/bin/false;
                login = user=root,password=tester;
                start = wait_seconds=90,login_timeout=10;
                vnc = disable=True;
                """)
            let begin = ContinuousClock.now
            let result = try await DTSBinary.run(["run", "--suite", "virt_basic", "--conf-dir", conf, "--accel", "tcg", "--output", out.file("r")],
                                                 environment: ["DTS_RUN_ROOT": out.file("run-root")])
            #expect(ContinuousClock.now - begin < .seconds(75), "took \(ContinuousClock.now - begin)")
            // A VM that does not boot is an infrastructure failure, not a test's.
            #expect(result.status == DTSExitCode.infrastructureError.rawValue, "\(result.output)")
            let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: out.file("r/results.json"))))
            let cases = report.executions.flatMap { $0.suites.flatMap(\.cases) }
            #expect(cases.count == 5, "\(result.output)")
            for result in cases {
                let reason = result.reason ?? ""
                #expect(result.status == .error)
                #expect(reason.contains("Kernel panic - not syncing"), "\(result.name): \(reason)")
                #expect(reason.split(separator: "\n").count <= 2 && reason.count < 600, "\(result.name): a long reason:\n\(reason)")
            }
            let console = try String(contentsOfFile: out.file("r/vms/vm0/console.log"), encoding: .utf8)
            #expect(console.contains("Kernel panic - not syncing"))
            // The whole story is in dts.log.
            let log = try String(contentsOfFile: out.file("r/dts.log"), encoding: .utf8)
            #expect(log.contains("--- console (end) ---"))
            #expect(qemuProcesses(matching: out.path).isEmpty)
        }

        /// `dts run --suite virt_basic` (output in `<out>/r`, run root `<out>/run-root`) started
        /// and watched until its VM is up and its first case runs; returns dts and QEMU's pids.
        static func virtBasicUpToItsFirstCase(out: TempDir) async throws -> (DTSProcessHarness, [Int32]) {
            let root = out.path + "/run-root"
            let dts = try DTSProcessHarness.start(["run", "--suite", "virt_basic", "--accel", "tcg", "--output", out.path + "/r"],
                                                  environment: ["DTS_RUN_ROOT": root], log: out.path + "/stdout")
            var qemu: [Int32] = []
            _ = await dts.waitUntil(timeout: .seconds(180), every: .milliseconds(50)) {
                qemu = qemuProcesses(matching: root)
                return !qemu.isEmpty && FileManager.default.fileExists(atPath: out.path + "/r/virt_basic/test_vm_kernel.log")
            }
            if qemu.isEmpty { dts.killIfRunning() }
            try #require(!qemu.isEmpty, "the VM never came up: \(dts.output)")
            return (dts, qemu)
        }

        /// QEMU killed (SIGKILL) while the suite's VM is up: the first case it breaks says so, with
        /// QEMU's status, instead of a lost SSH channel or a closed QMP socket; so does dts.log.
        @Test func qemuKilledMidSuiteIsTheReasonOfTheFirstBrokenCase() async throws {
            try VMFixture.requireGuestImage()
            let out = try TempDir("dts-e2e-vmkill")
            let root = out.path + "/run-root"
            let (dts, qemu) = try await Self.virtBasicUpToItsFirstCase(out: out)
            defer { dts.killIfRunning() }
            try #require(qemu.count == 1, "\(qemu)")
            kill(qemu[0], SIGKILL)
            let status = await dts.process.waitForExit(timeout: .seconds(300))
            #expect(status == DTSExitCode.infrastructureError.rawValue, "\(dts.output)")
            let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: out.path + "/r/results.json")))
            let cases = report.executions.flatMap { $0.suites.flatMap(\.cases) }
            let broken = cases.filter { $0.status != .passed }
            let first = try #require(broken.first, "no case failed after QEMU was killed: \(cases.map(\.status))")
            #expect(first.status == .error)
            #expect(first.reason?.contains("VM vm0: QEMU exited (signal 9 SIGKILL) while the VM was up") == true, "\(first.name): \(first.reason ?? "")")
            for later in broken.dropFirst() {
                #expect(later.reason?.contains("QEMU exited (signal 9 SIGKILL)") == true, "\(later.name): \(later.reason ?? "")")
            }
            let log = try String(contentsOfFile: out.path + "/r/dts.log", encoding: .utf8)
            #expect(log.contains("VM vm0: QEMU exited (signal 9 SIGKILL) while the VM was up"))
            #expect(qemuProcesses(matching: root).isEmpty)
        }

        @Test func sigintDuringAVMCaseLeavesNoQEMU() async throws {
            try VMFixture.requireGuestImage()
            let out = try TempDir("dts-e2e-vmint")
            let (dts, qemu) = try await Self.virtBasicUpToItsFirstCase(out: out)
            defer { dts.killIfRunning() }
            let (status, _) = await dts.interrupt(waitingUpTo: .seconds(90))
            #expect(status == 130)
            for pid in qemu { #expect(!ProcessTable.isAlive(pid), "QEMU \(pid) survived the interrupted run") }
            let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: out.path + "/r/results.json")))
            #expect(report.interrupted == "SIGINT")
        }
    }
}
