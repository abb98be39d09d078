@testable import DTS
import DTSProcess
import DTSTestSupport
@testable import Suites
import Foundation
import Testing

extension HostBackendTests {
    /// `dts run --suite perf_virtio_user_loopback --update-expected` on this machine, all ten cases
    /// with the shipped short test_duration, on a copy of the shipped config whose baselines make
    /// one path pass and one regress: real testpmds (net_vhost and net_virtio_user), the verdicts,
    /// the typed table and chart, the config rewritten in place, nothing left behind.
    @Suite struct PerfVirtioUserLoopbackEndToEndTests {
        @Test func allPathsMeasuredJudgedAndWrittenBack() async throws {
            try requirePrograms(["dpdk-testpmd"])
            let out = try TempDir("dts-e2e-vul")
            let conf = out.path + "/conf"
            try FileManager.default.createDirectory(atPath: conf, withIntermediateDirectories: true)
            let shipped = try String(contentsOfFile: "conf/perf_virtio_user_loopback.cfg", encoding: .utf8)
            // A baseline no host reaches (regression) and one every host beats (pass).
            let edited = shipped
                .replacingOccurrences(of: "'split_ring_mergeable': {64: {1024: 0.00}", with: "'split_ring_mergeable': {64: {1024: 999.0}")
                .replacingOccurrences(of: "'packed_ring_mergeable': {64: {1024: 0.00}", with: "'packed_ring_mergeable': {64: {1024: 0.001}")
            let cfg = conf + "/perf_virtio_user_loopback.cfg"
            try Data(edited.utf8).write(to: URL(fileURLWithPath: cfg))
            let dir = out.path + "/r"
            // Performance cases run when named (or with perf=true in execution.cfg).
            let names = SuiteInfo.cases(of: PerfVirtioUserLoopback.self).map(\.name)
            let result = try await DTSBinary.run(["run", "--suite", "perf_virtio_user_loopback", "--conf-dir", conf, "--output", dir,
                                                  "--test-cases", names.joined(separator: ","), "--update-expected"])
            #expect(result.status == 1, "stdout: \(result.stdout)\nstderr: \(result.stderr)")   // the regression fails

            let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: dir + "/results.json")))
            let cases = Dictionary(uniqueKeysWithValues: report.allCases.map { ($0.case.name, $0.case) })
            #expect(cases.count == 10)
            let regressed = try #require(cases["test_perf_loopback_split_ring_mergeable"])
            #expect(regressed.status == .failed)
            #expect(regressed.reason?.contains("split_ring_mergeable 64 B, 1024 descriptors: measured") == true
                    && regressed.reason?.contains("expected 999.000 Mpps") == true, "\(regressed.reason ?? "")")
            for (name, result) in cases where name != "test_perf_loopback_split_ring_mergeable" {
                // The vectorized paths run on an AVX-512 CPU, else they are skipped with the reason.
                let skipped = result.status == .skipped && (result.reason?.contains("AVX-512") == true || result.reason?.contains("vectorized") == true)
                #expect(result.status == .passed || skipped, "\(name): \(result.status) \(result.reason ?? "")")
                guard result.status == .passed else { continue }
                let table = try #require(result.perf.first)
                #expect(table.chart != nil)
                for row in 0..<table.cells.count {
                    guard case .number(let mpps)? = table.value("Throughput", row: row) else { Issue.record("\(name): no number"); continue }
                    #expect(mpps > 0.001, "\(name) row \(row): \(mpps) Mpps")
                }
                let status = table.value("Status", row: 0)
                #expect(status == (name == "test_perf_loopback_packed_ring_mergeable" ? .text("PASS") : .text("no baseline yet")))
            }
            // update_expected: measured values replaced the baselines, nothing else changed.
            let after = try String(contentsOfFile: cfg, encoding: .utf8)
            let perf = try PerfConfig(SuiteConfig(path: cfg))
            guard case .mpps(let written) = perf.expected(path: "split_ring_mergeable", frameSize: 64, descriptors: 1024) else {
                Issue.record("no baseline"); return
            }
            #expect(written > 0 && written < 999)
            let numbers = try Regex(#"\d+\.\d+"#)
            #expect(after.replacing(numbers, with: "N") == edited.replacing(numbers, with: "N"))
            #expect(processes(mentioning: "dtsvul-").isEmpty)
            #expect(!FileManager.default.fileExists(atPath: "/var/run/dpdk/dtsvul-vhost"))
        }
    }
}
