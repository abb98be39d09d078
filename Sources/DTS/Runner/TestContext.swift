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
    /// The suite's own `[suite]` section of `conf/<suite>.cfg`.
    public let config: SuiteConfig
    /// Writes to `dts.log`, the suite log and the running case's log.
    public let logger: Logger
    /// The run: its cleanups (what the suite starts registers its teardown here) and VM timeline
    /// (same as `dut.run`).
    public var run: Run { dut.run }
    let recorder = CaseRecorder()

    /// Creates a context (the runner does this; tests of suites may too).
    public init(dut: Dut, tester: Dut? = nil, suiteName: String, target: String = "default",
                parameters: [String: String] = [:], outputDirectory: String, config: SuiteConfig, logger: Logger) {
        self.dut = dut
        self.tester = tester
        self.suiteName = suiteName
        self.target = target
        self.parameters = parameters
        self.settings = dut.settings
        self.outputDirectory = outputDirectory
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

    /// Lists a file (a capture, a console log) in the running case's results.
    public func attach(_ path: String) {
        recorder.attach(path)
    }

    /// A directory for the running case's artifacts, `<output>/<suite>/<case>/`, created on demand.
    public func artifactDirectory() throws -> String {
        let path = outputDirectory + "/" + suiteName + "/" + (currentCase ?? "suite")
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
