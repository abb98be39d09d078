@testable import DTS
import DTSTestSupport
import Foundation
import Testing

extension RealGuestTests {
    /// `dts run --suite vhost_user_live_migration --accel tcg` end to end, CI's subset (one case:
    /// testpmd in the guest forwarding across the migration; every case runs under `make suites`):
    /// it passes, records its migration, and nothing is left behind.
    @Suite struct VhostUserLiveMigrationEndToEndTests {
        static let ciCases = ["test_migrate_with_split_ring_virtio_pmd"]

        @Test func aCaseMigratesWithTrafficAndLeavesNothingBehind() async throws {
            try requirePrograms(["/usr/bin/python3", "qemu-system-x86_64", "dpdk-testpmd"])
            let image = HostFacts.imageDirectory + "/dts-guest-dpdk/vmlinuz"
            try #require(FileManager.default.fileExists(atPath: image),
                         "the DPDK guest image is missing (\(image)); build it with scripts/build-guest-image.sh --with-dpdk")
            let out = try TempDir("dts-e2e-migration")
            let dir = out.path + "/r"
            let result = try await DTSBinary.run(["run", "--suite", "vhost_user_live_migration", "--accel", "tcg", "--output", dir,
                                                  "--test-cases", Self.ciCases.joined(separator: ",")])
            let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: dir + "/results.json")))
            let cases = report.allCases.map(\.case)
            #expect(cases.map(\.name) == Self.ciCases, "\(cases.map(\.name))")
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
