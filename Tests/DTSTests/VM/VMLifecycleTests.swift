@testable import DTS
import DTSControl
import DTSProcess
import DTSTestSupport
import Foundation
import Testing

/// A scratch conf directory with virt_global.cfg and one suite config.
struct VMFixture: Sendable {
    let dir: TemporaryDirectory
    let suite = "lifecycle"
    var confDirectory: String { dir.path }

    init(_ vms: [String: String]) throws {
        dir = try TemporaryDirectory("dts-vmconf")
        try """
            [KVM]
            cpu = model=host,number=1;
            mem = size=256;
            control = type=qga;
            vnc = disable=True;
            """.write(toFile: dir.path + "/virt_global.cfg", atomically: true, encoding: .utf8)
        let text = vms.sorted { $0.key < $1.key }.map { "[\($0.key)]\n\($0.value)\n" }.joined()
        try text.write(toFile: dir.path + "/\(suite).cfg", atomically: true, encoding: .utf8)
    }

    /// VM `name` on this machine as a DUT of `run`. Cold boots unless asked (tests of other things
    /// should not depend on what an earlier test left in a snapshot cache); warm boots use the
    /// given cache.
    func vm(_ name: String = "vm0", run: Run, boot: BootMode = .cold, snapshots: SnapshotCache? = nil) throws -> QEMUKvm {
        let settings = RunSettings(confDirectory: confDirectory, accelerator: .tcg, boot: boot,
                                   snapshots: snapshots ?? SnapshotCache(directory: dir.path + "/snapshots"))
        return try QEMUKvm(dut: Dut(settings: settings, run: run), vmName: name, suite: suite)
    }

    static let guest = """
        enable_kvm = enable=no;
        kernel = guest_image=dts-guest;
        login = user=root,password=tester;
        """

    static func requireGuestImage(_ name: String = "dts-guest") throws {
        let kernel = HostFacts.imageDirectory + "/\(name)/vmlinux"
        let build = name == "dts-guest" ? "scripts/build-guest-image.sh" : "scripts/build-guest-image.sh --with-dpdk"
        try #require(FileManager.default.fileExists(atPath: kernel), "the guest image \(name) is missing (\(kernel)); build it with \(build)")
    }
}

/// A run under a root of its own (`/tmp/dts-test-XXXXXX`, removed by its teardown), so that tests
/// never touch another run's files; deadlines × 1.5.
func testRun(timeoutFactor: Double = 1.5, hugepageMount: String? = HostFacts.hugetlbfsMount()) -> Run {
    Run.isolated(prefix: "dts-test", hugepageMount: hugepageMount, timeoutFactor: timeoutFactor)
}

func qemuProcesses(matching text: String) -> [Int32] {
    processes { argv in argv.first.map { $0.contains("qemu-system") } == true && argv.contains { $0.contains(text) } }
}

/// Tests that use host-wide resources: real guests under TCG, hugepages, OVS-DPDK, testpmd, host
/// interfaces. Serialized: two cores do not boot many guests at once quickly, and hugepage counts
/// are only meaningful when one test at a time changes them.
@Suite(.serialized) enum RealGuestTests {}

extension RealGuestTests {
@Suite struct VMLifecycleTests {
    @Test func bootsReachesSSHAndStopsClean() async throws {
        try VMFixture.requireGuestImage()
        let fixture = try VMFixture(["vm0": VMFixture.guest])
        let run = testRun()
        let root = try run.directory.root
        try await withTearDown(run) {
            let vm = try fixture.vm(run: run)
            let dut = try await vm.start()
            let instance = try #require(vm.instance)
            let runtime = instance.command.paths

            // SSH (libssh2) to the guest: its own kernel, not the host's.
            let uname = try await dut.exec("uname -a", timeout: .seconds(20))
            #expect(uname.status == 0)
            let manifest = try String(contentsOfFile: HostFacts.imageDirectory + "/dts-guest/manifest", encoding: .utf8)
            let kernel = try #require(manifest.split(separator: "\n").first { $0.hasPrefix("kernel_version=") }?.dropFirst(15))
            #expect(uname.output.contains("dts-guest") && uname.output.contains(String(kernel)), "uname: \(uname.output)")
            // The guest agent sees the management interface by its DTS name, with QEMU's DHCP address.
            let interfaces = try await #require(dut.guestAgent).networkInterfaces()
            let management = try #require(interfaces.first { $0.name == "host_connect" })
            #expect(management.addresses.contains { $0.address == "10.0.2.15" })
            // The e1000 at guest PCI address 00:1f.0.
            let pci = try await dut.qmp.infoPCI()
            let e1000 = try #require(pci.first { $0.address.slot == 0x1f })
            #expect(e1000.vendorID == 0x8086 && e1000.deviceID == 0x100e)
            // sendExpect on the VM DUT's main shell.
            let echoed = try await dut.sendExpect("echo $((6*7))", "# ", timeout: .seconds(10))
            #expect(echoed == "42\n" || echoed == "42", "sendExpect returned \(echoed.debugDescription)")

            let pid = instance.pid
            await vm.stop()
            #expect(!ProcessTable.isAlive(pid), "qemu \(pid) still runs after stop")
            for path in [runtime.qmpSocket, runtime.guestAgentSocket, runtime.monitorSocket, runtime.pidFile].compactMap({ $0 }) {
                #expect(!FileManager.default.fileExists(atPath: path), "\(path) left behind")
            }
            #expect(try run.allocator.ports(of: "vm0").isEmpty)
            #expect(await run.pending.isEmpty, "the stopped VM is still registered with the run")
            await vm.stop() // idempotent
            // Nothing but the run's directory in its root: no lock files of the ports it held.
            #expect((try? FileManager.default.contentsOfDirectory(atPath: root)) == [(try run.directory.path as NSString).lastPathComponent])
        }
        // The run's root was its own, and went with it.
        #expect(root.hasPrefix("/tmp/dts-test-") && !FileManager.default.fileExists(atPath: root), "\(root)")
    }

    @Test func vcpusArePinnedBeforeTheGuestRuns() async throws {
        try VMFixture.requireGuestImage()
        let cpus = HostFacts.onlineCPUs()
        let pins = cpus.count >= 2 ? [cpus[1], cpus[0]] : [cpus[0], cpus[0]]
        guard Set(pins).count == 2 else { return } // one-CPU host: nothing to tell apart
        let fixture = try VMFixture(["vm0": VMFixture.guest + "\ncpu = model=host,number=2,cpupin=\(pins[0]) \(pins[1]);"])
        let run = testRun()
        try await withTearDown(run) {
            let vm = try fixture.vm(run: run)
            let dut = try await vm.start()
            let instance = try #require(vm.instance)
            for cpu in try await dut.qmp.queryCPUsFast() {
                #expect(CPUAffinity.allowedList(pid: instance.pid, thread: Int32(cpu.threadID)) == [pins[cpu.cpuIndex]],
                        "vCPU \(cpu.cpuIndex)")
            }
            // Pinned while paused: the QMP transcript shows query-cpus-fast before cont.
            let transcript = try String(contentsOfFile: instance.command.paths.runtimeDirectory + "/qmp.log", encoding: .utf8)
            let query = try #require(transcript.range(of: "query-cpus-fast"))
            let cont = try #require(transcript.range(of: "\"cont\""))
            #expect(query.lowerBound < cont.lowerBound)
            #expect(instance.command.argv.contains("-S"))
            await vm.stop()
        }
    }

    @Test func hugepageBackedGuest() async throws {
        try VMFixture.requireGuestImage()
        let pages = try HugepageReservation(pages: 160)
        defer { pages.release() }
        let fixture = try VMFixture(["vm0": VMFixture.guest + "\nmem = size=256,hugepage=yes;"])
        let run = testRun(hugepageMount: pages.mount)
        try await withTearDown(run) {
            let vm = try fixture.vm(run: run)
            // Pages in use on the test's own mount: not disturbed by anything else using hugepages.
            #expect(Hugepages.pagesInUse(mount: pages.mount) == 0)
            _ = try await vm.start()
            let during = Hugepages.pagesInUse(mount: pages.mount) ?? 0
            #expect(during >= 128, "\(during) hugepages in use on \(pages.mount): guest memory not on hugepages")
            await vm.stop()
            #expect(Hugepages.pagesInUse(mount: pages.mount) == 0, "hugepages not given back")
        }
    }

    @Test func notEnoughHugepagesIsAClearError() async throws {
        let dir = try TemporaryDirectory("dts-nohuge")
        let mount = try await runProgram("/bin/mount", ["-t", "hugetlbfs", "-o", "pagesize=2M", "nodev", dir.path])
        try #require(mount.status == 0)
        defer { _ = try? runQuickProgram("/bin/umount", [dir.path]) }
        let free = Hugepages.freePages(pageSizeKB: 2048) ?? 0
        #expect(throws: ResourceError.self) { try Hugepages.check(memoryMiB: (free + 10) * 2, mount: dir.path) }
        do { try Hugepages.check(memoryMiB: (free + 10) * 2, mount: dir.path) } catch {
            #expect("\(error)".contains("free 2048 kB hugepages"))
        }
    }
}
}
