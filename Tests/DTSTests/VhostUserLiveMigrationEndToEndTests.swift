@testable import DTS
import DTSTestSupport
import Foundation
import Testing

extension RealGuestTests {
    /// `dts run --suite vhost_user_live_migration --accel tcg` end to end: every case passes (or,
    /// for the queue-number cases on a guest image without ethtool, is skipped saying so), each
    /// records its migration, and nothing is left behind.
    @Suite struct VhostUserLiveMigrationEndToEndTests {
        @Test func everyCaseMigratesWithTrafficAndLeavesNothingBehind() async throws {
            try requirePrograms(["/usr/bin/python3", "qemu-system-x86_64", "dpdk-testpmd"])
            let image = HostFacts.imageDirectory + "/dts-guest-dpdk/vmlinuz"
            try #require(FileManager.default.fileExists(atPath: image),
                         "the DPDK guest image is missing (\(image)); build it with scripts/build-guest-image.sh --with-dpdk")
            let out = try TempDir("dts-e2e-migration")
            let dir = out.path + "/r"
            let result = try await DTSBinary.run(["run", "--suite", "vhost_user_live_migration", "--accel", "tcg", "--output", dir])
            let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: dir + "/results.json")))
            let cases = report.allCases.map(\.case)
            #expect(cases.count == 8, "\(cases.map(\.name))")
            #expect(cases.contains { $0.name == "test_adjust_split_ring_virtio_net_queue_numbers_while_migreting_with_virtio_net" })
            for entry in cases {
                if entry.status == .skipped, entry.name.contains("queue_numbers") {
                    #expect(entry.reason?.contains("ethtool") == true, "\(entry.name): \(entry.reason ?? "")")
                    continue
                }
                #expect(entry.status == .passed, "\(entry.name): \(entry.status.dtsWord) \(entry.reason ?? "")\n\(result.stdout)")
                let perf = try #require(entry.perf.first { $0.title == "migration" }, "\(entry.name) recorded no migration")
                let downtime = try #require(perf.columns.firstIndex(of: "downtime (ms)"))
                #expect(perf.rows.first.map { Int($0[downtime]) != nil } == true, "\(perf.rows)")
            }
            // Both ends' VM logs, for every case.
            let vms = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/vms")) ?? []
            #expect(vms.contains("host") && vms.contains("backup"), "\(vms)")
            #expect(processes(mentioning: "dts-vhost_user_l").isEmpty, "left: \(processes(mentioning: "dts-vhost_user_l"))")
            #expect(!linkExists("dtap-lm-src") && !linkExists("dtap-lm-dst"))
        }
    }
}
