import Logging
import Synchronization

/// A log handler that passes every message to a first logger and, once one is attached, to a
/// second: the ``Run``'s logger writes to the logger it was made with (standard error for the
/// `dts` command) and, while a ``Runner`` runs, to the run log (`dts.log`) too.
final class LogRelay: Sendable {
    private let primary: Logger
    private let attached = Mutex<Logger?>(nil)

    init(primary: Logger) { self.primary = primary }

    /// Starts (or, with `nil`, stops) passing messages to `logger` as well.
    func attach(_ logger: Logger?) { attached.withLock { $0 = logger } }

    /// A logger labelled as the first one, relaying to both.
    func logger() -> Logger {
        var logger = Logger(label: primary.label) { [self] _ in Handler(relay: self) }
        logger.logLevel = .trace
        return logger
    }

    fileprivate func log(_ event: LogEvent) {
        for logger in [primary] + [attached.withLock { $0 }].compactMap({ $0 }) {
            logger.log(level: event.level, event.message, metadata: event.metadata, source: event.source,
                       file: event.file, function: event.function, line: event.line)
        }
    }

    private struct Handler: LogHandler {
        let relay: LogRelay
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var event = event
            if !metadata.isEmpty { event.metadata = metadata.merging(event.metadata ?? [:]) { $1 } }
            relay.log(event)
        }
    }
}
