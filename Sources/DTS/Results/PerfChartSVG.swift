import Foundation

/// Draws a ``PerfTable`` with a ``PerfChart`` as inline SVG for report.html: a bar per row at
/// its category (frame size), grouped by series, the y axis from 0 with ticks, both axes
/// labelled with their units, the expected values as a dashed line per series, and bars whose
/// status is `FAIL` in red. No scripts, no external resources.
enum PerfChartSVG {
    static let width = 640.0, height = 300.0
    static let left = 64.0, right = 150.0, top = 16.0, bottom = 48.0
    static let palette = ["#4e79a7", "#59a14f", "#edc948", "#b07aa1", "#76b7b2", "#9c755f"]

    /// The SVG element, or `nil` when the table has no chart or its columns are missing.
    static func svg(_ table: PerfTable) -> String? {
        guard let chart = table.chart, let xi = table.column(chart.x), let yi = table.column(chart.y) else { return nil }
        let si = chart.series.flatMap(table.column), ei = chart.expected.flatMap(table.column), sti = chart.status.flatMap(table.column)
        func cell(_ row: [PerfValue], _ i: Int?) -> PerfValue? { i.flatMap { $0 < row.count ? row[$0] : nil } }
        func number(_ value: PerfValue?) -> Double? { if case .number(let x)? = value { return x } else { return nil } }
        let xColumn = table.columnSpecs[xi], yColumn = table.columnSpecs[yi]

        var categories: [String] = [], series: [String] = []
        for row in table.cells {
            let x = cell(row, xi).map(xColumn.render) ?? ""
            if !categories.contains(x) { categories.append(x) }
            let s = si.flatMap { i in cell(row, i).map(table.columnSpecs[i].render) } ?? ""
            if !series.contains(s) { series.append(s) }
        }
        guard !categories.isEmpty else { return nil }
        let values = table.cells.compactMap { number(cell($0, yi)) } + table.cells.compactMap { number(cell($0, ei)) }
        let top = niceCeiling(max(values.max() ?? 0, 1e-9))
        let plotW = width - left - right, plotH = height - Self.top - bottom
        func y(_ v: Double) -> Double { Self.top + plotH - v / top * plotH }
        let band = plotW / Double(categories.count)
        let barW = band * 0.8 / Double(series.count)
        func barX(_ c: Int, _ s: Int) -> Double { left + Double(c) * band + band * 0.1 + Double(s) * barW }

        var svg = "<svg class=\"perf-chart\" width=\"\(f(width))\" height=\"\(f(height))\" viewBox=\"0 0 \(f(width)) \(f(height))\" role=\"img\" aria-label=\"\(ReportWriters.escapeHTML(yColumn.header + " per " + xColumn.header))\">\n"
        svg += "<style>.perf-chart text{font:11px system-ui,sans-serif;fill:#333}.perf-chart .grid{stroke:#e4e4e4}.perf-chart .axis{stroke:#333}</style>\n"
        for step in 0...4 {
            let v = top * Double(step) / 4
            svg += "<line class=\"grid\" x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(y(v)))\" y2=\"\(f(y(v)))\"/>"
            svg += "<text class=\"tick y\" x=\"\(f(left - 6))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\">\(tick(v))</text>\n"
        }
        // Bars, then the expected lines on top.
        var expectedPoints: [Int: [(Double, Double)]] = [:]
        for row in table.cells {
            guard let v = number(cell(row, yi)) else { continue }
            let c = categories.firstIndex(of: cell(row, xi).map(xColumn.render) ?? "") ?? 0
            let sName = si.flatMap { i in cell(row, i).map(table.columnSpecs[i].render) } ?? ""
            let s = series.firstIndex(of: sName) ?? 0
            let failed = cell(row, sti) == .text("FAIL")
            let color = failed ? "#d62728" : palette[s % palette.count]
            let label = "\(xColumn.render(cell(row, xi) ?? .empty))\(sName.isEmpty ? "" : " · " + sName): \(yColumn.render(.number(v)))\(yColumn.unit.map { " " + $0 } ?? "")\(failed ? " (below expected)" : "")"
            svg += "<rect class=\"perf-bar\(failed ? " fail" : "")\" x=\"\(f(barX(c, s)))\" y=\"\(f(y(v)))\" width=\"\(f(barW))\" height=\"\(f(max(y(0) - y(v), 0)))\" fill=\"\(color)\"><title>\(ReportWriters.escapeHTML(label))</title></rect>\n"
            if let e = number(cell(row, ei)), e > 0 { expectedPoints[s, default: []].append((barX(c, s) + barW / 2, y(e))) }
        }
        for (s, points) in expectedPoints.sorted(by: { $0.key < $1.key }) {
            let path = points.count == 1
                ? "\(f(points[0].0 - barW / 2)),\(f(points[0].1)) \(f(points[0].0 + barW / 2)),\(f(points[0].1))"
                : points.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " ")
            svg += "<polyline class=\"expected\" points=\"\(path)\" fill=\"none\" stroke=\"#222\" stroke-width=\"2\" stroke-dasharray=\"6 3\"><title>expected \(ReportWriters.escapeHTML(series[s]))</title></polyline>\n"
            for point in points { svg += "<circle class=\"expected-point\" cx=\"\(f(point.0))\" cy=\"\(f(point.1))\" r=\"3\" fill=\"#222\"/>" }
            svg += "\n"
        }
        // Axes and labels.
        svg += "<line class=\"axis\" x1=\"\(f(left))\" x2=\"\(f(left))\" y1=\"\(f(Self.top))\" y2=\"\(f(y(0)))\"/>"
        svg += "<line class=\"axis\" x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(y(0)))\" y2=\"\(f(y(0)))\"/>\n"
        for (c, name) in categories.enumerated() {
            svg += "<text class=\"tick x\" x=\"\(f(left + (Double(c) + 0.5) * band))\" y=\"\(f(y(0) + 15))\" text-anchor=\"middle\">\(ReportWriters.escapeHTML(name))</text>"
        }
        svg += "\n<text class=\"axis-label x\" x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 8))\" text-anchor=\"middle\">\(ReportWriters.escapeHTML(xColumn.header))</text>\n"
        svg += "<text class=\"axis-label y\" transform=\"translate(14 \(f(Self.top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(ReportWriters.escapeHTML(yColumn.header))</text>\n"
        // Legend.
        var ly = Self.top + 4
        let legendX = left + plotW + 14
        for (s, name) in series.enumerated() {
            let text = name.isEmpty ? yColumn.name : (chart.series.map { "\($0) " } ?? "") + name
            svg += "<rect x=\"\(f(legendX))\" y=\"\(f(ly))\" width=\"10\" height=\"10\" fill=\"\(palette[s % palette.count])\"/><text x=\"\(f(legendX + 14))\" y=\"\(f(ly + 9))\">\(ReportWriters.escapeHTML(text))</text>\n"
            ly += 16
        }
        if !expectedPoints.isEmpty {
            svg += "<line x1=\"\(f(legendX))\" x2=\"\(f(legendX + 10))\" y1=\"\(f(ly + 5))\" y2=\"\(f(ly + 5))\" stroke=\"#222\" stroke-width=\"2\" stroke-dasharray=\"4 2\"/><text x=\"\(f(legendX + 14))\" y=\"\(f(ly + 9))\">expected</text>\n"
            ly += 16
        }
        if table.cells.contains(where: { cell($0, sti) == .text("FAIL") }) {
            svg += "<rect x=\"\(f(legendX))\" y=\"\(f(ly))\" width=\"10\" height=\"10\" fill=\"#d62728\"/><text x=\"\(f(legendX + 14))\" y=\"\(f(ly + 9))\">below expected</text>\n"
        } else if expectedPoints.isEmpty {
            svg += "<text class=\"no-baseline\" x=\"\(f(legendX))\" y=\"\(f(ly + 9))\">no baseline yet</text>\n"
        }
        return svg + "</svg>"
    }

    /// 1, 2 or 5 × 10ⁿ at or above `value`.
    static func niceCeiling(_ value: Double) -> Double {
        let magnitude = pow(10, floor(log10(value)))
        for factor in [1.0, 2.0, 2.5, 5.0, 10.0] where factor * magnitude >= value * 1.05 { return factor * magnitude }
        return 10 * magnitude
    }

    static func tick(_ v: Double) -> String {
        if v == 0 { return "0" }
        return v >= 10 ? String(format: "%.0f", v) : v >= 1 ? String(format: "%.1f", v) : String(format: "%.3g", v)
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }
}
