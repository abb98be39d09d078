import Foundation
import Synchronization

/// One thing that happened on a DUT session, for the run's logs.
public struct SessionLogEvent: Sendable {
    /// What kind of event this is.
    public enum Kind: String, Sendable {
        /// A command sent (exec, or a line typed into a shell).
        case command
        /// Output received (exec stdout, or shell output up to a match).
        case output
        /// Standard error of an exec.
        case errorOutput = "stderr"
        /// A command's exit status, a timeout, a control character.
        case status
        /// A file copy.
        case transfer
    }

    /// The session's endpoint (`root@127.0.0.1`, `vm0`, ...).
    public var endpoint: String
    /// The kind of event.
    public var kind: Kind
    /// The text, already redacted.
    public var text: String

    /// Creates an event.
    public init(endpoint: String, kind: Kind, text: String) {
        self.endpoint = endpoint
        self.kind = kind
        self.text = text
    }
}

/// Where sessions report the commands they send and the output they receive.
///
/// Every session kind (local, SSH, serial) takes an optional sink, or is wrapped in a
/// ``LoggingSession``; the runner passes one that writes to `dts.log`, the suite's log and the
/// running case's log (`RunLog`). Sinks must redact nothing themselves: sessions call
/// ``Redactor/redact(_:)`` before reporting.
public protocol SessionLogSink: Sendable {
    /// Records one event.
    func record(_ event: SessionLogEvent)
}

/// Replaces registered secrets (passwords from `crbs.cfg`, VM `login` passwords) with `***`
/// in text about to be logged.
///
/// Thread-safe; share one per run (``Redactor/shared`` is the process-wide default).
public final class Redactor: Sendable {
    private let secrets = Mutex<Set<String>>([])

    /// The process-wide redactor sessions use unless given another.
    public static let shared = Redactor()

    /// Creates an empty redactor.
    public init() {}

    /// Adds a secret. Empty strings and one-character strings are ignored (they would redact everything).
    public func register(_ secret: String) {
        guard secret.unicodeScalars.count >= 2 else { return }
        secrets.withLock { _ = $0.insert(secret) }
    }

    /// The text with every occurrence of a registered secret replaced by `***`; longest secrets
    /// first. Occurrences are found in the UTF-8 bytes, not by Swift `Character`: a secret whose
    /// last character is followed by a combining mark in the text is still found.
    public func redact(_ text: String) -> String {
        let current = secrets.withLock { $0.map { Array($0.utf8) } }.sorted { $0.count > $1.count }
        var result = Array(text.utf8)
        for secret in current { result = Self.replace(secret, in: result) }
        return String(decoding: result, as: UTF8.self)
    }

    private static let mask = Array("***".utf8)

    private static func replace(_ secret: [UInt8], in text: [UInt8]) -> [UInt8] {
        guard text.count >= secret.count else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        var i = 0
        while i < text.count {
            if i + secret.count <= text.count, text[i] == secret[0], text[i..<(i + secret.count)].elementsEqual(secret) {
                out += mask
                i += secret.count
            } else {
                out.append(text[i])
                i += 1
            }
        }
        return out
    }
}

extension SessionLogSink {
    /// Records an event after redacting its text with `redactor`.
    public func record(_ endpoint: String, _ kind: SessionLogEvent.Kind, _ text: String, redactor: Redactor = .shared) {
        record(SessionLogEvent(endpoint: endpoint, kind: kind, text: redactor.redact(text)))
    }
}

/// Adds command logging to any ``DUTSession`` (an SSH session, a serial console) that does not
/// log by itself: every command, its output, status and file copies go to `log`, redacted.
///
/// The runner wraps the sessions its connector returns unless they log themselves (a session
/// whose ``DUTSession/sessionLog`` is set, as a local session made with a log).
public final class LoggingSession: DUTSession {
    /// The wrapped session.
    public let base: any DUTSession
    private let log: any SessionLogSink
    private let redactor: Redactor

    /// Wraps `base`.
    public init(wrapping base: any DUTSession, log: any SessionLogSink, redactor: Redactor = .shared) {
        self.base = base
        self.log = log
        self.redactor = redactor
    }

    public var endpoint: String { base.endpoint }

    /// Where the wrapped session runs.
    public var location: SessionLocation { base.location }

    /// Where this session logs (VMs started on the DUT log their sessions there too).
    public var sessionLog: (any SessionLogSink)? { log }

    public func exec(_ command: String, timeout: Duration) async throws -> ExecResult {
        log.record(endpoint, .command, command, redactor: redactor)
        do {
            let result = try await base.exec(command, timeout: timeout)
            if !result.stdout.isEmpty { log.record(endpoint, .output, result.output, redactor: redactor) }
            if !result.stderr.isEmpty { log.record(endpoint, .errorOutput, result.errorOutput, redactor: redactor) }
            log.record(endpoint, .status, "exit status \(result.status)", redactor: redactor)
            return result
        } catch {
            log.record(endpoint, .status, "failed: \(error)", redactor: redactor)
            throw error
        }
    }

    public func openShell() async throws -> any InteractiveSession {
        LoggingShell(wrapping: try await base.openShell(), endpoint: endpoint + " (shell)", log: log, redactor: redactor)
    }

    public func upload(localPath: String, remotePath: String, mode: Int32?, progress: CopyProgress?) async throws {
        log.record(endpoint, .transfer, "upload \(localPath) -> \(remotePath)", redactor: redactor)
        try await base.upload(localPath: localPath, remotePath: remotePath, mode: mode, progress: progress)
    }

    public func download(remotePath: String, localPath: String, progress: CopyProgress?) async throws {
        log.record(endpoint, .transfer, "download \(remotePath) -> \(localPath)", redactor: redactor)
        try await base.download(remotePath: remotePath, localPath: localPath, progress: progress)
    }

    public func close() async { await base.close() }
}

/// Adds command logging to any ``InteractiveSession``.
public final class LoggingShell: InteractiveSession {
    /// The wrapped shell.
    public let base: any InteractiveSession
    private let endpoint: String
    private let log: any SessionLogSink
    private let redactor: Redactor

    /// Wraps `base`; `endpoint` names it in the log.
    public init(wrapping base: any InteractiveSession, endpoint: String, log: any SessionLogSink, redactor: Redactor = .shared) {
        self.base = base
        self.endpoint = endpoint
        self.log = log
        self.redactor = redactor
    }

    public func sendExpect(_ command: String, _ expected: Expectation, timeout: Duration) async throws -> String {
        log.record(endpoint, .command, command, redactor: redactor)
        do {
            let output = try await base.sendExpect(command, expected, timeout: timeout)
            if !output.isEmpty { log.record(endpoint, .output, output, redactor: redactor) }
            return output
        } catch {
            log.record(endpoint, .status, "failed waiting for \(expected): \(error)", redactor: redactor)
            throw error
        }
    }

    public func sendCommand(_ command: String, timeout: Duration) async throws -> String {
        log.record(endpoint, .command, command, redactor: redactor)
        let output = try await base.sendCommand(command, timeout: timeout)
        if !output.isEmpty { log.record(endpoint, .output, output, redactor: redactor) }
        return output
    }

    public func getSessionBefore(timeout: Duration) async throws -> String {
        let output = try await base.getSessionBefore(timeout: timeout)
        if !output.isEmpty { log.record(endpoint, .output, output, redactor: redactor) }
        return output
    }

    public func sendControlC() async throws {
        log.record(endpoint, .status, "^C", redactor: redactor)
        try await base.sendControlC()
    }

    public func close() async { await base.close() }
}
