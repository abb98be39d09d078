import Foundation
import Logging

/// Sets up swift-log once: warnings and errors by default, everything with `DTS_LOG_LEVEL=debug`.
enum Log {
    static let bootstrap: Void = {
        let level = ProcessInfo.processInfo.environment["DTS_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }()
}
