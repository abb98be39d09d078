import Foundation
import Synchronization

/// One line of a control-channel transcript: something sent, received, or a note (connect, close, garbage).
public struct ControlTranscriptLine: Sendable, Hashable {
    /// Which way the text went.
    public enum Direction: String, Sendable, Hashable {
        /// Sent by this client.
        case sent = ">>"
        /// Received from the peer.
        case received = "<<"
        /// A note from the client (connected, closed, discarded bytes, sync delimiter).
        case note = "--"
    }

    /// When it happened (wall clock).
    public var time: Date
    /// Which way.
    public var direction: Direction
    /// The JSON text (without the trailing newline) or the note.
    public var text: String

    /// Creates a transcript line.
    public init(time: Date = Date(), direction: Direction, text: String) {
        self.time = time
        self.direction = direction
        self.text = text
    }

    /// `2026-11-21T20:30:00.123Z >> {"execute":"qmp_capabilities"}`.
    public var formatted: String {
        let stamp = Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(time)
        return "\(stamp) \(direction.rawValue) \(text)"
    }
}

/// A transcript hook: called on the client's reader thread or the caller's task for every line.
/// It must be quick and must not block.
public typealias ControlTranscript = @Sendable (ControlTranscriptLine) -> Void

/// Appends transcript lines to a file (one ``ControlTranscriptLine/formatted`` line each).
///
/// `let file = try TranscriptFile(path: "out/vm0.qmp.log"); let qmp = try await QMPClient.connect(path: sock, transcript: file.sink)`
public final class TranscriptFile: Sendable {
    /// The file path.
    public let path: String
    private let handle: Mutex<FileHandle?>

    /// Creates (or appends to) the file at `path`; its directory must exist.
    public init(path: String) throws {
        self.path = path
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
            }
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        self.handle = Mutex(handle)
    }

    deinit {
        handle.withLock { try? $0?.close() }
    }

    /// Appends one line.
    public func write(_ line: ControlTranscriptLine) {
        let data = Data((line.formatted + "\n").utf8)
        handle.withLock { try? $0?.write(contentsOf: data) }
    }

    /// The hook to pass as `transcript:` to ``QMPClient/connect(path:timeout:transcript:logger:)`` or
    /// ``GuestAgentClient/connect(path:timeout:allowPowerCommands:transcript:logger:)``.
    public var sink: ControlTranscript {
        { [self] line in self.write(line) }
    }

    /// Closes the file; later lines are dropped.
    public func close() {
        handle.withLock { handle in
            try? handle?.close()
            handle = nil
        }
    }
}
