@testable import DTS
import DTSProcess
import DTSTestSupport
import Foundation
@testable import Suites
import Testing

extension HostBackendTests {
    /// report.html as a person sees it: headless Chromium (Debian's, scripts/setup.d/chromium.sh)
    /// loads the report of a real perf_virtio_user_loopback run, takes a screenshot and dumps the
    /// DOM as rendered: one chart per perf table, labelled axes, the expected line where the
    /// config has a baseline, no console errors.
    @Suite struct ReportBrowserTests {
        @Test func chromiumRendersOneChartPerPerfTable() async throws {
            try requirePrograms(["chromium", "dpdk-testpmd"], setup: "scripts/setup.d/chromium.sh")
            let out = try TempDir("dts-report-browser")
            let conf = out.path + "/conf"
            try FileManager.default.createDirectory(atPath: conf, withIntermediateDirectories: true)
            // A baseline every host beats for split_ring_mergeable (an expected line), none for the other path.
            let shipped = try String(contentsOfFile: "conf/perf_virtio_user_loopback.cfg", encoding: .utf8)
            let edited = shipped.replacingOccurrences(of: "'split_ring_mergeable': {64: {1024: 0.00}, 1518: {1024: 0.00}}",
                                                      with: "'split_ring_mergeable': {64: {1024: 0.01}, 1518: {1024: 0.01}}")
            try Data(edited.utf8).write(to: URL(fileURLWithPath: conf + "/perf_virtio_user_loopback.cfg"))
            let dir = out.path + "/r"
            let run = try await DTSBinary.run(["run", "--suite", "perf_virtio_user_loopback", "--conf-dir", conf, "--output", dir,
                                               "--test-cases", "test_perf_loopback_split_ring_mergeable,test_perf_loopback_packed_ring_mergeable"])
            #expect(run.status == 0, "stdout: \(run.stdout)\nstderr: \(run.stderr)")
            let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: dir + "/results.json")))
            let tables = report.allCases.flatMap(\.case.perf)
            #expect(tables.count == 2)

            let url = "file://" + dir + "/report.html"
            let common = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                          "--user-data-dir=" + out.path + "/profile", "--enable-logging=stderr", "--v=0"]
            let screenshot = out.path + "/report.png"
            let shot = try await runProgram("timeout", ["120", "chromium"] + common + ["--window-size=1200,1800", "--screenshot=" + screenshot, url])
            #expect(FileManager.default.fileExists(atPath: screenshot), "no screenshot: \(shot.stderr)")
            let size = (try? FileManager.default.attributesOfItem(atPath: screenshot)[.size] as? Int) ?? 0
            #expect(size > 10_000)
            // DTS_REPORT_SCREENSHOT=PATH keeps the screenshot where a person can look at it.
            if let keep = ProcessInfo.processInfo.environment["DTS_REPORT_SCREENSHOT"] {
                try? FileManager.default.removeItem(atPath: keep)
                try? FileManager.default.copyItem(atPath: screenshot, toPath: keep)
                print("report screenshot: \(keep)")
            }

            let dom = try await runProgram("timeout", ["120", "chromium"] + common + ["--dump-dom", url])
            #expect(dom.status == 0, "\(dom.stderr)")
            let html = dom.stdout
            func count(_ needle: String) -> Int { html.components(separatedBy: needle).count - 1 }
            #expect(count("<svg class=\"perf-chart\"") == tables.count)
            #expect(count("class=\"axis-label x\"") == tables.count && count("class=\"axis-label y\"") == tables.count)
            #expect(html.contains(">Frame Size (bytes)</text>") && html.contains(">Throughput (Mpps)</text>"))
            #expect(count("<polyline class=\"expected\"") == 1)          // split_ring_mergeable only
            #expect(count("class=\"no-baseline\"") == 1)                  // packed_ring_mergeable
            // No console errors or uncaught exceptions while the page loaded.
            for line in (shot.stderr + dom.stderr).split(separator: "\n") where line.contains("CONSOLE") || line.contains("Uncaught") {
                Issue.record("console: \(line)")
            }
        }
    }
}
