import Foundation

extension ReportWriters {
    /// Writes `compare.json` and `compare.html` into `directory`.
    public static func writeComparison(_ comparison: RunComparison, to directory: String) throws {
        try write(comparisonJSON(comparison), to: directory + "/compare.json")
        try write(Data(comparisonPage(comparison).utf8), to: directory + "/compare.html")
    }

    /// The comparison as JSON (sorted keys): every category and every perf delta.
    public static func comparisonJSON(_ comparison: RunComparison) throws -> Data {
        try encoder.encode(comparison)
    }

    /// Reads a `compare.json`.
    public static func readComparison(_ data: Data) throws -> RunComparison {
        try JSONDecoder().decode(RunComparison.self, from: data)
    }

    /// The categories of a comparison with their titles, in the order they are shown.
    static func categories(_ comparison: RunComparison) -> [(title: String, cases: [CaseChange])] {
        [("New failures", comparison.newFailures), ("Fixed", comparison.fixed), ("Still failing", comparison.stillFailing),
         ("Newly skipped", comparison.newlySkipped), ("New cases, not failing", comparison.added), ("Not run", comparison.notRun)]
    }

    /// What `dts report compare` prints: the summary, each non-empty category, and the perf drops.
    public static func comparisonText(_ comparison: RunComparison) -> String {
        var text = "Compared \(comparison.old) → \(comparison.new): \(comparison.summary)\n"
        for (title, cases) in categories(comparison) where !cases.isEmpty {
            text += "\n\(title) (\(cases.count)):\n"
            for change in cases {
                text += "  \(change.key): \(change.old?.rawValue ?? "—") → \(change.new?.rawValue ?? "not run")"
                if let reason = change.reason, change.new != .passed {
                    text += ": " + (reason.split(separator: "\n").first.map(String.init) ?? "")
                }
                text += "\n"
            }
        }
        let drops = comparison.perfDrops
        if !drops.isEmpty {
            text += "\nPerf drops beyond tolerance (\(drops.count)):\n"
            for delta in drops { text += "  " + describe(delta) + "\n" }
        }
        if !comparison.perf.isEmpty { text += "\nPerf figures compared: \(comparison.perf.count), \(drops.count) beyond tolerance\n" }
        return text
    }

    /// `suite/case on dut (target) · table · row · column: 14.88 → 12.10 Mpps (-18.7%, tolerance 5%)`.
    static func describe(_ delta: PerfDelta) -> String {
        "\(delta.key) · \(delta.table) · \(delta.row) · \(delta.column): \(number(delta.old)) → \(number(delta.new))"
            + (delta.unit.map { " " + $0 } ?? "") + " (\(percentText(delta)), tolerance \(number(delta.tolerance))%)"
    }

    static func percentText(_ delta: PerfDelta) -> String {
        guard let percent = delta.percent else { return delta.delta == 0 ? "±0" : "from 0" }
        return String(format: "%+.1f%%", percent)
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(format: "%.4g", value)
    }

    /// The comparison as an HTML fragment: the summary, a table per category, the perf deltas
    /// (drops first, marked). `links` makes case logs links (true when the page sits in the new
    /// run's directory).
    public static func comparisonHTML(_ comparison: RunComparison, links: Bool) -> String {
        var h = "<section class=\"compare\"><h2>Compared with \(escapeHTML(comparison.old))</h2>\n"
        h += "<p class=\"\(comparison.hasRegressions ? "FAILED" : "PASSED")\">\(escapeHTML(comparison.summary))</p>\n"
        for (title, cases) in categories(comparison) {
            if cases.isEmpty && (title == "New cases, not failing" || title == "Not run") { continue }
            h += "<h3>\(escapeHTML(title)) (\(cases.count))</h3>\n"
            guard !cases.isEmpty else { continue }
            h += "<table><tr><th>suite</th><th>case</th><th>DUT</th><th>target</th><th>was</th><th>now</th><th>reason</th><th>log</th></tr>\n"
            for change in cases {
                let was = change.old?.rawValue ?? "—", now = change.new?.rawValue ?? "not run"
                h += "<tr><td>\(escapeHTML(change.key.suite))</td><td>\(escapeHTML(change.key.testCase))</td>"
                h += "<td>\(escapeHTML(change.key.dut))</td><td>\(escapeHTML(change.key.target))</td>"
                h += "<td class=\"\(was)\">\(was)</td><td class=\"\(now)\">\(now)</td>"
                h += "<td class=\"reason\">\(escapeHTML(change.new == .passed ? "" : change.reason ?? ""))</td>"
                if let log = change.log, links {
                    h += "<td><a href=\"\(escapeHTML(log))\">\(escapeHTML(log))</a></td></tr>\n"
                } else {
                    h += "<td>\(escapeHTML(change.log ?? ""))</td></tr>\n"
                }
            }
            h += "</table>\n"
        }
        if !comparison.perf.isEmpty {
            h += "<h3>Perf (\(comparison.perfDrops.count) of \(comparison.perf.count) figures dropped beyond tolerance)</h3>\n"
            h += "<table><tr><th>case</th><th>table</th><th>row</th><th>column</th><th>old</th><th>new</th><th>change</th><th>tolerance</th><th></th></tr>\n"
            for delta in comparison.perfDrops + comparison.perf.filter({ !$0.regressed }) {
                h += "<tr><td>\(escapeHTML(delta.key.description))</td><td>\(escapeHTML(delta.table))</td><td>\(escapeHTML(delta.row))</td>"
                h += "<td>\(escapeHTML(delta.column))</td><td>\(number(delta.old))</td><td>\(number(delta.new))\(escapeHTML(delta.unit.map { " " + $0 } ?? ""))</td>"
                h += "<td>\(percentText(delta))</td><td>\(number(delta.tolerance))%</td>"
                h += delta.regressed ? "<td class=\"FAILED\">drop</td></tr>\n" : "<td></td></tr>\n"
            }
            h += "</table>\n"
        }
        return h + "</section>\n"
    }

    /// `compare.html`: one self-contained page with ``comparisonHTML(_:links:)``.
    public static func comparisonPage(_ comparison: RunComparison) -> String {
        pageHead(title: "dts compare") + "<h1>dts compare</h1>\n" + comparisonHTML(comparison, links: true) + "</body></html>\n"
    }
}
