import Foundation

/// The files a run leaves in its output directory, built from a ``RunReport``.
public enum ReportWriters {
    /// Writes `test_results.json`, `results.json`, `junit.xml` and `report.html` into `directory`;
    /// with a `comparison` (`--baseline`), also `compare.json` and `compare.html`, and the
    /// comparison goes at the top of `report.html`.
    public static func writeAll(_ report: RunReport, comparison: RunComparison? = nil, to directory: String) throws {
        try write(testResultsJSON(report), to: directory + "/test_results.json")
        try write(resultsJSON(report), to: directory + "/results.json")
        try write(Data(junitXML(report).utf8), to: directory + "/junit.xml")
        try write(Data(html(report, comparison: comparison).utf8), to: directory + "/report.html")
        if let comparison { try writeComparison(comparison, to: directory) }
    }

    static func write(_ data: Data, to path: String) throws {
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw RunnerError.output(path: path, reason: "\(error.localizedDescription)")
        }
    }

    // MARK: test_results.json (DTS)

    /// DTS's `test_results.json`: `{dut: {target: {"suite/case": "passed"}}}`, suite names
    /// lowercased and statuses lowercase, as DTS's JSON reporter writes them.
    public static func testResultsJSON(_ report: RunReport) throws -> Data {
        var tree: [String: [String: [String: String]]] = [:]
        for entry in report.allCases {
            let key = entry.suite.name.lowercased() + "/" + entry.case.name
            tree[entry.execution.dut, default: [:]][entry.execution.target, default: [:]][key] = entry.case.status.dtsWord
        }
        // Executions that ran no case still appear, so a reader sees the DUT and target.
        for execution in report.executions where tree[execution.dut]?[execution.target] == nil {
            tree[execution.dut, default: [:]][execution.target] = [:]
        }
        return try JSONSerialization.data(withJSONObject: tree, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    // MARK: results.json

    /// The full report as JSON (ISO 8601 dates, sorted keys).
    public static func resultsJSON(_ report: RunReport) throws -> Data {
        try encoder.encode(report)
    }

    /// Reads a `results.json` back.
    public static func readResults(_ data: Data) throws -> RunReport {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(RunReport.self, from: data)
    }

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    /// Escapes text for HTML attributes and content; drops the characters XML 1.0 forbids, so the
    /// page also parses as XML.
    static func escapeHTML(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in xmlCharacters(text).unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// `text` without the characters XML 1.0 forbids (controls other than tab, newline and carriage
    /// return, U+FFFE, U+FFFF): a reason may quote a terminal's escape sequences.
    static func xmlCharacters(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.value < 0x20 && !["\t", "\n", "\r"].contains(scalar) { continue }
            if (0xFFFE...0xFFFF).contains(scalar.value) { continue }
            out.append(scalar)
        }
        return String(out)
    }

    static func seconds(_ value: Double) -> String { String(format: "%.3f", value) }

    static func isoNoZone(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        return formatter.string(from: date)
    }

    // MARK: report.html

    /// The head of every page dts writes (report, compare): one style sheet, no external resources.
    static func pageHead(title: String) -> String {
        """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escapeHTML(title))</title>
            <style>
            body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
            table{border-collapse:collapse;margin:.5em 0 1.5em}
            th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
            th{background:#f0f0f0}
            .PASSED{background:#d8f5d8}.FAILED{background:#f8d0d0}.BLOCKED{background:#f5e0b8}
            .SKIPPED{background:#e8e8e8}.ERROR{background:#f0b0f0}
            .reason{white-space:pre-wrap;font-family:monospace;font-size:90%}
            .lane{position:relative;height:1.4em;background:#f6f6f6;margin:2px 0;min-width:40em}
            figure.perf{margin:.5em 0}
            .bar{position:absolute;top:0;height:100%;background:#6a9fd8;color:#fff;font-size:75%;overflow:hidden;white-space:nowrap}
            .compare{border:2px solid #999;padding:0 1em;margin-bottom:1.5em}
            </style></head><body>

            """
    }

    /// One self-contained HTML page: a summary, a results table per DUT/target, performance
    /// tables (each with an inline SVG chart when it is throughput per frame size, see
    /// ``PerfChart``), and the VM start timeline drawn as bars. No external resources, no scripts. A `comparison`
    /// (`--baseline`) comes first; a merged report lists the directories it was made from.
    public static func html(_ report: RunReport, comparison: RunComparison? = nil) -> String {
        let counts = report.counts
        var h = pageHead(title: "dts report") + "<h1>dts report</h1>\n"
        if let comparison { h += comparisonHTML(comparison, links: true) }
        h += "<p>Started \(escapeHTML(isoNoZone(report.start))) UTC, \(seconds(report.duration)) s; exit status \(report.exitStatus)."
        if let interrupted = report.interrupted { h += " <strong>Interrupted: \(escapeHTML(interrupted)).</strong>" }
        h += "</p>\n<p>"
        h += CaseStatus.allCases.map { "<span class=\"\($0.rawValue)\">\($0.rawValue) \(counts[$0] ?? 0)</span>" }.joined(separator: " · ")
        h += "</p>\n<p>Command: <code>\(escapeHTML(report.command.joined(separator: " ")))</code></p>\n"
        if let shard = report.shard {
            h += "<p>Shard \(shard.shard) of a plan of \(shard.planUnits) cases (\(report.allCases.count) here).</p>\n"
        }
        if let sources = report.merged {
            h += "<p>Merged from:</p>\n<table><tr><th>directory</th><th>shard</th><th>cases</th><th>exit status</th></tr>\n"
            for source in sources {
                h += "<tr><td><a href=\"\(escapeHTML(source.directory))/report.html\">\(escapeHTML(source.directory))</a></td>"
                h += "<td>\(escapeHTML(source.shard.map { "\($0.shard)" } ?? "—"))</td><td>\(source.cases)</td>"
                h += "<td>\(source.exitStatus)\(escapeHTML(source.interrupted.map { " (interrupted: \($0))" } ?? ""))</td></tr>\n"
            }
            h += "</table>\n"
        }

        for execution in report.executions {
            h += "<h2>\(escapeHTML(execution.dut)) · \(escapeHTML(execution.target)) <small>(\(escapeHTML(execution.execution)))</small></h2>\n"
            h += "<table><tr><th>suite</th><th>case</th><th>kind</th><th>status</th><th>time (s)</th><th>attempts</th><th>reason</th><th>log</th></tr>\n"
            for suite in execution.suites {
                if let error = suite.setUpAllError {
                    h += "<tr><td>\(escapeHTML(suite.name))</td><td colspan=\"7\" class=\"reason\">setUpAll: \(escapeHTML(error))</td></tr>\n"
                }
                for result in suite.cases {
                    let attempts = result.attempts.map(\.status.rawValue).joined(separator: ", ")
                    h += "<tr><td>\(escapeHTML(suite.name))</td><td>\(escapeHTML(result.name))</td><td>\(result.kind.rawValue)</td>"
                    h += "<td class=\"\(result.status.rawValue)\">\(result.status.rawValue)</td><td>\(seconds(result.duration))</td>"
                    h += "<td>\(escapeHTML(attempts))</td><td class=\"reason\">\(escapeHTML(result.reason ?? ""))</td>"
                    h += "<td><a href=\"\(escapeHTML(result.log))\">\(escapeHTML(result.log))</a></td></tr>\n"
                }
            }
            h += "</table>\n"
            for suite in execution.suites {
                for result in suite.cases {
                    for table in result.perf {
                        h += "<section class=\"perf-table\"><h3>\(escapeHTML(suite.name))/\(escapeHTML(result.name)): \(escapeHTML(table.title))</h3>\n"
                        if let chart = PerfChartSVG.svg(table) { h += "<figure class=\"perf\">\(chart)</figure>\n" }
                        h += "<table><tr>" + table.columnSpecs.map { "<th>\(escapeHTML($0.header))</th>" }.joined() + "</tr>\n"
                        for row in table.rows { h += "<tr>" + row.map { "<td>\(escapeHTML($0))</td>" }.joined() + "</tr>\n" }
                        h += "</table></section>\n"
                    }
                }
            }
        }

        h += "<h2>VM start timeline</h2>\n"
        if report.timeline.isEmpty {
            h += "<p>No VM start stages were recorded in this run.</p>\n"
        } else {
            let origin = report.timeline.map(\.start).min()!
            let span = max(report.timeline.map { $0.end.timeIntervalSince(origin) }.max()!, 0.001)
            h += "<table><tr><th>VM</th><th>stage</th><th>start (s)</th><th>duration (s)</th><th style=\"width:60%\">timeline (0–\(seconds(span)) s)</th></tr>\n"
            for event in report.timeline.sorted(by: { ($0.vm, $0.start) < ($1.vm, $1.start) }) {
                let offset = event.start.timeIntervalSince(origin), length = max(event.end.timeIntervalSince(event.start), 0)
                let left = offset / span * 100, width = max(length / span * 100, 0.3)
                h += "<tr><td>\(escapeHTML(event.vm))</td><td>\(escapeHTML(event.stage))</td><td>\(seconds(offset))</td><td>\(seconds(length))</td>"
                h += "<td><div class=\"lane\"><div class=\"bar\" style=\"left:\(String(format: "%.2f", left))%;width:\(String(format: "%.2f", width))%\" title=\"\(escapeHTML(event.stage))\">\(escapeHTML(event.stage))</div></div></td></tr>\n"
            }
            h += "</table>\n"
        }
        h += "</body></html>\n"
        return h
    }
}
