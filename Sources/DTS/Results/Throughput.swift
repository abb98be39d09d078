import Foundation

/// One throughput figure a perf case measured: a frame size (and descriptor count) on a path.
public struct ThroughputMeasurement: Sendable, Equatable {
    /// Frame size in bytes (Ethernet frame with CRC, as DTS counts it).
    public var frameSize: Int
    /// The descriptor count (TXD/RXD) it was measured with, a key of `test_parameters`.
    public var descriptors: Int
    /// Throughput in millions of packets per second.
    public var mpps: Double
    /// Loss in percent of what was sent, when the case knows it.
    public var lossPercent: Double?
    /// Average latency in microseconds, when the path gives it cheaply.
    public var latencyMicroseconds: Double?

    /// Creates a measurement.
    public init(frameSize: Int, descriptors: Int, mpps: Double, lossPercent: Double? = nil, latencyMicroseconds: Double? = nil) {
        self.frameSize = frameSize
        self.descriptors = descriptors
        self.mpps = mpps
        self.lossPercent = lossPercent
        self.latencyMicroseconds = latencyMicroseconds
    }

    /// Gbit/s on the wire for this rate and frame size: frame plus preamble and inter-frame gap
    /// (20 bytes), as line rate is counted.
    public var gbps: Double { Self.gbps(mpps: mpps, frameSize: frameSize) }

    /// Gbit/s on the wire for `mpps` frames of `frameSize` bytes (plus 20 bytes of preamble and gap).
    public static func gbps(mpps: Double, frameSize: Int) -> Double { mpps * Double(frameSize + 20) * 8 / 1000 }
}

/// How measurements compare with `expected_throughput` (DTS's `handle_results`): a measurement
/// below `expected × (1 − accepted_tolerance/100)` is a regression; an expected of 0 (or no entry)
/// means no baseline yet, which passes.
public struct ThroughputVerdict: Sendable {
    /// The table for the report: frame size, descriptors, throughput, Gbit/s, loss, latency,
    /// expected, delta and status, charted as throughput per frame size with the expected line.
    public var table: PerfTable
    /// One line per regression, naming path, frame size, measured and expected figures.
    public var failures: [String]
    /// One line per measurement with no baseline.
    public var noBaseline: [String]

    /// Column names of the table.
    public enum Column {
        public static let frameSize = "Frame Size", descriptors = "TXD/RXD", throughput = "Throughput", gbps = "Rate"
        public static let loss = "Loss", latency = "Latency", expected = "Expected Throughput", delta = "Throughput Difference"
        public static let status = "Status"
    }

    /// Compares `measurements` of `path` with `config`'s baselines.
    public static func evaluate(path: String, _ measurements: [ThroughputMeasurement], config: PerfConfig) -> ThroughputVerdict {
        let withLoss = measurements.contains { $0.lossPercent != nil }
        let withLatency = measurements.contains { $0.latencyMicroseconds != nil }
        var columns = [PerfColumn(Column.frameSize, unit: "bytes"), PerfColumn(Column.descriptors, unit: "descriptors"),
                       PerfColumn(Column.throughput, unit: "Mpps", digits: 3), PerfColumn(Column.gbps, unit: "Gbit/s", digits: 3)]
        if withLoss { columns.append(PerfColumn(Column.loss, unit: "%", digits: 3)) }
        if withLatency { columns.append(PerfColumn(Column.latency, unit: "µs", digits: 1)) }
        columns += [PerfColumn(Column.expected, unit: "Mpps", digits: 3), PerfColumn(Column.delta, unit: "Mpps", digits: 3),
                    PerfColumn(Column.status)]
        var table = PerfTable(title: path, columns: columns,
                              chart: PerfChart(x: Column.frameSize, y: Column.throughput, series: Column.descriptors,
                                               expected: Column.expected, status: Column.status))
        var failures: [String] = [], noBaseline: [String] = []
        let tolerance = config.acceptedTolerance
        for m in measurements {
            var row: [PerfValue] = [.number(Double(m.frameSize)), .number(Double(m.descriptors)), .number(m.mpps), .number(m.gbps)]
            if withLoss { row.append(m.lossPercent.map(PerfValue.number) ?? .empty) }
            if withLatency { row.append(m.latencyMicroseconds.map(PerfValue.number) ?? .empty) }
            let what = "\(path) \(m.frameSize) B, \(m.descriptors) descriptors"
            switch config.expected(path: path, frameSize: m.frameSize, descriptors: m.descriptors) {
            case .mpps(let expected) where expected > 0:
                let floor = expected * (1 - tolerance / 100)
                let pass = m.mpps >= floor
                row += [.number(expected), .number(m.mpps - expected), .text(pass ? "PASS" : "FAIL")]
                if !pass {
                    failures.append("\(what): measured " + String(format: "%.3f Mpps, expected %.3f Mpps (at least %.3f with accepted_tolerance %g%%)",
                                                                        m.mpps, expected, floor, tolerance))
                }
            case .mpps:
                row += [.number(0), .empty, .text("no baseline yet")]
                noBaseline.append("\(what): \(String(format: "%.3f", m.mpps)) Mpps, no baseline yet (expected_throughput is 0)")
            case .missing(let why):
                row += [.empty, .empty, .text("no baseline yet")]
                noBaseline.append("\(what): \(String(format: "%.3f", m.mpps)) Mpps, no baseline yet (\(why))")
            }
            table.add(values: row)
        }
        return ThroughputVerdict(table: table, failures: failures, noBaseline: noBaseline)
    }
}

/// A rate measured after a reconnect against the rate before it: DTS's `check_reconnect_perf`,
/// which failed a case when `before - after >= before × 15 %`. The allowed drop is the suite's
/// setting (DTS hard-coded 15 % for KVM lab hardware). Any unit, as long as both rates share it.
public struct RateDrop: Sendable, Equatable {
    /// The rate before the reconnect.
    public var before: Double
    /// The rate after it.
    public var after: Double

    /// A comparison of `after` with `before`.
    public init(before: Double, after: Double) {
        self.before = before
        self.after = after
    }

    /// The drop as a fraction of `before` (negative when the rate rose); 1 when `before` is 0.
    public var fraction: Double { before > 0 ? (before - after) / before : 1 }

    /// Whether the drop stays under `maxDrop` (a fraction, 0.15 for DTS's 15 %), strictly as DTS
    /// compared; a `before` of 0 never passes (nothing flowed to compare with).
    public func isWithin(_ maxDrop: Double) -> Bool { before > 0 && before - after < before * maxDrop }

    /// `12.3 -> 10.1 (drop 17.9 %)`, for logs and failures.
    public var description: String {
        "\(Self.format(before)) -> \(Self.format(after)) (drop \(String(format: "%.1f", fraction * 100)) %)"
    }

    private static func format(_ value: Double) -> String { String(format: value < 1 ? "%.4f" : "%.1f", value) }
}
