import Foundation

/// Which way a perf figure gets better.
public enum PerfDirection: String, Sendable, Codable {
    /// Throughput, rates: a drop is a regression.
    case higherIsBetter = "higher"
    /// Latency, loss, time: a rise is a regression.
    case lowerIsBetter = "lower"
}

/// One number of a perf table, ready to compare.
public struct PerfFigure: Sendable, Equatable {
    /// The value.
    public var value: Double
    /// Its unit, when the cell or column names one (`Mpps`, `%`, `ms`).
    public var unit: String?
    /// Which way is better.
    public var direction: PerfDirection
    /// The figure's own tolerance in percent, when its results carry one (else the suite's).
    public var tolerance: Double?

    /// Creates a figure.
    public init(value: Double, unit: String?, direction: PerfDirection, tolerance: Double? = nil) {
        self.value = value
        self.unit = unit
        self.direction = direction
        self.tolerance = tolerance
    }
}

/// One perf figure in two runs.
public struct PerfDelta: Sendable, Codable, Equatable {
    /// The case.
    public var key: CaseKey
    /// The table's title.
    public var table: String
    /// The row: its first cell (`64` for a frame size), `#2` appended for a repeated one.
    public var row: String
    /// The column header.
    public var column: String
    /// The old value.
    public var old: Double
    /// The new value.
    public var new: Double
    /// The unit, if known.
    public var unit: String?
    /// Which way is better.
    public var direction: PerfDirection
    /// `new - old`.
    public var delta: Double { new - old }
    /// The change in percent of the old value; `nil` when the old value is 0.
    public var percent: Double? { old == 0 ? nil : (new - old) / abs(old) * 100 }
    /// The tolerance applied, in percent.
    public var tolerance: Double
    /// Worse than the old value by more than the tolerance.
    public var regressed: Bool

    enum CodingKeys: String, CodingKey { case key, table, row, column, old, new, unit, direction, tolerance, regressed, delta, percent }

    /// Creates a delta, deciding ``regressed``.
    public init(key: CaseKey, table: String, row: String, column: String, old: Double, new: Double, unit: String?,
                direction: PerfDirection, tolerance: Double) {
        self.key = key
        self.table = table
        self.row = row
        self.column = column
        self.old = old
        self.new = new
        self.unit = unit
        self.direction = direction
        self.tolerance = tolerance
        let margin = abs(old) * tolerance / 100
        switch direction {
        case .higherIsBetter: regressed = new < old - margin
        case .lowerIsBetter: regressed = new > old + margin
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(key: try c.decode(CaseKey.self, forKey: .key), table: try c.decode(String.self, forKey: .table),
                  row: try c.decode(String.self, forKey: .row), column: try c.decode(String.self, forKey: .column),
                  old: try c.decode(Double.self, forKey: .old), new: try c.decode(Double.self, forKey: .new),
                  unit: try c.decodeIfPresent(String.self, forKey: .unit), direction: try c.decode(PerfDirection.self, forKey: .direction),
                  tolerance: try c.decode(Double.self, forKey: .tolerance))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(key, forKey: .key)
        try c.encode(table, forKey: .table)
        try c.encode(row, forKey: .row)
        try c.encode(column, forKey: .column)
        try c.encode(old, forKey: .old)
        try c.encode(new, forKey: .new)
        try c.encodeIfPresent(unit, forKey: .unit)
        try c.encode(direction, forKey: .direction)
        try c.encode(tolerance, forKey: .tolerance)
        try c.encode(regressed, forKey: .regressed)
        try c.encode(delta, forKey: .delta)
        try c.encodeIfPresent(percent, forKey: .percent)
    }
}

/// Comparing the perf tables of a case in two runs: the one place that reads numbers out of
/// results and decides what a drop is.
///
/// Tables are matched by title, rows by their first cell (the key column: frame size, queue
/// count, run number), other columns by header. A cell is a figure when it reads as a number,
/// optionally followed by a unit (`14.88`, `14.88 Mpps`, `95%`, `1e3`); other cells (`7.2.19`,
/// `qemu-system-x86_64`) are labels. A figure is worse when it drops (throughput) or rises
/// (latency, loss, time: a column or unit named so, see ``direction(column:unit:)``) by more than
/// the tolerance: the figure's own, else the suite's `accepted_tolerance` (DTS's `[suite]` key,
/// percent), else ``defaultTolerance``.
///
/// Typed cells (``PerfValue``) are read as numbers with their column's unit (``PerfColumn``);
/// tables of text cells (older results, suites that record strings) are parsed as above.
public enum PerfComparison {
    /// The tolerance in percent when neither the figure nor its suite gives one.
    public static let defaultTolerance = 5.0

    /// A suite's tolerance: `accepted_tolerance` (percent) in its `[suite]` section, read by
    /// ``PerfConfig/acceptedTolerance(in:)``; `nil` when absent or not a number ≥ 0 (the suite's
    /// perf cases report that error with its line).
    public static func tolerance(in config: SuiteConfig) -> Double? {
        (try? PerfConfig.acceptedTolerance(in: config)) ?? nil
    }

    /// The figures of a table by row and column; rows keyed by their first cell (`#2`, `#3`
    /// appended to a repeated one), or by their number when the table has one column. Typed
    /// cells (``PerfValue/number(_:)``) are figures with their column's unit; text cells are read
    /// as before. A baseline verdict's `Expected Throughput` and `Throughput Difference` columns
    /// are the config's, not the run's, and are left out.
    public static func figures(in table: PerfTable) -> [(row: String, column: String, figure: PerfFigure)] {
        var figures: [(row: String, column: String, figure: PerfFigure)] = []
        var seen: [String: Int] = [:]
        // The chart's expected and status columns, and a verdict's expected and delta columns.
        let skipped = Set([table.chart?.expected, table.chart?.status].compactMap { $0 })
            .union(table.chart == nil ? [] : [ThroughputVerdict.Column.expected, ThroughputVerdict.Column.delta])
        let rendered = table.rows
        for (index, row) in table.cells.enumerated() {
            let label = table.columns.count > 1 ? (rendered[index].first ?? "") : String(index + 1)
            seen[label, default: 0] += 1
            let rowKey = seen[label]! > 1 ? "\(label) #\(seen[label]!)" : label
            for (column, cell) in row.enumerated() where column > 0 || table.columns.count == 1 {
                guard column < table.columnSpecs.count else { continue }
                let spec = table.columnSpecs[column]
                guard !skipped.contains(spec.name) else { continue }
                let value: Double, unit: String?
                switch cell {
                case .number(let x):
                    (value, unit) = (x, spec.unit ?? unitInHeader(spec.name))
                case .text(let text):
                    guard let parsed = parse(text) else { continue }
                    (value, unit) = (parsed.value, parsed.unit ?? spec.unit ?? unitInHeader(spec.name))
                case .empty:
                    continue
                }
                figures.append((rowKey, spec.header, PerfFigure(value: value, unit: unit,
                                                                direction: direction(column: spec.name, unit: unit))))
            }
        }
        return figures
    }

    /// The deltas of every figure found in both `old` and `new` (tables matched by title and
    /// order of appearance).
    public static func compare(old: [PerfTable], new: [PerfTable], key: CaseKey, tolerance: Double) -> [PerfDelta] {
        var deltas: [PerfDelta] = []
        var used: [String: Int] = [:]
        for table in new {
            let occurrence = used[table.title, default: 0]
            used[table.title] = occurrence + 1
            guard let previous = old.filter({ $0.title == table.title }).dropFirst(occurrence).first else { continue }
            let before = figures(in: previous)
            for (row, column, figure) in figures(in: table) {
                guard let was = before.first(where: { $0.row == row && $0.column == column })?.figure else { continue }
                deltas.append(PerfDelta(key: key, table: table.title, row: row, column: column, old: was.value, new: figure.value,
                                        unit: figure.unit ?? was.unit, direction: figure.direction,
                                        tolerance: figure.tolerance ?? tolerance))
            }
        }
        return deltas
    }

    /// Lower is better when a word of the column header or the unit names a latency, a delay, a
    /// loss, a drop, a time or a time unit (`latency (us)`, `loss %`, `milliseconds`, `12 ms`);
    /// higher otherwise (`Mpps`, `Gbit/s`, `% line rate`).
    public static func direction(column: String, unit: String?) -> PerfDirection {
        let lowerWords: Set<String> = ["latency", "delay", "jitter", "loss", "lost", "drop", "drops", "dropped", "time", "duration",
                                       "seconds", "ms", "us", "µs", "ns", "milliseconds", "microseconds",
                                       "nanoseconds", "cycles", "rtt"]
        let words = Self.words(column) + Self.words(unit ?? "")
        return words.contains { lowerWords.contains($0) } ? .lowerIsBetter : .higherIsBetter
    }

    /// A number at the start of `cell`, and what follows it as a unit: `14.88 Mpps` → (14.88, "Mpps").
    /// `nil` when the cell does not start with a number or has more after it than a unit word
    /// (`7.2.19`, `1:7.2+dfsg`).
    public static func parse(_ cell: String) -> (value: Double, unit: String?)? {
        let scalars = Array(cell.unicodeScalars)
        var i = 0
        while i < scalars.count, scalars[i] == " " { i += 1 }
        let start = i
        if i < scalars.count, scalars[i] == "-" || scalars[i] == "+" { i += 1 }
        var digits = 0
        while i < scalars.count, ("0"..."9").contains(scalars[i]) { i += 1; digits += 1 }
        if i < scalars.count, scalars[i] == "." {
            i += 1
            while i < scalars.count, ("0"..."9").contains(scalars[i]) { i += 1; digits += 1 }
        }
        guard digits > 0 else { return nil }
        if i < scalars.count, scalars[i] == "e" || scalars[i] == "E" {
            var j = i + 1
            if j < scalars.count, scalars[j] == "-" || scalars[j] == "+" { j += 1 }
            let exponentStart = j
            while j < scalars.count, ("0"..."9").contains(scalars[j]) { j += 1 }
            if j > exponentStart { i = j }
        }
        var number = String.UnicodeScalarView()
        number.append(contentsOf: scalars[start..<i])
        guard let value = Double(String(number)), value.isFinite else { return nil }
        var rest = String.UnicodeScalarView()
        rest.append(contentsOf: scalars[i...])
        let unit = String(rest).trimmingCharacters(in: .whitespaces)
        if unit.isEmpty { return (value, nil) }
        // A unit is letters, `%`, `/` or `µ` (Mpps, Gbit/s, %, µs), nothing that continues a number.
        let unitScalars = unit.unicodeScalars
        guard let first = unitScalars.first, !("0"..."9").contains(first), first != ".", first != ":",
              unitScalars.allSatisfy({ $0.properties.isAlphabetic || "%/µ".unicodeScalars.contains($0) }) else { return nil }
        return (value, unit)
    }

    /// The unit a header gives in parentheses: `latency (us)` → `us`.
    static func unitInHeader(_ header: String) -> String? {
        let scalars = header.unicodeScalars
        guard let open = scalars.lastIndex(of: "("), let close = scalars.lastIndex(of: ")"), open < close else { return nil }
        let unit = String(scalars[scalars.index(after: open)..<close]).trimmingCharacters(in: .whitespaces)
        return unit.isEmpty ? nil : unit
    }

    /// Lowercased runs of letters (`Latency (us)` → `latency`, `us`).
    private static func words(_ text: String) -> [String] {
        var words: [String] = []
        var current = String.UnicodeScalarView()
        for scalar in text.lowercased().unicodeScalars {
            if scalar.properties.isAlphabetic {
                current.append(scalar)
            } else if !current.isEmpty {
                words.append(String(current))
                current = String.UnicodeScalarView()
            }
        }
        if !current.isEmpty { words.append(String(current)) }
        return words
    }
}
