import Foundation

/// DTS's performance configuration: the `[suite]` keys every perf case reads, written as Python
/// literals as in DTS's `conf/perf_*.cfg`:
///
/// ```ini
/// [suite]
/// update_expected = True
/// test_parameters = {64: [1024], 1518: [1024]}
/// test_duration = 60
/// accepted_tolerance = 1
/// expected_throughput = {'split_ring_mergeable': {64: {1024: 0.00}, 1518: {1024: 0.00}}}
/// ```
///
/// Wrong types are errors naming the file, line and key.
public struct PerfConfig: Sendable {
    /// One frame size of `test_parameters` and the descriptor counts (TXD/RXD) to measure it with.
    public struct FrameParameters: Sendable, Equatable {
        /// Frame size in bytes.
        public var frameSize: Int
        /// Descriptor counts.
        public var descriptors: [Int]
        /// Creates a frame size's parameters.
        public init(frameSize: Int, descriptors: [Int]) {
            self.frameSize = frameSize
            self.descriptors = descriptors
        }
    }

    /// What `expected_throughput` says for one path, frame size and descriptor count.
    public enum Expected: Sendable, Equatable {
        /// A baseline, in Mpps; 0 means none yet, as in DTS's shipped configs.
        case mpps(Double)
        /// No entry at all (the message says which level is missing).
        case missing(String)
    }

    /// The config file (`conf/<suite>.cfg`).
    public var file: String
    /// `test_parameters`, in file order.
    public var testParameters: [FrameParameters]
    /// `test_duration` in seconds (default 60, as DTS's configs).
    public var testDuration: Double
    /// `accepted_tolerance` in percent (default 1).
    public var acceptedTolerance: Double
    /// `update_expected` (default `False`).
    public var updateExpected: Bool
    /// `expected_throughput`, as written (a dict of path → frame size → descriptors → Mpps).
    public var expectedThroughput: PythonLiteral?

    /// Reads the keys from a suite's config. `test_parameters` is required.
    public init(_ config: SuiteConfig) throws(ConfigError) {
        file = config.path
        let parameters = try config.literal("test_parameters")
        guard case .dict(let entries) = parameters.value, !entries.isEmpty else {
            throw Self.wrong(config, "test_parameters", parameters, "expected a dict of frame size → list of descriptor counts, e.g. {64: [1024], 1518: [1024]}")
        }
        var frames: [FrameParameters] = []
        for entry in entries {
            guard case .int(let size) = entry.key.value, size > 0 else {
                throw Self.wrong(config, "test_parameters", entry.key, "frame size \(entry.key.pythonText) is not a positive int")
            }
            guard case .list(let items) = entry.value.value else {
                throw Self.wrong(config, "test_parameters", entry.value, "descriptor counts of frame size \(size) must be a list, e.g. [1024], not a \(entry.value.typeName)")
            }
            var counts: [Int] = []
            for item in items {
                guard case .int(let count) = item.value, count > 0 else {
                    throw Self.wrong(config, "test_parameters", item, "descriptor count \(item.pythonText) of frame size \(size) is not a positive int")
                }
                counts.append(count)
            }
            frames.append(FrameParameters(frameSize: size, descriptors: counts))
        }
        testParameters = frames
        testDuration = try Self.number(config, "test_duration", default: 60, positive: true)
        acceptedTolerance = try Self.acceptedTolerance(in: config) ?? 1
        if let literal = try config.literalIfPresent("update_expected") {
            guard case .bool(let flag) = literal.value else {
                throw Self.wrong(config, "update_expected", literal, "expected True or False, got \(literal.pythonText)")
            }
            updateExpected = flag
        } else {
            updateExpected = false
        }
        expectedThroughput = try config.literalIfPresent("expected_throughput")
        if let expected = expectedThroughput { try Self.checkExpected(expected, config) }
    }

    /// Every frame size and descriptor count of `test_parameters`, in order.
    public var cases: [(frameSize: Int, descriptors: Int)] {
        testParameters.flatMap { frame in frame.descriptors.map { (frame.frameSize, $0) } }
    }

    /// The baseline of `path` at a frame size and descriptor count.
    public func expected(path: String, frameSize: Int, descriptors: Int) -> Expected {
        Self.lookup(expectedThroughput, path: path, frameSize: frameSize, descriptors: descriptors).map { .mpps($0.number ?? 0) }
            ?? .missing(Self.missingText(expectedThroughput, path: path, frameSize: frameSize))
    }

    static func lookup(_ expected: PythonLiteral?, path: String, frameSize: Int, descriptors: Int) -> PythonLiteral? {
        expected?.entry(.string(path))?.value.entry(.int(frameSize))?.value.entry(.int(descriptors))?.value
    }

    static func missingText(_ expected: PythonLiteral?, path: String, frameSize: Int) -> String {
        guard let expected else { return "no expected_throughput" }
        guard let byPath = expected.entry(.string(path)) else { return "no '\(path)' in expected_throughput" }
        guard byPath.value.entry(.int(frameSize)) != nil else { return "no frame size \(frameSize) under '\(path)' in expected_throughput" }
        return "no descriptor count under '\(path)' \(frameSize) in expected_throughput"
    }

    private static func checkExpected(_ expected: PythonLiteral, _ config: SuiteConfig) throws(ConfigError) {
        let shape = "expected a dict of path → {frame size: {descriptors: Mpps}}, e.g. {'split_ring_mergeable': {64: {1024: 0.00}}}"
        guard case .dict(let paths) = expected.value else { throw wrong(config, "expected_throughput", expected, shape) }
        for path in paths {
            guard case .string = path.key.value, case .dict(let sizes) = path.value.value else {
                throw wrong(config, "expected_throughput", path.key, shape)
            }
            for size in sizes {
                guard case .int = size.key.value, case .dict(let counts) = size.value.value else {
                    throw wrong(config, "expected_throughput", size.key, "under \(path.key.pythonText): \(shape)")
                }
                for count in counts {
                    guard case .int = count.key.value, let mpps = count.value.number, mpps >= 0 else {
                        throw wrong(config, "expected_throughput", count.value, "under \(path.key.pythonText) \(size.key.pythonText): descriptors \(count.key.pythonText) must map to a number of Mpps ≥ 0")
                    }
                }
            }
        }
    }

    /// `accepted_tolerance` (percent, a number ≥ 0) of a suite's config, `nil` when absent: the one
    /// reader of the key, for perf cases and for comparing runs.
    public static func acceptedTolerance(in config: SuiteConfig) throws(ConfigError) -> Double? {
        try number(config, "accepted_tolerance", positive: false)
    }

    private static func number(_ config: SuiteConfig, _ key: String, default value: Double, positive: Bool) throws(ConfigError) -> Double {
        try number(config, key, positive: positive) ?? value
    }

    private static func number(_ config: SuiteConfig, _ key: String, positive: Bool) throws(ConfigError) -> Double? {
        guard let literal = try config.literalIfPresent(key) else { return nil }
        guard let number = literal.number, positive ? number > 0 : number >= 0 else {
            throw wrong(config, key, literal, "expected a number\(positive ? " > 0" : " ≥ 0"), got \(literal.pythonText)")
        }
        return number
    }

    private static func wrong(_ config: SuiteConfig, _ key: String, _ at: PythonLiteral, _ message: String) -> ConfigError {
        var location = config.location(of: key)
        if location.line > 0 { location.line = at.line }
        return ConfigError(location, key: key, message + (location.line > 0 ? " (column \(at.column))" : ""))
    }

    // MARK: update_expected

    /// Writes measured Mpps into `expected_throughput` of the config file at `file`, DTS's
    /// `update_expected`: each value is replaced in place with three decimals (DTS's `round(x, 3)`);
    /// every other byte of the file (comments, spacing, other keys, line ends) stays as it was.
    /// The file is read afresh, so earlier cases' updates in the same run are kept.
    ///
    /// Returns the measurements that had no entry to replace (nothing is inserted).
    @discardableResult
    public static func writeExpected(file: String, path: String, _ values: [(frameSize: Int, descriptors: Int, mpps: Double)]) throws -> [String] {
        let config = try SuiteConfig(path: file)
        guard let expected = try config.literalIfPresent("expected_throughput") else {
            return values.map { "\(path) \($0.frameSize)/\($0.descriptors): no expected_throughput in \(file)" }
        }
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: file)))
        var replacements: [Int: (Range<Int>, [UInt8])] = [:]   // by offset: a value given twice is written once
        var notWritten: [String] = []
        for value in values {
            if let node = lookup(expected, path: path, frameSize: value.frameSize, descriptors: value.descriptors) {
                replacements[node.span.lowerBound] = (node.span, Array(String(format: "%.3f", value.mpps).utf8))
            } else {
                notWritten.append("\(path) \(value.frameSize)/\(value.descriptors): \(missingText(expected, path: path, frameSize: value.frameSize))")
            }
        }
        guard !replacements.isEmpty else { return notWritten }
        for (span, text) in replacements.values.sorted(by: { $0.0.lowerBound > $1.0.lowerBound }) {
            bytes.replaceSubrange(span, with: text)
        }
        try Data(bytes).write(to: URL(fileURLWithPath: file), options: .atomic)
        return notWritten
    }
}
