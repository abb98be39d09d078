@testable import DTS
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

@Suite struct PerfChartTests {
    /// A report with a baseline table (one regression), a table with no baseline and a text table.
    static func report() throws -> RunReport {
        let perf = try PerfConfig(SuiteConfig(values: [
            "test_parameters": "{64: [1024], 1518: [1024]}", "accepted_tolerance": "5",
            "expected_throughput": "{'a': {64: {1024: 2.0}, 1518: {1024: 1.0}}, 'b': {64: {1024: 0}, 1518: {1024: 0}}}"]))
        let a = ThroughputVerdict.evaluate(path: "a", [.init(frameSize: 64, descriptors: 1024, mpps: 1.5),
                                                       .init(frameSize: 1518, descriptors: 1024, mpps: 1.1)], config: perf)
        let b = ThroughputVerdict.evaluate(path: "b", [.init(frameSize: 64, descriptors: 1024, mpps: 0.3, lossPercent: 0),
                                                       .init(frameSize: 1518, descriptors: 1024, mpps: 0.2, lossPercent: 0.5)], config: perf)
        var report = resultsSampleReport()
        report.executions[0].suites[0].cases[4].perf = [a.table, b.table, PerfTable(title: "emulator", columns: ["binary"], rows: [["qemu"]])]
        return report
    }

    @Test func oneChartPerThroughputTableWithAxesAndExpectedLine() throws {
        let html = ReportWriters.html(try Self.report())
        for forbidden in ["http://", "https://", "<script", "src=", "<link"] { #expect(!html.contains(forbidden), "\(forbidden)") }
        let body = try #require(html.range(of: "<body>")).lowerBound
        let document = try XMLDocument(xmlString: String(html[body...]).replacingOccurrences(of: "</html>", with: ""), options: [])
        let sections = try document.nodes(forXPath: "//section[@class='perf-table']")
        #expect(sections.count == 3)
        let charts = try document.nodes(forXPath: "//svg[@class='perf-chart']")
        #expect(charts.count == 2)   // the text table has none
        let first = try #require(charts.first as? XMLElement)
        let labels = try first.nodes(forXPath: ".//text[starts-with(@class,'axis-label')]").map { $0.stringValue ?? "" }
        #expect(labels == ["Frame Size (bytes)", "Throughput (Mpps)"])
        #expect(try first.nodes(forXPath: ".//polyline[@class='expected']").count == 1)
        #expect(try first.nodes(forXPath: ".//rect[@class='perf-bar fail']").count == 1)    // 1.5 < 2.0 × 0.95
        #expect(try first.nodes(forXPath: ".//rect[@class='perf-bar']").count == 1)
        let second = try #require(charts.last as? XMLElement)
        #expect(try second.nodes(forXPath: ".//polyline[@class='expected']").isEmpty)     // expected 0: no baseline
        #expect(try second.nodes(forXPath: ".//text[@class='no-baseline']").count == 1)
        // The bar heights follow the values: 1518 B at 1.1 is shorter than 64 B at 1.5.
        let bars = try first.nodes(forXPath: ".//rect[starts-with(@class,'perf-bar')]").compactMap { ($0 as? XMLElement)?.attribute(forName: "height")?.stringValue.flatMap(Double.init) }
        #expect(bars.count == 2 && bars[0] > bars[1])
        #expect(html.contains("<th>Throughput (Mpps)</th>"))
    }

    @Test func resultsJSONHoldsNumbersWithUnits() throws {
        let data = try ReportWriters.resultsJSON(try Self.report())
        let back = try ReportWriters.readResults(data)
        #expect(back == (try Self.report()))
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"unit\" : \"Mpps\""))
        #expect(back.executions[0].suites[0].cases[4].perf[0].value("Throughput", row: 0) == .number(1.5))
    }
}
