import Foundation
import Logging
import Synchronization

/// The run's log files: `dts.log` gets everything; `<suite>/suite.log` gets what happens while
/// that suite runs; `<suite>/<case>.log` what happens during that case, including every command
/// sent on DUT sessions and its output.
///
/// When DUTs run in parallel, each DUT's worker writes through its own ``RunLogLane``
/// (``lane(dutLog:)``): its lines go to `dts.log`, to the DUT's own `<dut>/dut.log`, and to that
/// worker's suite and case logs only. A run with one DUT writes through ``primary``.
///
/// It is a ``SessionLogSink`` (give it to sessions) and backs a swift-log `Logger` (``logger(label:)``);
/// both write through ``primary``.
public final class RunLog: SessionLogSink, Sendable {
    /// The output directory.
    public let directory: String
    private let main: RunLogMain
    /// The lane of a run with one DUT worker (and of everything outside the workers).
    public let primary: RunLogLane

    /// Opens (truncating) `<directory>/dts.log`. `echo` receives every line too (`--verbose`).
    public init(directory: String, redactor: Redactor = .shared, echo: (@Sendable (String) -> Void)? = nil) throws {
        self.directory = directory
        main = RunLogMain(handle: try Self.open(directory + "/dts.log"), echo: echo, redactor: redactor)
        primary = RunLogLane(directory: directory, main: main, own: nil)
    }

    fileprivate static func open(_ path: String) throws -> FileHandle {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw RunnerError.output(path: path, reason: "cannot create file")
        }
        return try FileHandle(forWritingTo: url)
    }

    /// A lane for one DUT's worker; `dutLog` (relative to the output directory) gets every line of the lane.
    public func lane(dutLog: String) throws -> RunLogLane {
        RunLogLane(directory: directory, main: main, own: try Self.open(directory + "/" + dutLog))
    }

    /// A lane for one DUT's worker that writes no file of its own (its lines go to `dts.log` and
    /// its suite and case logs).
    public func lane() -> RunLogLane {
        RunLogLane(directory: directory, main: main, own: nil)
    }

    /// Starts writing the suite log at `relativePath` (under the output directory) on ``primary``.
    func beginSuite(_ relativePath: String) throws { try primary.beginSuite(relativePath) }
    /// Stops writing the suite log of ``primary``.
    func endSuite() { primary.endSuite() }
    /// Starts (or, for a re-run, appends to) a case log at `relativePath` on ``primary``.
    func beginCase(_ relativePath: String, append: Bool) throws { try primary.beginCase(relativePath, append: append) }
    /// Stops writing the case log of ``primary``.
    func endCase() { primary.endCase() }

    /// Writes one line (timestamped) to `dts.log` and the open logs of ``primary``.
    public func write(_ text: String) { primary.write(text) }

    public func record(_ event: SessionLogEvent) { primary.record(event) }

    /// A logger writing through ``primary``.
    public func logger(label: String, level: Logger.Level = .debug) -> Logger { primary.logger(label: label, level: level) }

    /// Closes every file (lanes close their own).
    public func close() {
        primary.close()
        main.close()
    }

    fileprivate static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec, now.tv_nsec / 1_000_000)
    }
}

/// `dts.log`, the echo and the redactor every lane of a run log shares.
private final class RunLogMain: Sendable {
    private let handle: Mutex<FileHandle?>
    let echo: (@Sendable (String) -> Void)?
    let redactor: Redactor

    init(handle: FileHandle, echo: (@Sendable (String) -> Void)?, redactor: Redactor) {
        self.handle = Mutex(handle)
        self.echo = echo
        self.redactor = redactor
    }

    func write(_ data: Data, line: String) {
        handle.withLock { $0?.write(data) }
        echo?(line)
    }

    func close() {
        handle.withLock { handle in
            try? handle?.close()
            handle = nil
        }
    }
}

/// One worker's view of the ``RunLog``: every line goes to `dts.log` and to this lane's open files
/// (its DUT log, the running suite's and the running case's), so two DUTs running at once never
/// write into each other's suite or case logs.
public final class RunLogLane: SessionLogSink, Sendable {
    /// The output directory.
    public let directory: String
    private struct Files {
        var own: FileHandle?
        var suite: FileHandle?
        var testCase: FileHandle?
    }
    private let files: Mutex<Files>
    private let main: RunLogMain

    fileprivate init(directory: String, main: RunLogMain, own: FileHandle?) {
        self.directory = directory
        self.main = main
        files = Mutex(Files(own: own))
    }

    /// Starts writing the suite log at `relativePath` (under the output directory).
    func beginSuite(_ relativePath: String) throws {
        let handle = try RunLog.open(directory + "/" + relativePath)
        files.withLock { $0.suite = handle }
    }

    /// Stops writing the suite log.
    func endSuite() {
        files.withLock { try? $0.suite?.close(); $0.suite = nil }
    }

    /// Starts (or, for a re-run, appends to) a case log at `relativePath`.
    func beginCase(_ relativePath: String, append: Bool) throws {
        let path = directory + "/" + relativePath
        let handle: FileHandle
        if append, FileManager.default.fileExists(atPath: path) {
            handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.seekToEnd()
        } else {
            handle = try RunLog.open(path)
        }
        files.withLock { $0.testCase = handle }
    }

    /// Stops writing the case log.
    func endCase() {
        files.withLock { try? $0.testCase?.close(); $0.testCase = nil }
    }

    /// Writes one line (timestamped) to `dts.log` and every open log of the lane.
    public func write(_ text: String) {
        let line = RunLog.timestamp() + " " + text + (text.hasSuffix("\n") ? "" : "\n")
        let data = Data(line.utf8)
        files.withLock { files in
            files.own?.write(data)
            files.suite?.write(data)
            files.testCase?.write(data)
        }
        main.write(data, line: line)
    }

    public func record(_ event: SessionLogEvent) {
        let prefix: String
        switch event.kind {
        case .command: prefix = "\(event.endpoint) $ "
        case .output: prefix = "\(event.endpoint) > "
        case .errorOutput: prefix = "\(event.endpoint) 2> "
        case .status: prefix = "\(event.endpoint) = "
        case .transfer: prefix = "\(event.endpoint) ⇄ "
        }
        let body = event.text.hasSuffix("\n") ? String(event.text.dropLast()) : event.text
        let lines = body.split(separator: "\n", omittingEmptySubsequences: false)
        write(prefix + lines.joined(separator: "\n" + String(repeating: " ", count: 24) + "| "))
    }

    /// A logger writing to these files.
    public func logger(label: String, level: Logger.Level = .debug) -> Logger {
        var logger = Logger(label: label) { [self] label in RunLogHandler(label: label, log: self) }
        logger.logLevel = level
        return logger
    }

    /// Closes the lane's files (not `dts.log`).
    public func close() {
        files.withLock { files in
            try? files.testCase?.close(); files.testCase = nil
            try? files.suite?.close(); files.suite = nil
            try? files.own?.close(); files.own = nil
        }
    }

    fileprivate func redact(_ text: String) -> String { main.redactor.redact(text) }
}

/// swift-log handler that writes to a ``RunLogLane``.
struct RunLogHandler: LogHandler {
    let label: String
    let log: RunLogLane
    var logLevel: Logger.Level = .debug
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var text = "[\(event.level)] \(label): \(event.message)"
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        if !merged.isEmpty {
            text += " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
        log.write(log.redact(text))
    }
}
