import DTSSession
import Foundation

/// Which control channel a client talks to, and where: used in every error message.
public struct ControlEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// The protocol spoken on the socket.
    public enum Kind: String, Sendable, Hashable {
        /// The QEMU Machine Protocol (QEMU's `-qmp` socket).
        case qmp
        /// The QEMU guest agent (reached through a chardev socket, or a host `qemu-ga -m unix-listen`).
        case guestAgent
    }

    /// The protocol.
    public var kind: Kind
    /// The unix socket path.
    public var path: String

    /// Creates an endpoint description.
    public init(kind: Kind, path: String) {
        self.kind = kind
        self.path = path
    }

    /// `QMP socket PATH` or `guest agent at PATH`.
    public var description: String {
        switch kind {
        case .qmp: return "QMP socket \(path)"
        case .guestAgent: return "guest agent at \(path)"
        }
    }

    /// `QMP socket PATH` or `guest agent socket PATH`.
    var socketDescription: String {
        switch kind {
        case .qmp: return "QMP socket \(path)"
        case .guestAgent: return "guest agent socket \(path)"
        }
    }

    /// `QMP` or `guest agent`.
    var protocolName: String {
        switch kind {
        case .qmp: return "QMP"
        case .guestAgent: return "guest agent"
        }
    }
}

/// Errors of the QMP and guest agent clients. Each says what failed and on which socket.
public enum ControlError: Error, Sendable, Equatable, CustomStringConvertible, LocalizedError {
    /// The socket could not be connected (after retrying until the deadline when it did not exist yet).
    case connectFailed(ControlEndpoint, reason: String)
    /// Nothing came within the deadline; `what` is e.g. `greeting`, `reply to query-status`, `STOP event`.
    case noReply(ControlEndpoint, what: String, timeout: Duration)
    /// The peer answered a command with a QMP `error` object.
    case commandFailed(ControlEndpoint, command: String, errorClass: String, message: String)
    /// The peer closed the socket; every pending call fails with this at once.
    case peerClosed(ControlEndpoint)
    /// The client was closed locally (``QMPClient/close()`` / ``GuestAgentClient/close()``).
    case closed(ControlEndpoint)
    /// The peer sent something that does not follow the protocol (bad greeting, missing field...).
    case protocolViolation(ControlEndpoint, String)
    /// The client refused to send a command (for example a power command to a host's own agent).
    case refused(ControlEndpoint, command: String, reason: String)
    /// A socket system call failed.
    case ioFailed(ControlEndpoint, operation: String, errno: Int32)
    /// A process started with `guest-exec` did not exit within the deadline.
    case guestProcessTimeout(ControlEndpoint, path: String, pid: Int, timeout: Duration)

    /// The endpoint the error happened on.
    public var endpoint: ControlEndpoint {
        switch self {
        case .connectFailed(let e, _), .noReply(let e, _, _), .commandFailed(let e, _, _, _),
            .peerClosed(let e), .closed(let e), .protocolViolation(let e, _), .refused(let e, _, _),
            .ioFailed(let e, _, _), .guestProcessTimeout(let e, _, _, _):
            return e
        }
    }

    /// A one-line message saying what failed and where.
    public var description: String {
        switch self {
        case .connectFailed(let e, let reason):
            return "cannot connect to \(e.socketDescription): \(reason)"
        case .noReply(let e, let what, let timeout):
            return "\(e): no \(what) within \(timeout.secondsText)"
        case .commandFailed(let e, let command, let errorClass, let message):
            return "\(e.protocolName) command \(command) failed: \(errorClass): \(message) (\(e))"
        case .peerClosed(let e):
            return "peer closed \(e.socketDescription)"
        case .closed(let e):
            return "\(e.socketDescription) was closed by this client"
        case .protocolViolation(let e, let message):
            return "\(e): protocol error: \(message)"
        case .refused(let e, let command, let reason):
            return "\(e): refused to send \(command): \(reason)"
        case .ioFailed(let e, let operation, let code):
            return "\(e.socketDescription): \(operation) failed: \(String(cString: strerror(code)))"
        case .guestProcessTimeout(let e, let path, let pid, let timeout):
            return "\(e): \(path) (guest pid \(pid)) did not exit within \(timeout.secondsText)"
        }
    }

    /// Same as ``description``.
    public var errorDescription: String? { description }
}
