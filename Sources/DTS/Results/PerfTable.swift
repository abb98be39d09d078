import Foundation

/// One cell of a ``PerfTable``: a number (its unit and decimals are the column's), a text, or
/// nothing (no expected value).
///
/// In `results.json` a number is a JSON number, a text a JSON string, nothing `null`.
public enum PerfValue: Sendable, Equatable, Codable, CustomStringConvertible {
    /// A measured or expected figure.
    case number(Double)
    /// A label or a status.
    case text(String)
    /// No value.
    case empty

    /// The text a cell shows without its column's format.
    public var description: String {
        switch self {
        case .number(let x): PerfColumn.render(x, digits: nil)
        case .text(let text): text
        case .empty: ""
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .empty } else if let x = try? container.decode(Double.self) { self = .number(x) } else {
            self = .text(try container.decode(String.self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .number(let x): try container.encode(x)
        case .text(let text): try container.encode(text)
        case .empty: try container.encodeNil()
        }
    }
}

/// A column of a ``PerfTable``: its name, and for numbers their unit and decimals.
public struct PerfColumn: Sendable, Equatable, Codable {
    /// The header (`Throughput`).
    public var name: String
    /// The unit of its numbers (`Mpps`, `Gbit/s`, `%`, `bytes`), if any.
    public var unit: String?
    /// Decimals shown (3 for Mpps, as DTS); `nil` shows integers as integers and others as Swift prints them.
    public var digits: Int?

    /// Creates a column.
    public init(_ name: String, unit: String? = nil, digits: Int? = nil) {
        self.name = name
        self.unit = unit
        self.digits = digits
    }

    /// `name (unit)`.
    public var header: String { unit.map { "\(name) (\($0))" } ?? name }

    /// The text of a value in this column.
    public func render(_ value: PerfValue) -> String {
        if case .number(let x) = value { return Self.render(x, digits: digits) }
        return value.description
    }

    static func render(_ x: Double, digits: Int?) -> String {
        if let digits { return String(format: "%.\(digits)f", x) }
        if x.rounded() == x, abs(x) < 1e15 { return String(Int64(x)) }
        return x.description
    }

    public init(from decoder: any Decoder) throws {
        if let name = try? decoder.singleValueContainer().decode(String.self) {
            self.init(name)   // results.json before typed columns
            return
        }
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(try container.decode(String.self, forKey: .name), unit: try container.decodeIfPresent(String.self, forKey: .unit),
                  digits: try container.decodeIfPresent(Int.self, forKey: .digits))
    }

    private enum CodingKeys: String, CodingKey { case name, unit, digits }
}

/// How report.html draws a table as a chart: a bar per row at its `x` column's value (frame size),
/// bar height from the `y` column (throughput), grouped by the `series` column (direction,
/// descriptors) when there is one, the `expected` column drawn as a line, and bars whose `status`
/// cell is `FAIL` marked. Columns are named by ``PerfColumn/name``.
public struct PerfChart: Sendable, Equatable, Codable {
    /// The category axis (e.g. `Frame Size`).
    public var x: String
    /// The measured value (e.g. `Throughput`).
    public var y: String
    /// Groups bars within a category, if any.
    public var series: String?
    /// The baseline drawn as a line, if any (cells 0 or empty mean none).
    public var expected: String?
    /// A column holding `PASS`/`FAIL`, if any.
    public var status: String?

    /// Creates a chart description.
    public init(x: String, y: String, series: String? = nil, expected: String? = nil, status: String? = nil) {
        self.x = x
        self.y = y
        self.series = series
        self.expected = expected
        self.status = status
    }
}

/// A performance table a case recorded (columns and rows, as DTS's perf reports), with typed
/// cells: numbers with their column's unit, texts, or nothing. The one perf model of the results:
/// `results.json`, report.html's tables and charts, and comparisons of runs read it.
public struct PerfTable: Sendable, Equatable, Codable {
    /// A caption, e.g. `throughput`.
    public var title: String
    /// The columns with units.
    public var columnSpecs: [PerfColumn]
    /// Typed rows, one cell per column.
    public var cells: [[PerfValue]]
    /// How to chart it, when it is throughput per frame size.
    public var chart: PerfChart?

    /// Column headers (names).
    public var columns: [String] { columnSpecs.map(\.name) }

    /// Rows rendered as text with each column's decimals (units are in the headers).
    public var rows: [[String]] {
        cells.map { row in row.enumerated().map { index, cell in
            index < columnSpecs.count ? columnSpecs[index].render(cell) : cell.description
        } }
    }

    /// Creates a table of text cells.
    public init(title: String, columns: [String], rows: [[String]] = []) {
        self.title = title
        self.columnSpecs = columns.map { PerfColumn($0) }
        self.cells = rows.map { $0.map(PerfValue.text) }
        self.chart = nil
    }

    /// Creates a typed table.
    public init(title: String, columns: [PerfColumn], cells: [[PerfValue]] = [], chart: PerfChart? = nil) {
        self.title = title
        self.columnSpecs = columns
        self.cells = cells
        self.chart = chart
    }

    /// Adds a row: ``PerfValue`` cells stay typed, others become their `description` text.
    public mutating func add(_ cells: [any CustomStringConvertible]) {
        self.cells.append(cells.map { ($0 as? PerfValue) ?? .text($0.description) })
    }

    /// Adds a typed row.
    public mutating func add(values: [PerfValue]) {
        cells.append(values)
    }

    /// The index of the column called `name`.
    public func column(_ name: String) -> Int? { columnSpecs.firstIndex { $0.name == name } }

    /// The cell of `row` in the column called `name`.
    public func value(_ name: String, row: Int) -> PerfValue? {
        guard let index = column(name), row < cells.count, index < cells[row].count else { return nil }
        return cells[row][index]
    }

    private enum CodingKeys: String, CodingKey { case title, columns, rows, chart }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        title = try container.decode(String.self, forKey: .title)
        columnSpecs = try container.decode([PerfColumn].self, forKey: .columns)
        cells = try container.decode([[PerfValue]].self, forKey: .rows)
        chart = try container.decodeIfPresent(PerfChart.self, forKey: .chart)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(title, forKey: .title)
        try container.encode(columnSpecs, forKey: .columns)
        try container.encode(cells, forKey: .rows)
        try container.encodeIfPresent(chart, forKey: .chart)
    }
}
