import Foundation
import Logging
import Synchronization

/// The run's log files: `dts.log` gets everything; `<suite>.log` (in the suite directory) gets
/// what happens while that suite runs; `<suite>/<case>.log` what happens during that case,
/// including every command sent on DUT sessions and its output.
///
/// It is a ``SessionLogSink`` (give it to sessions) and backs a swift-log `Logger` (``logger(label:)``).
public final class RunLog: SessionLogSink, Sendable {
    /// The output directory.
    public let directory: String
    /// The open logs: `dts.log`, the running suite's and the running case's.
    private struct Files {
        let main: FileHandle
        var suite: FileHandle?
        var testCase: FileHandle?
    }
    private let files: Mutex<Files>
    private let echo: (@Sendable (String) -> Void)?
    private let redactor: Redactor

    /// Opens (truncating) `<directory>/dts.log`. `echo` receives every line too (`--verbose`).
    public init(directory: String, redactor: Redactor = .shared, echo: (@Sendable (String) -> Void)? = nil) throws {
        self.directory = directory
        self.echo = echo
        self.redactor = redactor
        files = Mutex(Files(main: try Self.open(directory + "/dts.log")))
    }

    private static func open(_ path: String) throws -> FileHandle {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw RunnerError.output(path: path, reason: "cannot create file")
        }
        return try FileHandle(forWritingTo: url)
    }

    /// Starts writing the suite log at `relativePath` (under the output directory).
    func beginSuite(_ relativePath: String) throws {
        let handle = try Self.open(directory + "/" + relativePath)
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
            handle = try Self.open(path)
        }
        files.withLock { $0.testCase = handle }
    }

    /// Stops writing the case log.
    func endCase() {
        files.withLock { try? $0.testCase?.close(); $0.testCase = nil }
    }

    /// Writes one line (timestamped) to every open log.
    public func write(_ text: String) {
        let line = Self.timestamp() + " " + text + (text.hasSuffix("\n") ? "" : "\n")
        let data = Data(line.utf8)
        files.withLock { files in
            files.main.write(data)
            files.suite?.write(data)
            files.testCase?.write(data)
        }
        echo?(line)
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

    /// Closes every file.
    public func close() {
        files.withLock { files in
            try? files.testCase?.close(); files.testCase = nil
            try? files.suite?.close(); files.suite = nil
            try? files.main.close()
        }
    }

    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec, now.tv_nsec / 1_000_000)
    }

    fileprivate func redact(_ text: String) -> String { redactor.redact(text) }
}

/// swift-log handler that writes to a ``RunLog``.
struct RunLogHandler: LogHandler {
    let label: String
    let log: RunLog
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
