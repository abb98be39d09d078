import CLibSSH2

/// The end of a channel's life, one non-blocking libssh2 call at a time: CLOSE (libssh2 1.10 then
/// also reads until the peer's CLOSE arrives), `wait_closed`, free. Stepped by the operation that
/// owns the channel, which decides what each stage's result means for it.
struct ChannelTeardown {
    enum Stage { case close, waitClosed, free }

    /// Whether `wait_closed` follows the close.
    enum PeerWait {
        case always
        /// Only after a successful close; a failed one goes straight to free.
        case unlessCloseFailed
        /// Never: close, then free (an abandoned channel).
        case never
    }

    /// The stage the next call runs; `nil` once the channel is freed.
    private(set) var stage: Stage? = .close
    private let peerWait: PeerWait

    init(_ peerWait: PeerWait) {
        self.peerWait = peerWait
    }

    /// Calls libssh2 for the current stage. Returns `nil` on `EAGAIN` (call again once the socket
    /// is ready), otherwise the stage that ended and its result, having moved to the next one.
    /// After `.free` the channel pointer is gone.
    mutating func step(_ channel: OpaquePointer?) -> (stage: Stage, rc: Int32)? {
        guard let current = stage else { preconditionFailure("channel teardown stepped after free") }
        let rc: Int32
        switch current {
        case .close: rc = libssh2_channel_close(channel)
        case .waitClosed: rc = libssh2_channel_wait_closed(channel)
        case .free: rc = libssh2_channel_free(channel)
        }
        if rc == LIBSSH2_ERROR_EAGAIN { return nil }
        switch current {
        case .close:
            let wait = peerWait == .always || (peerWait == .unlessCloseFailed && rc >= 0)
            stage = wait ? .waitClosed : .free
        case .waitClosed:
            stage = .free
        case .free:
            stage = nil
        }
        return (current, rc)
    }
}
