import CLibSSH2

/// A `LoopOperation` that opens a session channel of its own (an exec, a forward relay) and must
/// see it freed whatever happens. It holds the channel, its `ChannelSetup` and its share of the
/// transient channels, and the background cleanup: once the operation has answered (or failed),
/// a channel still open is closed and freed without anybody waiting, within 2 s, after which it
/// is left to be freed with the session. Subclasses step `stepSetup` first, their own phases
/// next, and `stepCleanup` while `isCleaningUp`.
class ChannelOperation: LoopOperation {
    /// Set once the open succeeds; `nil` again once freed.
    var channel: OpaquePointer?
    /// Counted while the channel's server process may exit (see `TransientMark`).
    var transient = TransientMark()
    private var setup: ChannelSetup
    private var cleanup: ChannelTeardown?

    init(requests: [ChannelRequest]) {
        self.setup = ChannelSetup(requests: requests)
        super.init()
    }

    /// Opens the channel and sends the requests given at `init` (see `ChannelSetup`).
    func stepSetup(_ core: ConnectionCore) -> ChannelSetup.Outcome {
        setup.step(core, for: self, channel: &channel)
    }

    /// `true` once the operation only closes its channel in the background.
    var isCleaningUp: Bool { cleanup != nil }

    /// Ends the operation after its waiter has been answered: a channel still open on a usable
    /// connection is closed and freed in the background (`.progressed`, 2 s deadline), counted as
    /// transient first if `countAsTransient`; otherwise the operation is over (`.done`).
    func closeInBackground(_ core: ConnectionCore, waitForPeer: Bool = false, countAsTransient: Bool = false) -> StepResult {
        if channel != nil, core.brokenError == nil {
            if countAsTransient { transient.mark(core) }
            cleanup = ChannelTeardown(waitForPeer ? .unlessCloseFailed : .never)
            deadline = ContinuousClock.now + .seconds(2)
            return .progressed
        }
        transient.release(core)
        return .done
    }

    /// Steps the background close; `.done` once the channel is freed.
    func stepCleanup(_ core: ConnectionCore) -> StepResult {
        while let (stage, _) = cleanup?.step(channel) {
            if stage == .free {
                channel = nil
                transient.release(core)
                return .done
            }
        }
        return .blocked
    }

    /// The background close's deadline passed: give up on a polite close (the channel is freed
    /// with the session). Returns `true`, the operation is over.
    func abandonCleanup(_ core: ConnectionCore) -> Bool {
        transient.release(core)
        return true
    }
}
