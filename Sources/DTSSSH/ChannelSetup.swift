import CLibSSH2
import Foundation

// Opening channels under two rules (see docs/sessions-ssh.md, "Dropbear channel race"):
// libssh2 keeps session-wide state for channel opens and SFTP start-up, so those never interleave;
// and dropbear 2022.82 to 2024.85 close a channel that has no process yet when another session
// child exits, then abort the connection when the late request is answered (mkj/dropbear#321).
// So a setup runs exclusive from the open to its last request, and in quirk mode
// (`ConnectionCore.serializeSetups`) it starts only while no transient channel is counted.

extension LoopOperation {
    /// Starts a channel open or SFTP start-up: `false` while it must wait (quirk mode with a
    /// transient channel counted, or the server settling a child's exit first, see
    /// `ConnectionCore.settleChildExits`); once `true`, the operation is `exclusive`, so the loop
    /// steps it alone until it clears the flag.
    func beginExclusiveSetup(_ core: ConnectionCore) -> Bool {
        if !exclusive && core.channelSetupMustWait { return false }
        exclusive = true
        return core.settleChildExits()
    }
}

/// A request sent on a freshly opened session channel.
enum ChannelRequest {
    /// A pseudo-terminal, ECHO off.
    case pty(terminal: String, columns: Int32, rows: Int32)
    /// Runs a command through the remote user's shell.
    case exec(String)
    /// Starts the user's login shell.
    case shell

    /// Sends the request (non-blocking: `LIBSSH2_ERROR_EAGAIN` means call again the same way).
    func send(on channel: OpaquePointer?) -> Int32 {
        switch self {
        case .pty(let terminal, let columns, let rows):
            // Terminal modes: ECHO (53) off, then TTY_OP_END.
            let modes: [CChar] = [53, 0, 0, 0, 0, 0]
            return terminal.withCString { term in
                modes.withUnsafeBufferPointer {
                    libssh2_channel_request_pty_ex(channel, term, UInt32(strlen(term)), $0.baseAddress, UInt32($0.count),
                                                   columns, rows, 0, 0)
                }
            }
        case .exec(let command):
            return command.withCString { libssh2_channel_process_startup(channel, "exec", 4, $0, UInt32(strlen($0))) }
        case .shell:
            return libssh2_channel_process_startup(channel, "shell", 5, nil, 0)
        }
    }
}

/// Opens a `session` channel and sends its requests back to back, the operation exclusive from
/// the open until the last request is answered (or one fails), so no other operation's step can
/// come in between. Stepped by the operation that owns it; the channel it opens is the
/// operation's to close and free, whatever the outcome.
struct ChannelSetup {
    /// Where a setup failed.
    enum Stage {
        case open
        case request(ChannelRequest)
    }

    /// What one step of the setup achieved.
    enum Outcome {
        /// Waits for the socket, or (quirk mode) for transient channels to end.
        case blocked
        /// The channel is open and every request was accepted.
        case ready
        /// A libssh2 call failed with `rc`; the operation is no longer exclusive.
        case failed(Stage, Int32)
    }

    private let requests: [ChannelRequest]
    private var sent = 0

    init(requests: [ChannelRequest]) {
        self.requests = requests
    }

    /// Advances the setup of `op`'s channel as far as libssh2 allows. `channel` is `nil` until
    /// the open succeeds, then the open channel.
    mutating func step(_ core: ConnectionCore, for op: LoopOperation, channel: inout OpaquePointer?) -> Outcome {
        if channel == nil {
            guard op.beginExclusiveSetup(core) else { return .blocked }
            let (opened, rc) = core.openSessionChannel()
            if rc == LIBSSH2_ERROR_EAGAIN { return .blocked }
            guard let opened else {
                op.exclusive = false
                return .failed(.open, rc)
            }
            channel = opened
        }
        while sent < requests.count {
            let rc = requests[sent].send(on: channel)
            if rc == LIBSSH2_ERROR_EAGAIN { return .blocked }
            if rc < 0 {
                op.exclusive = false
                return .failed(.request(requests[sent]), rc)
            }
            sent += 1
        }
        op.exclusive = false
        return .ready
    }
}

/// One operation's share of `ConnectionCore.transientChannels`: counted while a server process of
/// its channel may exit at any moment (a running exec, an SFTP server, a shell being closed).
/// `mark` and `release` are idempotent, so every end of the operation may release.
struct TransientMark {
    private(set) var counted = false

    mutating func mark(_ core: ConnectionCore) {
        if !counted {
            counted = true
            core.transientChannels += 1
        }
    }

    /// The server process is gone or abandoned: channel opens may proceed.
    mutating func release(_ core: ConnectionCore) {
        if counted {
            counted = false
            core.transientChannels -= 1
            if core.serializeSetups { core.childExitMayBePending = true }
        }
    }
}
