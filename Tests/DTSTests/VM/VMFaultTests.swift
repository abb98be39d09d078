@testable import DTS
import DTSProcess
import DTSTestSupport
import Foundation
import Testing

extension RealGuestTests {
@Suite struct VMFaultTests {
    @Test func vncDisplayAnswersWithRFB() async throws {
        try VMFixture.requireGuestImage()
        let fixture = try VMFixture(["vm0": VMFixture.guest + "\nvnc = disable=False;"])
        let run = testRun()
        try await withTearDown(run) {
            let vm = try fixture.vm(run: run)
            _ = try await vm.start()
            let display = try #require(vm.instance?.command.ports.vncDisplay)
            let banner = try readBanner(port: 5900 + display)
            #expect(banner.hasPrefix("RFB 003."), "VNC banner: \(banner)")
            await vm.stop()
        }
    }

    @Test func twoVMsConcurrentlyGetDistinctPortsAndBothReachSSH() async throws {
        try VMFixture.requireGuestImage()
        let fixture = try VMFixture(["vm0": VMFixture.guest, "vm1": VMFixture.guest])
        // Two runs, as two dts processes would have.
        let r0 = testRun(), r1 = testRun()
        try await withTearDown(r0) {
            try await withTearDown(r1) {
                // Each start in its own task, as two dts processes would do it.
                @Sendable func boot(_ name: String, _ run: Run) async throws -> VMInstance {
                    let vm = try fixture.vm(name, run: run)
                    _ = try await vm.start()
                    return try #require(vm.instance)
                }
                async let i0 = boot("vm0", r0)
                async let i1 = boot("vm1", r1)
                let (first, second) = try await (i0, i1)
                let a = try #require(first.dut), b = try #require(second.dut)
                #expect(a.command.ports.ssh != b.command.ports.ssh)
                #expect(a.command.paths.qmpSocket != b.command.paths.qmpSocket)
                let macs = (a.command.argv + b.command.argv).filter { $0.hasPrefix("e1000,") }
                #expect(Set(macs).count == 2, "management NICs share a MAC: \(macs)")
                let ra = try await a.exec("hostname", timeout: .seconds(20))
                let rb = try await b.exec("hostname", timeout: .seconds(20))
                #expect(ra.status == 0 && rb.status == 0)
                await first.stop()
                await second.stop()
            }
        }
    }

    @Test func qemuKilledDuringReadinessFailsFastAndCleansUp() async throws {
        try VMFixture.requireGuestImage()
        let fixture = try VMFixture(["vm0": VMFixture.guest])
        let run = testRun()
        try await withTearDown(run) {
            let vm = try fixture.vm(run: run)
            let runPath = try run.directory.path
            let killed = LockedBox<ContinuousClock.Instant?>(nil)
            let options = VMStartOptions { event in
                // Once the guest agent stage begins, the guest is booting: kill QEMU.
                guard event.stage == .guestAgent, event.outcome == .started else { return }
                let argvFile = runPath + "/vm0/argv"
                let qmp = (try? String(contentsOfFile: argvFile, encoding: .utf8)).flatMap { text in
                    text.split(separator: "\n").first { $0.contains("qmp.sock") }
                }
                for pid in qemuProcesses(matching: String(qmp ?? "qmp.sock")) { kill(pid, SIGKILL) }
                killed.set(ContinuousClock.now)
            }
            do {
                _ = try await vm.start(options)
                Issue.record("start succeeded although QEMU was killed")
            } catch let error as VMStartError {
                let at = try #require(killed.get())
                #expect(ContinuousClock.now - at < .seconds(1), "noticed \(ContinuousClock.now - at) after the kill")
                #expect(error.stage == .guestAgent)
                guard case .qemuExited(let status) = error.reason else { Issue.record("reason: \(error.reason)"); return }
                #expect(status == 128 + SIGKILL)
                #expect("\(error)".contains("failed at stage 'guest-agent'"))
            }
            #expect(qemuProcesses(matching: runPath).isEmpty)
            #expect(!FileManager.default.fileExists(atPath: runPath + "/vm0/qmp.sock"))
            #expect(try run.allocator.ports(of: "vm0").isEmpty)
            #expect(await run.pending.isEmpty, "the failed VM is still registered with the run")
        }
    }

    /// A guest whose kernel panics (no init: `rdinit=/bin/false`, about 2 s into the boot under
    /// TCG) fails the start within seconds, not when `wait_seconds` runs out, with the panic line
    /// as a short reason; the console stays in the VM's logs.
    @Test func guestPanicFailsTheStartAtOnceWithThePanicLine() async throws {
        try VMFixture.requireGuestImage()
        let fixture = try VMFixture(["vm0": """
            enable_kvm = enable=no;
            kernel = guest_image=dts-guest,append=rdinit=/bin/false;
            login = user=root,password=tester;
            start = wait_seconds=60,login_timeout=10;
            """])
        let run = testRun(timeoutFactor: 1)
        try await withTearDown(run) {
            let vm = try fixture.vm(run: run)
            let runPath = try run.directory.path
            let begin = ContinuousClock.now
            do {
                _ = try await vm.start(VMStartOptions(logDirectory: runPath + "/logs-vm0"))
                Issue.record("a guest with rdinit=/bin/false came up")
                await vm.stop()
            } catch let error as VMStartError {
                #expect(ContinuousClock.now - begin < .seconds(40), "took \(ContinuousClock.now - begin): the deadline ended it")
                guard case .guestPanicked(let line) = error.reason else { Issue.record("reason: \(error.reason)"); return }
                #expect(line.hasPrefix("Kernel panic - not syncing:"), "\(line)")
                let text = "\(error)"
                #expect(text.split(separator: "\n").count <= 2 && text.count < 400, "a long reason:\n\(text)")
                #expect(text.contains(runPath + "/logs-vm0"))
                #expect(error.consoleTail.contains("Kernel panic"), "console tail: \(error.consoleTail)")
                #expect(error.logDirectory == runPath + "/logs-vm0")
                let console = try String(contentsOfFile: error.logDirectory + "/console.log", encoding: .utf8)
                #expect(console.contains("Kernel panic - not syncing"))
            }
            #expect(qemuProcesses(matching: runPath).isEmpty)
        }
    }

    @Test func takenPortIsSkipped() throws {
        let run = testRun()
        defer { run.removeDirectory() }
        // Hold every port of a tiny range but one: the allocator must find the free one.
        var ranges = HostResourceAllocator.Ranges()
        ranges.ssh = 46000...46002
        let allocator = try HostResourceAllocator(run: run.directory, ranges: ranges)
        let blockers = try [46000, 46002].map { try ListeningSocket(port: $0) }
        defer { blockers.forEach { $0.close() } }
        #expect(try allocator.hostForwardPort(vm: "vm0", guestPort: 22) == 46001)
        // Another allocator (another dts run) may not take the one reserved by the first.
        let other = try HostResourceAllocator(run: run.directory, ranges: ranges)
        #expect(throws: ResourceError.self) { try other.hostForwardPort(vm: "vm9", guestPort: 22) }
        allocator.release(vm: "vm0")
        #expect(try other.hostForwardPort(vm: "vm9", guestPort: 22) == 46001)
    }

    @Test func staleRunsAreCleanedUp() async throws {
        let root = "/tmp/dts-test-stale-\(UUID().uuidString.prefix(6))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        // A "run" whose owner is dead, with a process it recorded.
        let run = try RunDirectory(root: root)
        try "999999 1\n".write(toFile: run.path + "/owner", atomically: true, encoding: .utf8)
        let vmDir = try run.vmDirectory("vm0")
        let sleeper = try ChildProcess.spawn(["/bin/sh", "-c", "while :; do sleep 1; done"], stdout: "/dev/null", stderr: "/dev/null")
        run.recordProcess(sleeper.pid, "qemu vm0")
        // A process that took the pid of one the run recorded (its start time differs) is not the run's.
        let reused = try ChildProcess.spawn(["/bin/sh", "-c", "while :; do sleep 1; done"], stdout: "/dev/null", stderr: "/dev/null")
        defer { reused.signal(SIGKILL) }
        let reusedStart = try #require(ProcessTable.startTime(of: reused.pid))
        let records = try FileHandle(forWritingTo: URL(fileURLWithPath: run.path + "/processes"))
        try records.seekToEnd()
        try records.write(contentsOf: Data("\(reused.pid) \(reusedStart - 1) qemu vm1\n".utf8))
        try records.close()
        // A pid file the process wrote itself is recorded on first reading.
        let writer = try ChildProcess.spawn(["/bin/sh", "-c", "while :; do sleep 1; done"], stdout: "/dev/null", stderr: "/dev/null")
        try "\(writer.pid)\n".write(toFile: vmDir + "/testpmd-x.pid", atomically: true, encoding: .utf8)
        RunDirectory.recordProcess(writer.pid, pidFile: vmDir + "/testpmd-x.pid")
        RunDirectory.recordProcess(reused.pid, pidFile: vmDir + "/testpmd-x.pid")  // a later reading: ignored
        // A mount it made goes too.
        try FileManager.default.createDirectory(atPath: run.path + "/huge", withIntermediateDirectories: true)
        let mounted = try await runProgram("/bin/mount", ["-t", "hugetlbfs", "-o", "pagesize=2M", "nodev", run.path + "/huge"])
        try #require(mounted.status == 0)
        // A live run (ours) must be left alone.
        let live = try RunDirectory(root: root)
        let report = RunDirectory.cleanStale(root: root)
        #expect(report.removedRuns == [run.path])
        #expect(report.killedProcesses == [sleeper.pid, writer.pid])
        #expect(await sleeper.waitForExit(timeout: .seconds(5)) == 128 + SIGKILL)
        #expect(await writer.waitForExit(timeout: .seconds(5)) == 128 + SIGKILL)
        #expect(reused.isRunning)
        #expect(FileManager.default.fileExists(atPath: live.path))
        #expect(!FileManager.default.fileExists(atPath: run.path))
        #expect(RunDirectory.mounts(under: run.path).isEmpty)
    }
}

}

/// A TCP listener on 127.0.0.1:port, to make a port busy.
final class ListeningSocket: Sendable {
    let fd: Int32
    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard ok, listen(fd, 1) == 0 else { throw AcceptanceError("cannot listen on \(port)") }
    }
    func close() { _ = Glibc.close(fd) }
}

/// Reads the first line a TCP server sends.
func readBanner(port: Int, address host: String = "127.0.0.1") throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr(host)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard connected else { throw AcceptanceError("cannot connect to port \(port)") }
    var buffer = [UInt8](repeating: 0, count: 64)
    let n = read(fd, &buffer, 64)
    return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
}

extension RealGuestTests {
    @Suite struct VMDaemonAndCLITests {
        @Test func daemonizedQEMUIsTrackedByPidFileAndQMP() async throws {
            try VMFixture.requireGuestImage()
            let fixture = try VMFixture(["vm0": VMFixture.guest + "\ndaemon = enable=yes;"])
            let run = testRun()
            try await withTearDown(run) {
                let vm = try fixture.vm(run: run)
                let dut = try await vm.start()
                let instance = try #require(vm.instance)
                // The launcher exited after daemonizing; the VM runs under the pid from its pid file.
                let launcher = try #require(instance.process)
                #expect(launcher.exitStatus == 0)
                let pidText = try String(contentsOfFile: try #require(instance.command.paths.pidFile), encoding: .utf8)
                #expect(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)) == instance.pid)
                #expect(instance.pid != launcher.pid && ProcessTable.isAlive(instance.pid))
                // The run recorded it with its start time, for the stale-run cleanup after a crash of dts.
                let records = RunDirectory.processRecords(in: try run.directory.path)
                #expect(records.contains { $0.pid == instance.pid && $0.isRunning }, "\(records)")
                #expect(try await dut.exec("true", timeout: .seconds(20)).succeeded)
                await vm.stop()
                #expect(!ProcessTable.isAlive(instance.pid))
            }
        }

        @Test func dtsVMRunPrintsTheOutputAndExitsWithTheCommandsStatus() async throws {
            try VMFixture.requireGuestImage()
            let fixture = try VMFixture(["vm0": VMFixture.guest])
            let root = "/tmp/dts-vmrun-\(UUID().uuidString.prefix(8))"
            defer { try? FileManager.default.removeItem(atPath: root) }
            let env = ["DTS_RUN_ROOT": root]
            let ok = try await DTSBinary.run(["vm", "run", "--conf-dir", fixture.confDirectory, "--suite", fixture.suite, "--accel", "tcg",
                                        "--", "uname", "-n"], environment: env)
            #expect(ok.status == 0, "\(ok.stderr)")
            #expect(ok.stdout == "dts-guest\n")
            #expect(ok.stderr.contains("vm0: ssh passed"))
            let failing = try await DTSBinary.run(["vm", "run", "--conf-dir", fixture.confDirectory, "--suite", fixture.suite, "--accel", "tcg",
                                             "--", "sh", "-c", "echo oops >&2; exit 7"], environment: env)
            #expect(failing.status == 7)
            #expect(failing.stderr.contains("oops"))
            #expect(qemuProcesses(matching: root).isEmpty)
        }
    }
}
