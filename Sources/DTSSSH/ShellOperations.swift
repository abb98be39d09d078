import CLibSSH2
import DTSSession
import Foundation

/// The libssh2 side of one interactive shell. Touched only on the connection thread.
final class ShellChannel: @unchecked Sendable {
    let number: Int
    var channel: OpaquePointer?
    /// Output received and not yet consumed by an expect, as normalized text (``ShellText``).
    var output = ShellOutput()
    /// The peer closed the channel.
    var eof = false
    /// An operation is running on this shell.
    var busy = false
    var closed = false

    init(number: Int) { self.number = number }
}

/// Opens a session channel with a PTY and starts the login shell.
final class ShellOpenOperation: LoopOperation {
    private let options: SSHShellOptions
    private var waiter: OnceContinuation<ShellChannel>
    private var setup: ChannelSetup
    private var channel: OpaquePointer?

    init(options: SSHShellOptions, continuation: CheckedContinuation<ShellChannel, any Error>) {
        self.options = options
        self.waiter = OnceContinuation(continuation)
        self.setup = ChannelSetup(requests: [.pty(terminal: options.terminal, columns: options.columns, rows: options.rows), .shell])
        super.init()
        deadline = ContinuousClock.now + options.openTimeout
    }

    private func fail(_ core: ConnectionCore, _ rc: Int32, _ what: String) -> StepResult {
        waiter.resume(throwing: core.failure(rc, operation: what, partialOutput: ""))
        if let channel, core.brokenError == nil { _ = libssh2_channel_free(channel) }
        return .done
    }

    override func step(_ core: ConnectionCore) -> StepResult {
        switch setup.step(core, for: self, channel: &channel) {
        case .blocked: return .blocked
        case .failed(.open, let rc): return fail(core, rc, "opening a shell channel")
        case .failed(.request(.pty), let rc): return fail(core, rc, "PTY request")
        case .failed(.request, let rc): return fail(core, rc, "shell request")
        case .ready:
            let shell = ShellChannel(number: core.nextShellNumber())
            shell.channel = channel
            channel = nil
            waiter.resume(returning: shell)
            return .done
        }
    }

    override func expire(_ core: ConnectionCore) -> Bool {
        waiter.resume(throwing: SSHError.timeout(endpoint: core.endpoint, operation: "opening a shell", after: options.openTimeout, partialOutput: ""))
        return true
    }

    override func abort(_ core: ConnectionCore, reason: SSHError) { waiter.resume(throwing: reason) }
}

/// What a shell I/O operation waits for after sending.
enum ShellWait {
    /// A literal or a regular expression, matched against the normalized output.
    case match(ShellPattern, description: String)
    /// Everything that arrives until the deadline.
    case collect
    /// Nothing: done once sent.
    case none
}

/// Sends bytes to a shell, then waits as `ShellWait` says. Returns the normalized text before the
/// match (or everything collected); the match itself is consumed, what follows stays pending.
final class ShellIOOperation: LoopOperation {
    private let shell: ShellChannel
    private let toSend: [UInt8]
    private var sent = 0
    private let wait: ShellWait
    private let timeout: Duration
    private let label: String
    private var waiter: OnceContinuation<String>
    /// The bytes of one read, before they join the shell's output.
    private var chunk: [UInt8] = []

    init(shell: ShellChannel, send: [UInt8], clearPending: Bool, wait: ShellWait, timeout: Duration, label: String,
         continuation: CheckedContinuation<String, any Error>) {
        self.shell = shell
        self.toSend = send
        self.wait = wait
        self.timeout = timeout
        self.label = label
        self.waiter = OnceContinuation(continuation)
        super.init()
        if clearPending { _ = shell.output.takeAll() }
        shell.busy = true
        deadline = ContinuousClock.now + timeout
    }

    private func resume(_ outcome: Result<String, any Error>) {
        shell.busy = false
        waiter.resume(with: outcome)
    }

    private var partial: String { shell.output.text }

    override func step(_ core: ConnectionCore) -> StepResult {
        guard let channel = shell.channel, !shell.closed else {
            resume(.failure(SSHError.channelFailed(endpoint: core.endpoint, operation: label, reason: "the shell is closed")))
            return .done
        }
        var moved = false
        while sent < toSend.count {
            let n = toSend.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) {
                    libssh2_channel_write_ex(channel, 0, $0.baseAddress! + sent, toSend.count - sent)
                }
            }
            if n == Int(LIBSSH2_ERROR_EAGAIN) { return moved ? .progressed : .blocked }
            if n < 0 {
                resume(.failure(core.failure(Int32(n), operation: label, partialOutput: partial)))
                return .done
            }
            sent += n
            moved = true
        }
        if case .none = wait {
            resume(.success(""))
            return .done
        }
        // Check what is already pending first (e.g. after a timeout, or output following a match).
        if !moved, checkMatch() { return .done }
        var received = false
        while true {
            chunk.removeAll(keepingCapacity: true)
            var outcome = core.readChannel(channel, stream: 0, into: &chunk)
            if case .again = outcome {
                // A PTY merges stderr into stdout, but drain stream 1 anyway so it can never stall.
                outcome = core.readChannel(channel, stream: SSH_EXTENDED_DATA_STDERR, into: &chunk)
                if case .eof = outcome { outcome = .again }
            }
            switch outcome {
            case .data:
                received = true
                shell.output.append(chunk)
                if checkMatch() { return .done }
                continue
            case .again:
                return (moved || received) ? .progressed : .blocked
            case .eof:
                shell.eof = true
                shell.output.finish()
                endWait(orFail: SSHError.channelClosed(endpoint: core.endpoint, waitingFor: waitDescription, partialOutput: partial))
                return .done
            case .failed(let rc):
                resume(.failure(core.failure(rc, operation: label, partialOutput: partial)))
                return .done
            }
        }
    }

    private var waitDescription: String {
        switch wait {
        case .match(_, let d): return d
        case .collect, .none: return "output"
        }
    }

    /// Looks for the expectation in the pending output; on a match resumes and returns `true`.
    private func checkMatch() -> Bool {
        guard case .match(let pattern, _) = wait, let before = shell.output.match(pattern) else { return false }
        resume(.success(before))
        return true
    }

    /// Ends the wait without a match: `.collect` returns everything pending; any other wait fails
    /// with `error` and leaves the pending output for a later expect.
    private func endWait(orFail error: @autoclosure () -> SSHError) {
        if case .collect = wait {
            resume(.success(shell.output.takeAll()))
        } else {
            resume(.failure(error()))
        }
    }

    override func expire(_ core: ConnectionCore) -> Bool {
        endWait(orFail: SSHError.timeout(endpoint: core.endpoint, operation: "\(label) waiting for \(waitDescription)", after: timeout, partialOutput: partial))
        return true
    }

    override func abort(_ core: ConnectionCore, reason: SSHError) {
        resume(.failure(reason.reported(for: label, partialOutput: partial)))
    }
}

/// Closes a shell: `exit`, EOF, CLOSE, then waits (in the background, after resuming the caller
/// once CLOSE is sent) until the server reports the shell gone, and frees the channel. A shell
/// that does not exit in time is left to be freed with the session.
final class ShellCloseOperation: LoopOperation {
    private enum Phase { case exit, eof, teardown }
    private let shell: ShellChannel
    private var phase = Phase.exit
    private var teardown = ChannelTeardown(.always)
    private var waiter: OnceContinuation<Void>
    private var transient = TransientMark()
    private let exitLine: [CChar] = Array("exit\n".utf8CString.dropLast())
    private var exitSent = 0
    /// This operation has claimed the shell (`shell.closed`) and counted it as transient.
    private var started = false

    /// How long a shell that took `exit` may take to end.
    static let exitGrace: Duration = .seconds(20)

    init(shell: ShellChannel, continuation: CheckedContinuation<Void, any Error>) {
        self.shell = shell
        self.waiter = OnceContinuation(continuation)
        super.init()
        // A shell that cannot even take `exit` (a full window) is given up after 3 s.
        deadline = ContinuousClock.now + .seconds(3)
    }

    override func step(_ core: ConnectionCore) -> StepResult {
        // A shell closed before this operation began (an earlier close) has nothing left to do.
        guard let channel = shell.channel, started || !shell.closed else {
            waiter.resume()
            return .done
        }
        if !started {
            // The shell process exits during the close; until then it counts as a transient channel.
            started = true
            shell.closed = true
            transient.mark(core)
        }
        while true {
            switch phase {
            case .exit:
                if shell.eof {
                    phase = .teardown
                    continue
                }
                let n = exitLine.withUnsafeBufferPointer {
                    libssh2_channel_write_ex(channel, 0, $0.baseAddress! + exitSent, exitLine.count - exitSent)
                }
                if n == Int(LIBSSH2_ERROR_EAGAIN) { return .blocked }
                if n < 0 {
                    phase = .eof
                    continue
                }
                exitSent += n
                if exitSent == exitLine.count { phase = .eof }
            case .eof:
                let rc = libssh2_channel_send_eof(channel)
                if rc == LIBSSH2_ERROR_EAGAIN { return .blocked }
                phase = .teardown
                // `exit` went out: the shell ends as fast as its host lets it. A loaded TCG guest
                // can take seconds; until the server answers CLOSE (dropbear does once the session
                // child exited) new channels must wait under the dropbear rule, or the child's exit
                // aborts the connection (mkj/dropbear#321).
                deadline = ContinuousClock.now + Self.exitGrace
            case .teardown:
                guard let (stage, _) = teardown.step(channel) else {
                    // The caller goes on once CLOSE is on its way (only the peer's answer is missing).
                    if teardown.stage == .close, let session = core.session,
                       libssh2_session_block_directions(session) & LIBSSH2_SESSION_BLOCK_OUTBOUND == 0 {
                        waiter.resume()
                    }
                    return .blocked
                }
                switch stage {
                case .close:
                    waiter.resume()
                case .waitClosed:
                    break
                case .free:
                    shell.channel = nil
                    transient.release(core)
                    waiter.resume()
                    return .done
                }
            }
        }
    }

    override func expire(_ core: ConnectionCore) -> Bool {
        transient.release(core)
        waiter.resume()
        return true
    }

    override func abort(_ core: ConnectionCore, reason: SSHError) {
        transient.release(core)
        waiter.resume()
    }
}
