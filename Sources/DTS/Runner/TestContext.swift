import Foundation
import Logging

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
final class CaseRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var caseName: String?
    private var tables: [PerfTable] = []
    private var files: [String] = []

    var current: String? { lock.withLock { caseName } }

    func begin(_ name: String?) { lock.withLock { caseName = name; tables = []; files = [] } }
    func add(_ table: PerfTable) { lock.withLock { tables.append(table) } }
    func attach(_ path: String) { lock.withLock { files.append(path) } }
    func take() -> (perf: [PerfTable], artifacts: [String]) { lock.withLock { (tables, files) } }
}

/// A suite's own settings: the `[suite]` section of `conf/<suite>.cfg`, plain `key = value`.
///
/// Getters without a default throw a ``ConfigError`` naming the file and line when the key is
/// missing or its value has the wrong type.
public struct SuiteConfig: Sendable {
    /// The file the values come from (it may not exist: then every key is missing).
    public let path: String
    private let section: ConfFile.Section?
    private let sectionName = "suite"

    /// Reads `[suite]` from `path`; a missing file or section means no keys.
    public init(path: String) throws(ConfigErrors) {
        self.path = path
        if FileManager.default.fileExists(atPath: path) {
            section = try ConfFile(contentsOf: path).section(sectionName)
        } else {
            section = nil
        }
    }

    /// Values given in code (tests).
    public init(path: String = "<inline>", values: [String: String]) {
        self.path = path
        section = ConfFile.Section(name: "suite", line: 0, items: values.sorted { $0.key < $1.key }.map {
            ConfFile.Item(key: $0.key.lowercased(), line: 0, lines: [ConfFile.ValueLine(line: 0, text: $0.value)])
        })
    }

    /// The keys present.
    public var keys: [String] { section?.items.map(\.key) ?? [] }

    /// The raw value of `key`, if present.
    public func value(_ key: String) -> String? { section?.item(key)?.value }

    /// A required string.
    public func string(_ key: String) throws(ConfigError) -> String {
        guard let item = section?.item(key) else { throw missing(key) }
        return item.value
    }

    /// A string, or `defaultValue` when absent.
    public func string(_ key: String, default defaultValue: String) -> String { value(key) ?? defaultValue }

    /// A required integer.
    public func int(_ key: String) throws(ConfigError) -> Int {
        guard let item = section?.item(key) else { throw missing(key) }
        guard let number = Int(item.value.trimmingCharacters(in: .whitespaces)) else {
            throw wrong(item, "expected an integer, got '\(item.value)'")
        }
        return number
    }

    /// An integer, or `defaultValue` when absent (a present but malformed value still throws).
    public func int(_ key: String, default defaultValue: Int) throws(ConfigError) -> Int {
        section?.item(key) == nil ? defaultValue : try int(key)
    }

    /// A required boolean: `true/false`, `yes/no`, `on/off`, `1/0` (any case), as configparser.
    public func bool(_ key: String) throws(ConfigError) -> Bool {
        guard let item = section?.item(key) else { throw missing(key) }
        switch item.value.trimmingCharacters(in: .whitespaces).lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: throw wrong(item, "expected true/false (or yes/no, on/off, 1/0), got '\(item.value)'")
        }
    }

    /// A boolean, or `defaultValue` when absent.
    public func bool(_ key: String, default defaultValue: Bool) throws(ConfigError) -> Bool {
        section?.item(key) == nil ? defaultValue : try bool(key)
    }

    /// A required comma-separated list (continuation lines allowed); items trimmed, empty ones dropped.
    public func list(_ key: String) throws(ConfigError) -> [String] {
        guard let item = section?.item(key) else { throw missing(key) }
        return Self.split(item.value)
    }

    /// A list, or `defaultValue` when absent.
    public func list(_ key: String, default defaultValue: [String]) -> [String] {
        value(key).map(Self.split) ?? defaultValue
    }

    static func split(_ value: String) -> [String] {
        value.split(whereSeparator: { $0 == "," || $0 == "\n" })
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    private func missing(_ key: String) -> ConfigError {
        let line = section?.line ?? 0
        let where_ = section == nil ? "no [\(sectionName)] section" : "section [\(sectionName)] has no key '\(key)'"
        return ConfigError(SourceLocation(file: path, line: line, section: sectionName), key: key, "required suite setting missing (\(where_))")
    }

    private func wrong(_ item: ConfFile.Item, _ message: String) -> ConfigError {
        ConfigError(SourceLocation(file: path, line: item.line, section: sectionName), key: item.key, message)
    }
}
