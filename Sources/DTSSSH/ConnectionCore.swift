import CLibSSH2
import DTSSession
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `libssh2_init` must run exactly once per process; a `static let` initializer is thread-safe and lazy.
enum LibSSH2Runtime {
    static let initResult: Int32 = libssh2_init(0)
}

/// What one step of an operation achieved.
enum StepResult {
    /// Finished; the waiter has been resumed.
    case done
    /// Moved forward; step again before sleeping.
    case progressed
    /// Waits for the socket.
    case blocked
}

/// An operation driven by the connection's own thread. Subclasses keep their state between steps
/// because libssh2 in non-blocking mode returns `EAGAIN` and must be called again with the same arguments.
class LoopOperation {
    /// When the operation gives up (`expire` is called).
    var deadline: ContinuousClock.Instant?
    /// While `true` no other operation is stepped: libssh2 keeps session-wide state for channel
    /// opens and SFTP start-up, so two of those must not interleave.
    var exclusive = false
    /// Set once the operation is over; the loop drops it.
    var finished = false
    /// Set by an operation whose deadline passed in the middle of an exclusive channel setup and
    /// that completes the setup without a waiter (libssh2 needs the same calls repeated until they
    /// return), within a new deadline: the loop keeps it as the owner instead of giving up on the
    /// whole connection.
    var finishingAlone = false

    /// Calls libssh2 once or a few times; never blocks.
    func step(_ core: ConnectionCore) -> StepResult { .done }
    /// The deadline passed. Resume the waiter; return `true` if the operation is over, or set a new
    /// deadline and return `false` to keep stepping (e.g. to close a channel).
    func expire(_ core: ConnectionCore) -> Bool { true }
    /// The connection is unusable (`reason`); resume the waiter with an error.
    func abort(_ core: ConnectionCore, reason: SSHError) {}
    /// A local descriptor the loop should also wait on (a forwarded socket), or `nil`.
    func pollRequest() -> pollfd? { nil }
}

/// Links a waiting task to its operation for cancellation. Touched only on the connection thread.
final class OperationToken: @unchecked Sendable {
    var operation: LoopOperation?
    var cancelRequested = false
}

/// Result of a non-blocking libssh2 read into a byte array.
enum ReadOutcome {
    case data(Int)
    case eof
    case again
    case failed(Int32)
}

/// The state of one SSH connection. Everything except `submit` runs on the connection's own
/// thread, which owns the libssh2 session, its channels and the socket (libssh2 forbids concurrent
/// use). Async callers hand work over with `submit` and wait on continuations, so Swift's cooperative
/// threads never block in `poll(2)`.
final class ConnectionCore: @unchecked Sendable {
    let options: SSHConnectOptions
    let endpoint: String
    let logger: Logger

    /// What callers on other threads hand to the connection thread.
    private struct Inbox {
        var jobs: [@Sendable (ConnectionCore) -> Void] = []
        var loopExited = false
    }
    private let inbox = Mutex(Inbox())
    private let wakeReadFD: Int32
    private let wakeWriteFD: Int32

    // Connection thread only.
    var session: OpaquePointer?
    var sock: Int32 = -1
    private var operations: [LoopOperation] = []
    private var owner: LoopOperation?
    private(set) var brokenError: SSHError?
    private var closing = false
    private var stopRequested = false
    private var nextKeepalive: ContinuousClock.Instant?
    let readBuffer: UnsafeMutablePointer<CChar>
    let readBufferSize = 256 * 1024
    var kbdPassword: [CChar] = []
    /// Server quirk mode (see `SSHConnectOptions.serializeChannelSetup`).
    var serializeSetups = false
    /// Channels whose server process may exit at any moment (running execs, SFTP sessions, shells
    /// being closed); with `serializeSetups`, channel opens wait until there are none.
    var transientChannels = 0
    /// With `serializeSetups`: a transient channel ended since the last channel open, so the
    /// next open first makes the server finish handling that child's exit (`settleChildExits`).
    var childExitMayBePending = false
    /// The server's identification string.
    var serverBanner = ""
    private var shellCounter = 0

    init(options: SSHConnectOptions) {
        _ = LibSSH2Runtime.initResult
        self.options = options
        self.endpoint = options.endpoint
        self.logger = options.logger
        var fds: [Int32] = [-1, -1]
        _ = pipe(&fds)
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        self.wakeReadFD = fds[0]
        self.wakeWriteFD = fds[1]
        self.readBuffer = .allocate(capacity: 256 * 1024)
    }

    deinit {
        readBuffer.deallocate()
    }

    /// Starts the connection's thread.
    func start() {
        let thread = Thread { [self] in self.runLoop() }
        thread.name = "dts-ssh \(endpoint)"
        thread.start()
    }

    /// Queues `job` for the connection thread. Returns `false` if the thread has ended.
    @discardableResult
    func submit(_ job: @escaping @Sendable (ConnectionCore) -> Void) -> Bool {
        inbox.withLock { inbox in
            if inbox.loopExited { return false }
            inbox.jobs.append(job)
            var one: UInt8 = 1
            _ = write(wakeWriteFD, &one, 1)
            return true
        }
    }

    /// Runs an operation built on the connection thread and waits for its result. Cancelling the
    /// calling task ends the operation at once, as if its deadline had passed.
    func perform<T: Sendable>(
        _ what: String,
        _ build: @escaping @Sendable (ConnectionCore, CheckedContinuation<T, any Error>) -> LoopOperation?
    ) async throws -> T {
        let token = OperationToken()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, any Error>) in
                let accepted = submit { core in
                    if let error = core.unusableError() {
                        cont.resume(throwing: error)
                        return
                    }
                    if let op = build(core, cont) {
                        core.operations.append(op)
                        token.operation = op
                        if token.cancelRequested { op.deadline = .now }
                    }
                }
                if !accepted { cont.resume(throwing: SSHError.closed(endpoint: endpoint)) }
            }
        } onCancel: {
            submit { _ in
                token.cancelRequested = true
                if let op = token.operation, !op.finished { op.deadline = .now }
            }
        }
    }

    /// Runs `body` on the connection thread (it must not block) and returns its result.
    func onLoop<T: Sendable>(_ body: @escaping @Sendable (ConnectionCore) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, any Error>) in
            let accepted = submit { core in cont.resume(with: Result { try body(core) }) }
            if !accepted { cont.resume(throwing: SSHError.closed(endpoint: endpoint)) }
        }
    }

    func unusableError() -> SSHError? {
        if closing { return .closed(endpoint: endpoint) }
        return brokenError
    }

    // MARK: The loop

    private func runLoop() {
        while true {
            let batch = inbox.withLock { inbox in
                defer { inbox.jobs.removeAll() }
                return inbox.jobs
            }
            for job in batch { job(self) }
            if stopRequested { break }

            var progressed = false
            if let current = owner {
                progressed = stepOperation(current)
            } else {
                for op in operations where !op.finished {
                    if stepOperation(op) { progressed = true }
                    if owner != nil { break }
                }
            }
            operations.removeAll { $0.finished }
            expireOperations()
            operations.removeAll { $0.finished }
            if !progressed { waitForEvents() }
        }
        teardown()
    }

    private func stepOperation(_ op: LoopOperation) -> Bool {
        let result = op.step(self)
        switch result {
        case .done:
            op.finished = true
            if owner === op { owner = nil }
            return true
        case .progressed:
            owner = op.exclusive ? op : nil
            return true
        case .blocked:
            if op.finished {
                // Aborted from inside its own step (the connection broke).
                owner = nil
                return true
            }
            let outbound = session.map { libssh2_session_block_directions($0) & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 } ?? false
            // A partly sent packet must be completed by the same call before any other send.
            owner = (op.exclusive || outbound) ? op : nil
            return false
        }
    }

    private func expireOperations() {
        let now = ContinuousClock.now
        for op in operations where !op.finished {
            guard let deadline = op.deadline, deadline <= now else { continue }
            let wasOwner = owner === op
            if op.expire(self) {
                op.finished = true
            }
            guard wasOwner else { continue }
            // A slow server (a loaded DUT answering a channel open late) is not a broken connection:
            // the operation completes its setup alone, then closes the channel.
            if op.finishingAlone && !op.finished { continue }
            // The session is in the middle of a send or a channel open that cannot be abandoned.
            owner = nil
            markBroken("an operation timed out while the SSH session was busy sending")
        }
    }

    private func waitForEvents() {
        let now = ContinuousClock.now
        var wake: ContinuousClock.Instant = now + .seconds(1)
        for op in operations where !op.finished {
            if let d = op.deadline, d < wake { wake = d }
        }
        var socketEvents: Int16 = 0
        if !operations.isEmpty, let session, sock >= 0 {
            let dirs = libssh2_session_block_directions(session)
            if dirs & LIBSSH2_SESSION_BLOCK_INBOUND != 0 { socketEvents |= Int16(POLLIN) }
            if dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { socketEvents |= Int16(POLLOUT) }
            if socketEvents == 0 { socketEvents = Int16(POLLIN) }
        } else if operations.isEmpty, brokenError == nil, session != nil, let interval = options.keepaliveInterval {
            let due = nextKeepalive ?? (now + interval)
            if nextKeepalive == nil { nextKeepalive = due }
            if due <= now {
                sendKeepalive()
                return
            }
            if due < wake { wake = due }
        }
        var fds = [
            pollfd(fd: wakeReadFD, events: Int16(POLLIN), revents: 0),
            pollfd(fd: socketEvents != 0 ? sock : -1, events: socketEvents, revents: 0),
        ]
        for op in operations where !op.finished {
            if let request = op.pollRequest() { fds.append(request) }
        }
        let timeoutMs = max(0, milliseconds(until: wake, from: now))
        _ = poll(&fds, nfds_t(fds.count), Int32(min(timeoutMs, 1000)))
        if fds[0].revents != 0 {
            var drain = [UInt8](repeating: 0, count: 64)
            while Glibc.read(wakeReadFD, &drain, 64) > 0 {}
        }
    }

    private func sendKeepalive() {
        guard let session else { return }
        var seconds: Int32 = 0
        let rc = libssh2_keepalive_send(session, &seconds)
        if rc < 0 && rc != LIBSSH2_ERROR_EAGAIN {
            markBroken("keepalive failed: \(lastErrorMessage())")
        }
        let interval = options.keepaliveInterval ?? .seconds(30)
        nextKeepalive = ContinuousClock.now + (seconds > 0 ? .seconds(Int(seconds)) : interval)
    }

    /// Marks the connection unusable and fails every pending operation.
    func markBroken(_ reason: String) {
        if brokenError != nil { return }
        let error = SSHError.connectionLost(endpoint: endpoint, operation: "session", reason: reason, partialOutput: "")
        brokenError = error
        logger.error("SSH connection \(endpoint) broken: \(reason)")
        let pending = operations
        owner = nil
        for op in pending where !op.finished {
            op.abort(self, reason: error)
            op.finished = true
        }
    }

    /// `true` for libssh2 errors after which the session cannot continue.
    func isFatal(_ rc: Int32) -> Bool {
        switch rc {
        case LIBSSH2_ERROR_SOCKET_SEND, LIBSSH2_ERROR_SOCKET_RECV, LIBSSH2_ERROR_SOCKET_DISCONNECT,
             LIBSSH2_ERROR_SOCKET_TIMEOUT, LIBSSH2_ERROR_TIMEOUT, LIBSSH2_ERROR_BAD_USE, LIBSSH2_ERROR_DECRYPT,
             LIBSSH2_ERROR_KEX_FAILURE, LIBSSH2_ERROR_PROTO, LIBSSH2_ERROR_SOCKET_NONE:
            return true
        default:
            return false
        }
    }

    /// libssh2's last error message for this session.
    func lastErrorMessage() -> String {
        guard let session else { return "no session" }
        var message: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        let code = libssh2_session_last_error(session, &message, &length, 0)
        let text = message.map { String(cString: $0) } ?? "unknown error"
        return "\(text) (libssh2 error \(code))"
    }

    /// Reports a failed libssh2 call inside an operation: a fatal one breaks the connection.
    func failure(_ rc: Int32, operation: String, partialOutput: String) -> SSHError {
        let reason = lastErrorMessage()
        if isFatal(rc) {
            let error = SSHError.connectionLost(endpoint: endpoint, operation: operation, reason: reason, partialOutput: partialOutput)
            markBroken(reason)
            return error
        }
        return .channelFailed(endpoint: endpoint, operation: operation, reason: reason)
    }

    /// Begins the shutdown: fails pending operations and stops the thread after disconnecting.
    func requestClose() {
        if closing { return }
        closing = true
        let pending = operations
        owner = nil
        for op in pending where !op.finished {
            op.abort(self, reason: .closed(endpoint: endpoint))
            op.finished = true
        }
        operations.removeAll()
        stopRequested = true
    }

    private func teardown() {
        if let session {
            // Blocking mode with a short timeout is fine here: nothing else uses this thread any more.
            libssh2_session_set_timeout(session, 1000)
            libssh2_session_set_blocking(session, 1)
            if brokenError == nil {
                _ = libssh2_session_disconnect_ex(session, SSH_DISCONNECT_BY_APPLICATION, "dts: closing", "")
            }
            // With the socket shut down, freeing channels whose peer never closed them cannot wait.
            if sock >= 0 { shutdown(sock, Int32(SHUT_RDWR)) }
            _ = libssh2_session_free(session)
            self.session = nil
        }
        if sock >= 0 {
            close(sock)
            sock = -1
        }
        let leftovers = inbox.withLock { inbox in
            inbox.loopExited = true
            defer { inbox.jobs.removeAll() }
            close(wakeReadFD)
            close(wakeWriteFD)
            return inbox.jobs
        }
        // Jobs that raced with the close still resume their waiters.
        closing = true
        for job in leftovers { job(self) }
    }

    // MARK: Helpers for operations

    /// `true` if a channel open must wait (quirk mode and a server process may exit meanwhile).
    var channelSetupMustWait: Bool { serializeSetups && transientChannels > 0 }

    /// Adds an operation started by another one (a forward's listener accepting a connection).
    func adopt(_ op: LoopOperation) { operations.append(op) }

    /// Makes the server handle a child exit it may not have handled yet, before a channel open
    /// (non-blocking: `false` means call again). Dropbear learns of a child's exit through a
    /// signal pipe that it reads at the top of its next loop; a session channel opened in that
    /// same loop, still without a process, is closed by mistake and the connection dies on the
    /// exec request (mkj/dropbear#321). Its CLOSE of the exited child's channel can go out one
    /// loop before it reads the pipe, so waiting for that CLOSE is not enough. A round trip of
    /// its own that the server handles in a loop of its own settles it: the open of a channel
    /// type no server knows, which dropbear refuses at once (no channel, no process). One
    /// round trip per open after a command, on those dropbear versions only.
    func settleChildExits() -> Bool {
        guard childExitMayBePending, let session else { return true }
        let type = "settle@dts.invalid"
        let channel = libssh2_channel_open_ex(session, type, UInt32(type.utf8.count), 32768, 32768, nil, 0)
        if channel == nil, libssh2_session_last_errno(session) == LIBSSH2_ERROR_EAGAIN { return false }
        // Refused, as expected; a server that accepted it gets the channel freed with no more ado.
        if let channel { _ = libssh2_channel_free(channel) }
        childExitMayBePending = false
        return true
    }

    /// Opens a `session` channel (non-blocking: `nil` plus `EAGAIN` means call again).
    func openSessionChannel() -> (OpaquePointer?, Int32) {
        guard let session else { return (nil, LIBSSH2_ERROR_SOCKET_NONE) }
        let channel = libssh2_channel_open_ex(session, "session", 7, 4 * 1024 * 1024, 32768, nil, 0)
        if channel != nil { return (channel, 0) }
        return (nil, libssh2_session_last_errno(session))
    }

    /// Reads one chunk of `stream` (0 stdout, 1 stderr) and appends it to `bytes`.
    func readChannel(_ channel: OpaquePointer, stream: Int32, into bytes: inout [UInt8]) -> ReadOutcome {
        let n = libssh2_channel_read_ex(channel, stream, readBuffer, readBufferSize)
        if n > 0 {
            readBuffer.withMemoryRebound(to: UInt8.self, capacity: n) {
                bytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: n))
            }
            return .data(n)
        }
        if n == 0 { return libssh2_channel_eof(channel) != 0 ? .eof : .again }
        if Int32(n) == LIBSSH2_ERROR_EAGAIN { return .again }
        return .failed(Int32(n))
    }

    /// A fresh number for naming shells in logs.
    func nextShellNumber() -> Int {
        shellCounter += 1
        return shellCounter
    }

    /// Emits a transcript event if a hook is set.
    func record(_ kind: SSHTranscriptEvent.Kind, _ text: String, status: Int32? = nil) {
        options.transcript?(SSHTranscriptEvent(endpoint: endpoint, kind: kind, text: text, status: status))
    }
}

/// Milliseconds from `now` until `instant`, rounded up.
func milliseconds(until instant: ContinuousClock.Instant, from now: ContinuousClock.Instant) -> Int {
    let (s, atto) = (instant - now).components
    let ms = s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000
    return Int(clamping: ms)
}
