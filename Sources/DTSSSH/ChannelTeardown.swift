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
        case .waitClosed:
            guard Self.drainUntilPeerEOF(channel) else { return nil }
            rc = libssh2_channel_wait_closed(channel)
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

    /// Reads and drops what the peer still sends on the channel until its EOF: `false` while it
    /// has not come (call again once the socket is ready). libssh2 1.10's `wait_closed` refuses
    /// to wait before the peer's EOF (`LIBSSH2_ERROR_INVAL`), and its `close` returns after
    /// reading any one packet, so without this a channel closed while its command still runs
    /// would count as closed by the server long before it is (and, against dropbear, a channel
    /// opened meanwhile would race the command's exit: mkj/dropbear#321).
    private static func drainUntilPeerEOF(_ channel: OpaquePointer?) -> Bool {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 16384) { buffer in
            while libssh2_channel_eof(channel) == 0 {
                var moved = false
                for stream: Int32 in [0, SSH_EXTENDED_DATA_STDERR] {
                    let n = libssh2_channel_read_ex(channel, stream, buffer.baseAddress, buffer.count)
                    if n > 0 { moved = true; continue }
                    // An error other than EAGAIN: `wait_closed` reports how things stand.
                    if n < 0 && Int32(n) != LIBSSH2_ERROR_EAGAIN { return true }
                }
                if !moved { return libssh2_channel_eof(channel) != 0 }
            }
            return true
        }
    }
}
