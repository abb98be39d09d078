@testable import DTS
import DTSProcess
import DTSTestSupport
import Foundation
import Testing

extension HostBackendTests {
    /// DTS's vhost/virtio suites, end to end through `dts run` on this machine: the shortest
    /// meaningful case of each (the whole suites run under `make suites`, docs/running.md). Real
    /// TCG guests, a real host testpmd with net_vhost ports, real traffic; serialized with the
    /// other host backend tests (hugepages, testpmd, VMs).
    @Suite struct VirtioSuitesEndToEndTests {
        /// Runs `cases` of `suite` and checks each PASSED and that nothing is left behind. The output
        /// lives as long as the returned `TempDir`.
        static func run(_ suite: String, _ cases: [String], image: String) async throws -> (dir: String, results: [String: CaseResult], out: TempDir) {
            try requirePrograms(["dpdk-testpmd", "qemu-system-x86_64"])
            let kernel = HostFacts.imageDirectory + "/\(image)/vmlinuz"
            try #require(FileManager.default.fileExists(atPath: kernel),
                         "the guest image is missing (\(kernel)); build it with scripts/build-guest-image.sh\(image.hasSuffix("dpdk") ? " --with-dpdk" : "")")
            let hugepagesBefore = nrHugepages(), sharedBefore = otherHugepageUsers()
            let out = try TempDir("dts-e2e-\(suite.prefix(12))")
            let dir = out.path + "/r"
            let started = ContinuousClock.now
            let result = try await DTSBinary.run(["run", "--suite", suite, "--accel", "tcg", "--output", dir, "--test-cases", cases.joined(separator: ",")])
            print("\(suite) end to end: \(ContinuousClock.now - started)")
            #expect(result.status == 0, "stdout: \(result.stdout)\nstderr: \(result.stderr)")
            let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: dir + "/results.json")))
            let records = Dictionary(uniqueKeysWithValues: report.allCases.map { ($0.case.name, $0.case) })
            #expect(Set(records.keys) == Set(cases), "cases run: \(records.keys.sorted())")
            for name in cases {
                #expect(records[name]?.status == .passed, "\(name): \(records[name]?.status.dtsWord ?? "missing") \(records[name]?.reason ?? "")")
            }
            // Nothing left: no QEMU or testpmd of the run, no work directory, no DPDK runtime
            // directory of the host testpmd, hugepages as before.
            let work = "/tmp/dts-\(suite.prefix(12))-"
            #expect(processes(mentioning: work).isEmpty, "processes left: \(processes(mentioning: work))")
            let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp"))?.filter { $0.hasPrefix("dts-\(suite.prefix(12))-") } ?? []
            #expect(leftovers.isEmpty, "work directories left: \(leftovers)")
            #expect(!FileManager.default.fileExists(atPath: "/var/run/dpdk/vhost-user"))
            // These suites reserve no host hugepages (memfd guests, testpmd --no-huge): the run's
            // log has no reservation, and the kernel's count is unchanged when nobody else holds pages.
            let log = try String(contentsOfFile: dir + "/dts.log", encoding: .utf8)
            #expect(!log.contains("$ flock \(Hugepages.reservationLock)"), "the run reserved host hugepages")
            if !sharedBefore && !otherHugepageUsers() {
                #expect(nrHugepages() == hugepagesBefore, "hugepages: \(hugepagesBefore) before the run, \(nrHugepages()) after")
            }
            return (dir, records, out)
        }

        /// Two guests' kernels exchange an iperf stream through vhost with TSO (frames over 1518
        /// bytes cross in both directions) and record the rate.
        @Test func vm2vmVirtioNetPerfIperf() async throws {
            let name = "test_vm2vm_split_ring_iperf_with_tso"
            let (_, records, out) = try await Self.run("vm2vm_virtio_net_perf", [name], image: "dts-guest")
            let table = try #require(records[name]?.perf.first)
            let column = try #require(table.columns.firstIndex(of: "Mbits/sec"))
            #expect(table.rows.count == 1 && Double(table.rows[0][column]).map { $0 > 0 } == true, "\(table.rows)")
            withExtendedLifetime(out) {}
        }

        /// host_mtu reaches the guest and testpmd's vhost port for each configured MTU.
        @Test func vhostQemuMTU() async throws {
            let name = "test_mtu_in_virtio_net"
            let (_, records, out) = try await Self.run("vhost_qemu_mtu", [name], image: "dts-guest")
            let table = try #require(records[name]?.perf.first)
            #expect(table.rows == [["9000", "9000", "9000"], ["68", "68", "68"], ["65535", "65535", "65535"]])
            withExtendedLifetime(out) {}
        }

        /// testpmd in two guests (virtio PMD, mergeable path): ten 8000-byte chained frames VM1 ->
        /// VM0, captured by dpdk-pdump in VM0, all ten with the same payload.
        @Test func vm2vmVirtioPMDPayload() async throws {
            let name = "test_vm2vm_vhost_user_virtio10_pmd_with_mergeable_path_with_payload_valid_check"
            let (dir, _, out) = try await Self.run("vm2vm_virtio_pmd", [name], image: "dts-guest-dpdk")
            let log = try String(contentsOfFile: dir + "/vm2vm_virtio_pmd/\(name).log", encoding: .utf8)
            withExtendedLifetime(out) {}
            #expect(log.contains("pdump captured 10: lengths [8000, 8000, 8000, 8000, 8000, 8000, 8000, 8000, 8000, 8000]"))
        }

        /// PVP through one guest's testpmd with QEMU as the vhost-user server: the traffic from the
        /// host's net_null port comes back before, after the vhost testpmd's relaunch and after
        /// QEMU's restart, and the backend saw the link go down and up each time.
        @Test func pvpVhostUserReconnectOneVM() async throws {
            let name = "test_perf_split_ring_reconnet_one_vm"
            let (dir, records, out) = try await Self.run("pvp_vhost_user_reconnect", [name], image: "dts-guest-dpdk")
            let table = try #require(records[name]?.perf.first)
            let cycle = try #require(table.columns.firstIndex(of: "Cycle")), rate = try #require(table.columns.firstIndex(of: "Throughput(Mpps)"))
            #expect(table.rows.map { $0[cycle] } == ["Before relaunch", "After relaunch 1", "After relaunch 1"], "\(table.rows)")
            #expect(table.rows.allSatisfy { Double($0[rate]).map { $0 > 0 } == true }, "\(table.rows)")
            let log = try String(contentsOfFile: dir + "/pvp_vhost_user_reconnect/\(name).log", encoding: .utf8)
            withExtendedLifetime(out) {}
            #expect(log.contains("reconnect from vhost 1: ") && log.contains("reconnect from VM 1: "))
        }
    }
}
