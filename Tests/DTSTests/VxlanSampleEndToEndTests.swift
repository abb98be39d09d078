@testable import DTS
import DTSProcess
import DTSTestSupport
import Foundation
import Testing

extension HostBackendTests {
    /// `dts run --suite vxlan_sample` on this machine, every case including the performance one:
    /// a real OVS-DPDK tunnel endpoint, a tester namespace with scapy, a TCG guest running testpmd
    /// on two vhost-user NICs. Serialized with the other host backend tests (hugepages, OVS, veths).
    @Suite struct VxlanSampleEndToEndTests {
        static let cases = ["test_vxlan_sample_decap", "test_vxlan_sample_encap", "test_vxlan_sample_encap_decap",
                            "test_vxlan_sample_chksum", "test_vxlan_sample_tso", "test_perf_vxlan_sample"]

        /// Every case with a cold boot (no snapshot taken or used).
        @Test func vxlanSampleRunsForRealAndLeavesNothingBehind() async throws {
            try requirePrograms(["ovsdb-tool", "ovsdb-server", "ovs-vsctl", "ovs-appctl", "ovs-ofctl",
                                 "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk", "ip", "ethtool", "busybox",
                                 "/usr/bin/python3", "qemu-system-x86_64"])
            let image = HostFacts.imageDirectory + "/dts-guest-dpdk/vmlinuz"
            try #require(FileManager.default.fileExists(atPath: image),
                         "the DPDK guest image is missing (\(image)); build it with scripts/build-guest-image.sh --with-dpdk")
            let hugepagesBefore = nrHugepages(), sharedBefore = otherHugepageUsers()
            let out = try TempDir("dts-e2e-vxlan")
            let dir = out.path + "/r"
            let started = ContinuousClock.now
            let result = try await DTSBinary.run(["run", "--suite", "vxlan_sample", "--accel", "tcg", "--output", dir, "--boot", "cold",
                                            "--test-cases", Self.cases.joined(separator: ",")])
            let elapsed = ContinuousClock.now - started
            #expect(!(try String(contentsOfFile: dir + "/dts.log", encoding: .utf8)).contains("snapshot"))
            #expect(result.status == 0, "stdout: \(result.stdout)\nstderr: \(result.stderr)")

            let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: dir + "/results.json")))
            let cases = Dictionary(uniqueKeysWithValues: report.allCases.map { ($0.case.name, $0.case) })
            #expect(Set(cases.keys) == Set(Self.cases), "cases run: \(cases.keys.sorted())")
            for name in Self.cases where name != "test_vxlan_sample_tso" {
                #expect(cases[name]?.status == .passed, "\(name): \(cases[name]?.status.dtsWord ?? "missing") \(cases[name]?.reason ?? "")")
            }
            // TSO: skipped with the endpoint's real limitation, after reading its version.
            let tso = try #require(cases["test_vxlan_sample_tso"])
            #expect(tso.status == .skipped)
            #expect(tso.reason?.contains("Open vSwitch 3.1") == true && tso.reason?.contains("VXLAN") == true, "\(tso.reason ?? "")")

            // The performance tables: both directions, one row per frame size of test_parameters,
            // each measured at DPDK speed (zero-loss rate > 0, well above scapy's ~2,000 pps at line rate).
            let perf = try #require(cases["test_perf_vxlan_sample"]?.perf)
            #expect(perf.map(\.title) == ["tester_to_guest", "tester_to_guest_to_tester"])
            for table in perf {
                #expect(table.rows.map { $0.first } == ["64", "128", "512", "1024", "1468"])
                for row in 0..<table.cells.count {
                    guard case .number(let mpps)? = table.value("Throughput", row: row) else { Issue.record("no rate: \(table.rows[row])"); continue }
                    #expect(mpps > 0, "no zero-loss rate: \(table.rows[row])")
                    #expect(table.value("Loss", row: row) != nil)
                }
            }
            // The case logs show the real traffic: captured VXLAN frames with VNI 1000 from the endpoint.
            let encapLog = try String(contentsOfFile: dir + "/vxlan_sample/test_vxlan_sample_encap.log", encoding: .utf8)
            #expect(encapLog.contains("\"vxlan\": {\"vni\": 1000}"))

            // Nothing left behind: no OVS, QEMU or testpmd, no namespace or veth, no hugetlbfs mount
            // of the run, the hugepage reservation as before, no DPDK runtime directory.
            #expect(processes(mentioning: "/tmp/dts-vxlan-").isEmpty, "processes left: \(processes(mentioning: "/tmp/dts-vxlan-"))")
            #expect(!namespaceExists("dtsvxlan") && !linkExists("vu0") && !linkExists("br-phy") && !linkExists("br-int"))
            let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
            #expect(!mounts.contains("/tmp/dts-vxlan-"), "a hugetlbfs of the run is still mounted")
            try expectHugepagesGivenBack(runLog: dir + "/dts.log", before: hugepagesBefore, shared: sharedBefore)
            #expect(!FileManager.default.fileExists(atPath: "/var/run/dpdk/dts-ovs-vxlan"))
            let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp"))?.filter { $0.hasPrefix("dts-vxlan-") } ?? []
            #expect(leftovers.isEmpty, "work directories left: \(leftovers)")
            print("vxlan_sample end to end: \(elapsed)")
        }

        /// The functional cases with warm boots: the first run boots the guest cold and takes its
        /// snapshot (vhost-user devices included), the second restores it, with OVS-DPDK as a new
        /// vhost-user backend, and passes the same cases on real packets.
        @Test func vxlanSamplePassesOnARestoredGuest() async throws {
            try requirePrograms(["ovsdb-server", "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk", "ip", "/usr/bin/python3", "qemu-system-x86_64"])
            try #require(FileManager.default.fileExists(atPath: HostFacts.imageDirectory + "/dts-guest-dpdk/vmlinuz"),
                         "the DPDK guest image is missing; build it with scripts/build-guest-image.sh --with-dpdk")
            let out = try TempDir("dts-e2e-vxlanwarm")
            let cases = Self.cases.filter { !$0.hasPrefix("test_perf") }
            for (round, expected) in [(1, "took snapshot"), (2, "restored snapshot")] {
                let dir = out.path + "/r\(round)"
                let result = try await DTSBinary.run(["run", "--suite", "vxlan_sample", "--accel", "tcg", "--output", dir, "--boot", "warm",
                                                      "--test-cases", cases.joined(separator: ",")],
                                                     environment: ["DTS_SNAPSHOT_DIR": out.path + "/snapshots"])
                #expect(result.status == 0, "round \(round): stdout: \(result.stdout)\nstderr: \(result.stderr)")
                let log = try String(contentsOfFile: dir + "/dts.log", encoding: .utf8)
                #expect(log.contains("VM vm0: \(expected)"), "round \(round): the run log does not say '\(expected)'")
                let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: dir + "/results.json")))
                for entry in report.allCases where entry.case.name != "test_vxlan_sample_tso" {
                    #expect(entry.case.status == .passed, "round \(round) \(entry.case.name): \(entry.case.status.dtsWord) \(entry.case.reason ?? "")")
                }
            }
            #expect(processes(mentioning: "/tmp/dts-vxlan-").isEmpty)
        }

        /// With `ovs_namespace` set, OVS runs in a private network namespace (beside any other
        /// userspace-datapath OVS on the host): the round trip still works and the namespace goes too.
        @Test func isolatedSwitchNamespaceWorksAndIsRemoved() async throws {
            try requirePrograms(["ovsdb-server", "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk", "ip", "/usr/bin/python3", "qemu-system-x86_64"])
            try #require(FileManager.default.fileExists(atPath: HostFacts.imageDirectory + "/dts-guest-dpdk/vmlinuz"),
                         "the DPDK guest image is missing; build it with scripts/build-guest-image.sh --with-dpdk")
            let hugepagesBefore = nrHugepages(), sharedBefore = otherHugepageUsers()
            let out = try TempDir("dts-e2e-vxlanns")
            let conf = out.path + "/conf"
            try FileManager.default.createDirectory(atPath: conf, withIntermediateDirectories: true)
            for file in ["virt_global.cfg", "crbs.cfg", "execution.cfg"] {
                try FileManager.default.copyItem(atPath: DTSBinary.packageRoot + "/conf/" + file, toPath: conf + "/" + file)
            }
            let shipped = try String(contentsOfFile: DTSBinary.packageRoot + "/conf/vxlan_sample.cfg", encoding: .utf8)
            try #require(shipped.contains("\novs_namespace =\n"))
            try shipped.replacingOccurrences(of: "\novs_namespace =\n", with: "\novs_namespace = dtsvxovs\n")
                .write(toFile: conf + "/vxlan_sample.cfg", atomically: true, encoding: .utf8)
            let dir = out.path + "/r"
            let result = try await DTSBinary.run(["run", "--suite", "vxlan_sample", "--accel", "tcg", "--conf-dir", conf, "--output", dir,
                                            "--test-cases", "test_vxlan_sample_encap_decap"])
            #expect(result.status == 0, "stdout: \(result.stdout)\nstderr: \(result.stderr)")
            let log = try String(contentsOfFile: dir + "/dts.log", encoding: .utf8)
            #expect(log.contains("ip netns exec dtsvxovs"), "OVS did not run in its namespace")
            #expect(!namespaceExists("dtsvxovs") && !namespaceExists("dtsvxlan") && !linkExists("vu0"))
            #expect(processes(mentioning: "/tmp/dts-vxlan-").isEmpty)
            try expectHugepagesGivenBack(runLog: dir + "/dts.log", before: hugepagesBefore, shared: sharedBefore)
        }

        /// Ctrl-C in the middle of a case: the run ends with 130 and the run's cleanups take the whole
        /// topology down (VM, OVS, namespace, hugepages), as after a normal end.
        @Test func sigintDuringACaseLeavesNothingBehind() async throws {
            try requirePrograms(["ovsdb-server", "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk", "ip", "/usr/bin/python3", "qemu-system-x86_64"])
            try #require(FileManager.default.fileExists(atPath: HostFacts.imageDirectory + "/dts-guest-dpdk/vmlinuz"),
                         "the DPDK guest image is missing; build it with scripts/build-guest-image.sh --with-dpdk")
            let hugepagesBefore = nrHugepages(), sharedBefore = otherHugepageUsers()
            let out = try TempDir("dts-e2e-vxlanint")
            let dts = try DTSProcessHarness.start(["run", "--suite", "vxlan_sample", "--accel", "tcg", "--output", out.path + "/r"],
                                                  log: out.path + "/stdout")
            defer { dts.killIfRunning() }

            // Wait until the topology is up and the first case runs.
            let caseLog = out.path + "/r/vxlan_sample/test_vxlan_sample_decap.log"
            _ = await dts.waitUntil(timeout: .seconds(240), every: .milliseconds(200)) { FileManager.default.fileExists(atPath: caseLog) }
            let running = processes(mentioning: "/tmp/dts-vxlan-")
            try #require(FileManager.default.fileExists(atPath: caseLog) && !running.isEmpty,
                         "the suite never reached its first case: \(dts.output)")
            #expect(namespaceExists("dtsvxlan"))
            let (status, _) = await dts.interrupt(waitingUpTo: .seconds(120))
            #expect(status == 130)
            for pid in running { #expect(!ProcessTable.isAlive(pid), "\(ProcessTable.commandLine(of: pid)) survived the interrupted run") }
            #expect(processes(mentioning: "/tmp/dts-vxlan-").isEmpty)
            #expect(!namespaceExists("dtsvxlan") && !linkExists("vu0"))
            let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
            #expect(!mounts.contains("/tmp/dts-vxlan-"))
            try expectHugepagesGivenBack(runLog: out.path + "/r/dts.log", before: hugepagesBefore, shared: sharedBefore)
            #expect(!FileManager.default.fileExists(atPath: "/var/run/dpdk/dts-ovs-vxlan"))
        }
    }
}

/// The run gave back every 2 MB page it reserved: the reservation changes in its log (the VM's and
/// OVS's, each `flock`ed, printing the count before and after) add up to zero. When no other DPDK
/// user holds pages (other tests share this machine), the kernel's count is also back where it was.
func expectHugepagesGivenBack(runLog: String, before: Int, shared: Bool) throws {
    let log = try String(contentsOfFile: runLog, encoding: .utf8)
    var changes: [(before: Int, after: Int)] = []
    var pending = false
    for line in log.split(separator: "\n") {
        if line.contains("$ flock \(Hugepages.reservationLock)") { pending = true; continue }
        guard pending, let marker = line.range(of: "> ") else { continue }
        pending = false
        let numbers = line[marker.upperBound...].split(separator: " ").compactMap { Int($0) }
        if numbers.count == 2 { changes.append((numbers[0], numbers[1])) }
    }
    #expect(changes.filter { $0.after > $0.before }.count >= 2, "the VM's and OVS's reservations are not in the log: \(changes)")
    #expect(changes.reduce(0) { $0 + $1.after - $1.before } == 0, "reservation changes do not add up to zero: \(changes)")
    if !shared && !otherHugepageUsers() {
        #expect(nrHugepages() == before, "hugepages: \(before) before the run, \(nrHugepages()) after")
    }
}

/// Whether another DPDK user (its own hugetlbfs mount, as OVS-DPDK instances of other tests have) is active.
func otherHugepageUsers() -> Bool {
    let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
    return mounts.split(separator: "\n").contains { $0.contains(" hugetlbfs ") && !$0.contains(" /dev/hugepages ") }
}

