@testable import DTS
import Foundation
import Testing

extension HostBackendTests {
    /// `dts run --suite vxlan_sample` on this machine, every case including the performance one:
    /// a real OVS-DPDK tunnel endpoint, a tester namespace with scapy, a TCG guest running testpmd
    /// on two vhost-user NICs. Serialized with the other host backend tests (hugepages, OVS, veths).
    @Suite struct VxlanSampleEndToEndTests {
        static let cases = ["test_vxlan_sample_decap", "test_vxlan_sample_encap", "test_vxlan_sample_encap_decap",
                            "test_vxlan_sample_chksum", "test_vxlan_sample_tso", "test_perf_vxlan_sample"]

        @Test func vxlanSampleRunsForRealAndLeavesNothingBehind() throws {
            try requirePrograms(["ovsdb-tool", "ovsdb-server", "ovs-vsctl", "ovs-appctl", "ovs-ofctl",
                                 "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk", "ip", "ethtool", "busybox",
                                 "/usr/bin/python3", "qemu-system-x86_64"])
            let image = HostFacts.imageDirectory + "/dts-guest-dpdk/vmlinuz"
            try #require(FileManager.default.fileExists(atPath: image),
                         "the DPDK guest image is missing (\(image)); build it with scripts/build-guest-image.sh --with-dpdk")
            let hugepagesBefore = nrHugepages()
            let out = try RunnerTempDir("dts-e2e-vxlan")
            let dir = out.path + "/r"
            let started = ContinuousClock.now
            let result = try DTSBinary.run(["run", "--suite", "vxlan_sample", "--accel", "tcg", "--output", dir,
                                            "--test-cases", Self.cases.joined(separator: ",")])
            let elapsed = ContinuousClock.now - started
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

            // The performance table: one row per configured frame size, every frame size measured.
            let perf = try #require(cases["test_perf_vxlan_sample"]?.perf.first)
            #expect(perf.rows.map { $0.first } == ["64", "128", "512", "1024"])
            let pps = perf.columns.firstIndex(of: "pps"), back = perf.columns.firstIndex(of: "back to tester")
            for row in perf.rows {
                #expect(Double(row[try #require(pps)]).map { $0 > 0 } == true, "no rate measured: \(row)")
                #expect(Int(row[try #require(back)]).map { $0 > 0 } == true, "nothing came back: \(row)")
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
            #expect(nrHugepages() == hugepagesBefore, "hugepages: \(hugepagesBefore) before, \(nrHugepages()) after")
            #expect(!FileManager.default.fileExists(atPath: "/var/run/dpdk/dts-ovs-vxlan"))
            let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp"))?.filter { $0.hasPrefix("dts-vxlan-") } ?? []
            #expect(leftovers.isEmpty, "work directories left: \(leftovers)")
            print("vxlan_sample end to end: \(elapsed)")
        }
    }
}
