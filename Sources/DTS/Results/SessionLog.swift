import Foundation

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
/// Every session kind (local, SSH, serial) takes an optional sink; the runner passes one that
/// writes to `dts.log`, the suite's log and the running case's log. Sinks must redact nothing
/// themselves: sessions call ``Redactor/redact(_:)`` before reporting.
public protocol SessionLogSink: Sendable {
    /// Records one event.
    func record(_ event: SessionLogEvent)
}

/// Replaces registered secrets (passwords from `crbs.cfg`, VM `login` passwords) with `***`
/// in text about to be logged.
///
/// Thread-safe; share one per run (``Redactor/shared`` is the process-wide default).
public final class Redactor: @unchecked Sendable {
    private let lock = NSLock()
    private var secrets: Set<String> = []

    /// The process-wide redactor sessions use unless given another.
    public static let shared = Redactor()

    /// Creates an empty redactor.
    public init() {}

    /// Adds a secret. Empty strings and one-character strings are ignored (they would redact everything).
    public func register(_ secret: String) {
        guard secret.count >= 2 else { return }
        lock.lock(); defer { lock.unlock() }
        secrets.insert(secret)
    }

    /// The text with every registered secret replaced by `***`; longest secrets first.
    public func redact(_ text: String) -> String {
        lock.lock()
        let current = secrets.sorted { $0.count > $1.count }
        lock.unlock()
        var result = text
        for secret in current where result.contains(secret) {
            result = result.replacingOccurrences(of: secret, with: "***")
        }
        return result
    }
}

extension SessionLogSink {
    /// Records an event after redacting its text with `redactor`.
    public func record(_ endpoint: String, _ kind: SessionLogEvent.Kind, _ text: String, redactor: Redactor = .shared) {
        record(SessionLogEvent(endpoint: endpoint, kind: kind, text: redactor.redact(text)))
    }
}
