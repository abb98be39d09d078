import CLibSSH2
import DTSProcess
import DTSSession
import Foundation

/// One `exec` request: open a channel, start the command, drain stdout and stderr together until
/// both end, close, and read the exit status (or signal).
final class ExecOperation: ChannelOperation {
    private enum Phase { case setup, sendEOF, read, close }
    private let command: String
    private let timeout: Duration
    private var waiter: OnceContinuation<ExecResult>
    private var phase = Phase.setup
    private var closing = ChannelTeardown(.always)
    private var stdout: [UInt8] = []
    private var stderr: [UInt8] = []
    private var stdoutDone = false
    private var stderrDone = false
    private var result: ExecResult?
    /// How long a setup that outlived the exec's timeout may still take before the connection is given up.
    static let setupGrace: Duration = .seconds(60)

    init(command: String, timeout: Duration, continuation: CheckedContinuation<ExecResult, any Error>) {
        self.command = command
        self.timeout = timeout
        self.waiter = OnceContinuation(continuation)
        super.init(requests: [.exec(command)])
        deadline = ContinuousClock.now + timeout
    }

    private var partial: String {
        String(decoding: stdout, as: UTF8.self) + (stderr.isEmpty ? "" : "\n[stderr] " + String(decoding: stderr, as: UTF8.self))
    }

    private func fail(_ core: ConnectionCore, _ rc: Int32, _ what: String) -> StepResult {
        waiter.resume(throwing: core.failure(rc, operation: "\(what) of `\(command)`", partialOutput: partial))
        return closeInBackground(core)
    }

    override func step(_ core: ConnectionCore) -> StepResult {
        if isCleaningUp { return stepCleanup(core) }
        while true {
            switch phase {
            case .setup:
                switch stepSetup(core) {
                case .blocked: return .blocked
                case .failed(.open, let rc): return fail(core, rc, "channel open")
                case .failed(.request, let rc): return fail(core, rc, "exec request")
                case .ready:
                    transient.mark(core)
                    // Timed out during the setup (see `expire`): nobody waits for the output. The
                    // command has just started and may exit any moment: it stays counted until the
                    // server closes its channel (at most the cleanup's 2 s), or a channel opened
                    // meanwhile hits dropbear#321 and loses the connection.
                    if finishingAlone { return closeInBackground(core, waitForPeer: true) }
                    phase = .sendEOF
                }
            case .sendEOF:
                // The command gets no stdin; without EOF some servers (dropbear) never close the channel.
                let rc = libssh2_channel_send_eof(channel)
                if rc == LIBSSH2_ERROR_EAGAIN { return .blocked }
                if rc < 0 { return fail(core, rc, "sending EOF") }
                phase = .read
            case .read:
                guard let channel else { return .done }
                var moved = false
                if !stdoutDone {
                    switch core.readChannel(channel, stream: 0, into: &stdout) {
                    case .data: moved = true
                    case .eof: stdoutDone = true
                    case .again: break
                    case .failed(let rc): return fail(core, rc, "reading stdout")
                    }
                }
                if !stderrDone {
                    switch core.readChannel(channel, stream: SSH_EXTENDED_DATA_STDERR, into: &stderr) {
                    case .data: moved = true
                    case .eof: stderrDone = true
                    case .again: break
                    case .failed(let rc): return fail(core, rc, "reading stderr")
                    }
                }
                if stdoutDone && stderrDone {
                    phase = .close
                    continue
                }
                return moved ? .progressed : .blocked
            case .close:
                guard let (stage, rc) = closing.step(channel) else { return .blocked }
                switch stage {
                case .close:
                    if rc < 0 { return fail(core, rc, "channel close") }
                case .waitClosed:
                    transient.release(core)
                    if rc < 0 { return fail(core, rc, "waiting for channel close") }
                    result = ExecResult(status: exitStatus(core), stdout: stdout, stderr: stderr)
                case .free:
                    channel = nil
                    if let result {
                        core.record(.execResult, String(decoding: result.stdout, as: UTF8.self) + String(decoding: result.stderr, as: UTF8.self), status: result.status)
                        waiter.resume(returning: result)
                    }
                    return .done
                }
            }
        }
    }

    /// The command's exit status, or 128 + N if signal N ended it.
    private func exitStatus(_ core: ConnectionCore) -> Int32 {
        let status = libssh2_channel_get_exit_status(channel)
        var signalName: UnsafeMutablePointer<CChar>?
        var signalLength = 0
        _ = libssh2_channel_get_exit_signal(channel, &signalName, &signalLength, nil, nil, nil, nil)
        guard let signalName else { return status }
        let name = String(cString: signalName)
        libssh2_free(core.session, signalName)
        return 128 + (SignalName.number(of: name) ?? 0)
    }

    override func expire(_ core: ConnectionCore) -> Bool {
        // Past the cleanup's own deadline, give up on a polite close.
        if isCleaningUp { return abandonCleanup(core) }
        // Still in its setup after the grace period: give up (the connection breaks, see ConnectionCore).
        if finishingAlone { return true }
        waiter.resume(throwing: SSHError.timeout(endpoint: core.endpoint, operation: "exec `\(command)`", after: timeout, partialOutput: partial))
        if phase == .setup && exclusive {
            // The channel open or exec request is under way and libssh2 must see it through: the
            // waiter has its timeout now; the setup completes alone (or fails) within the grace period.
            finishingAlone = true
            deadline = ContinuousClock.now + Self.setupGrace
            return false
        }
        return closeInBackground(core) == .done
    }

    override func abort(_ core: ConnectionCore, reason: SSHError) {
        transient.release(core)
        waiter.resume(throwing: reason.reported(for: "exec `\(command)`", partialOutput: partial))
    }
}
