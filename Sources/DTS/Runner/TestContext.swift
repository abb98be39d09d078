import Foundation
import Logging
import Synchronization

/// What a suite gets from the runner: the DUT, settings, its config, parameters, a logger and a
/// place to record performance numbers and artifacts.
public final class TestContext: Sendable {
    /// The host DUT (DTS `self.dut`).
    public let dut: Dut
    /// The tester, when `crbs.cfg` names one that differs from the DUT (not connected yet: `nil`).
    public let tester: Dut?
    /// The suite's DTS name.
    public let suiteName: String
    /// The execution target (DTS build target, e.g. `x86_64-native-linuxapp-gcc`).
    public let target: String
    /// The execution's `parameters` (`nic_type=cfg:func=true:perf=false` → `["nic_type": "cfg", ...]`).
    public let parameters: [String: String]
    /// Run-wide settings: accelerator override, conf directory.
    public let settings: RunSettings
    /// The run's output directory.
    public let outputDirectory: String
    /// The suite's directory in the output (its logs, its cases' artifacts): `<output>/<suite>`,
    /// under the DUT's subtree when a run has several DUTs.
    public let suiteDirectory: String
    /// The suite's own `[suite]` section of `conf/<suite>.cfg`.
    public let config: SuiteConfig
    /// Writes to `dts.log`, the suite log and the running case's log.
    public let logger: Logger
    /// The run: its cleanups (what the suite starts registers its teardown here) and VM timeline
    /// (same as `dut.run`).
    public var run: Run { dut.run }
    let recorder = CaseRecorder()

    /// Creates a context (the runner does this; tests of suites may too). `directory` is the
    /// suite's directory relative to `outputDirectory` (default: the suite's name).
    public init(dut: Dut, tester: Dut? = nil, suiteName: String, target: String = "default",
                parameters: [String: String] = [:], outputDirectory: String, config: SuiteConfig, logger: Logger,
                directory: String? = nil) {
        self.dut = dut
        self.tester = tester
        self.suiteName = suiteName
        self.target = target
        self.parameters = parameters
        self.settings = dut.settings
        self.outputDirectory = outputDirectory
        self.suiteDirectory = outputDirectory + "/" + (directory ?? suiteName)
        self.config = config
        self.logger = logger
    }

    /// The name of the running case, `nil` in `setUpAll`/`tearDownAll`.
    public var currentCase: String? { recorder.current }

    /// Adds a performance table to the running case's results.
    public func recordPerformance(_ table: PerfTable) {
        recorder.add(table)
        logger.info("perf \(table.title): \(table.columns.joined(separator: " | ")) / \(table.rows.count) rows")
    }

    /// The suite's performance configuration (DTS's `test_parameters`, `test_duration`,
    /// `accepted_tolerance`, `expected_throughput`, `update_expected` in `[suite]`).
    public func perfConfig() throws(ConfigError) -> PerfConfig {
        try PerfConfig(config)
    }

    /// Records what a perf case measured on `path` (a key of `expected_throughput`) and judges it
    /// as DTS does: a table with each measurement, its expected value and the delta is added to
    /// the case's results; with `update_expected = True` and `dts run --update-expected` the
    /// measured values are written back into the suite's config file; then, if any measurement
    /// is below `expected × (1 − accepted_tolerance/100)`, the case fails with one line per
    /// regression. An expected 0 (or no entry) is "no baseline yet", which passes.
    public func recordThroughput(path: String, _ measurements: [ThroughputMeasurement]) throws {
        let perf = try perfConfig()
        let verdict = ThroughputVerdict.evaluate(path: path, measurements, config: perf)
        recordPerformance(verdict.table)
        for row in verdict.table.rows { logger.info("perf \(path): \(zip(verdict.table.columns, row).map { "\($0)=\($1)" }.joined(separator: " "))") }
        for line in verdict.noBaseline { logger.info("perf: \(line)") }
        if perf.updateExpected && settings.updateExpected {
            let missing = try PerfConfig.writeExpected(file: perf.file, path: path,
                                                       measurements.map { ($0.frameSize, $0.descriptors, $0.mpps) })
            logger.info("update_expected: wrote \(measurements.count - missing.count) value(s) of '\(path)' into \(perf.file)")
            for line in missing { logger.warning("update_expected: not written, \(line)") }
        }
        if !verdict.failures.isEmpty {
            throw TestFailure(message: "throughput below expected:\n" + verdict.failures.joined(separator: "\n"))
        }
    }

    /// Lists a file (a capture, a console log) in the running case's results.
    public func attach(_ path: String) {
        recorder.attach(path)
    }

    /// A directory for the running case's artifacts, `<suite directory>/<case>/`, created on demand.
    public func artifactDirectory() throws -> String {
        let path = suiteDirectory + "/" + (currentCase ?? "suite")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// Collects what the running case records.
final class CaseRecorder: Sendable {
    private struct Record {
        var caseName: String?
        var tables: [PerfTable] = []
        var files: [String] = []
    }
    private let record = Mutex(Record())

    var current: String? { record.withLock { $0.caseName } }

    func begin(_ name: String?) { record.withLock { $0 = Record(caseName: name) } }
    func add(_ table: PerfTable) { record.withLock { $0.tables.append(table) } }
    func attach(_ path: String) { record.withLock { $0.files.append(path) } }
    func take() -> (perf: [PerfTable], artifacts: [String]) { record.withLock { ($0.tables, $0.files) } }
}
