import DTSSession
import Dispatch
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A connected unix stream socket carrying newline-delimited JSON objects (QMP, QGA).
///
/// A dedicated reader thread blocks in `read(2)` (never a thread of Swift's cooperative pool) and
/// delivers each complete object: to the first pending waiter whose matcher accepts it, else to
/// `onUnmatched`. A 0xFF byte (the guest agent's sync delimiter) discards any partial line.
/// Waiters have deadlines (scheduled on Dispatch); when the peer closes the socket every waiter
/// fails at once with ``ControlError/peerClosed(_:)``.
final class JSONLineChannel: Sendable {
    typealias Message = ControlMessage
    typealias Matcher = @Sendable (Message) -> Bool

    /// What a waiter waits for.
    private struct Awaited: Sendable {
        var matcher: Matcher
        var what: String
        var timeout: Duration
    }

    let endpoint: ControlEndpoint
    private let fd: Int32
    private let transcript: ControlTranscript?
    private let logger: Logger

    private struct State {
        var fdOpen = true
        var started = false
        var terminalError: ControlError?
        var waiters = WaiterQueue<Message, Awaited>()
        var nextCommandID: UInt64 = 0
        var unmatchedHandler: (@Sendable (Message) -> Void)?
        var closeHandler: (@Sendable (ControlError) -> Void)?
    }
    private let state = Mutex(State())

    /// Serializes writers; the reader takes it before closing the descriptor.
    private let writeLock = Mutex(())

    private init(fd: Int32, endpoint: ControlEndpoint, transcript: ControlTranscript?, logger: Logger) {
        self.fd = fd
        self.endpoint = endpoint
        self.transcript = transcript
        self.logger = logger
    }

    /// Connects to the unix socket at `endpoint.path`, retrying while it does not exist yet or
    /// refuses connections (a QEMU that is still starting), until `timeout` has passed.
    /// The reader is not started: set the handlers and call ``start()``.
    static func connect(
        endpoint: ControlEndpoint, timeout: Duration, transcript: ControlTranscript?, logger: Logger
    ) async throws -> JSONLineChannel {
        let deadline = ContinuousClock.now + timeout
        let pathBytes = Array(endpoint.path.utf8)
        var address = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity, !pathBytes.isEmpty else {
            throw ControlError.connectFailed(
                endpoint, reason: "socket path must be 1 to \(capacity - 1) bytes long, is \(pathBytes.count)")
        }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        while true {
            try Task.checkCancellation()
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw ControlError.ioFailed(endpoint, operation: "socket", errno: errno) }
            let rc = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            if rc == 0 {
                // Bound every write: a peer that stops reading cannot hang a caller forever.
                var sendTimeout = timeval(tv_sec: 10, tv_usec: 0)
                _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size))
                let channel = JSONLineChannel(fd: fd, endpoint: endpoint, transcript: transcript, logger: logger)
                transcript?(ControlTranscriptLine(direction: .note, text: "connected to \(endpoint.path)"))
                return channel
            }
            let code = errno
            Glibc.close(fd)
            let retryable = code == ENOENT || code == ECONNREFUSED || code == EAGAIN || code == EINTR
            guard retryable else {
                throw ControlError.connectFailed(endpoint, reason: String(cString: strerror(code)))
            }
            if ContinuousClock.now >= deadline {
                throw ControlError.connectFailed(
                    endpoint,
                    reason: "no listener within \(timeout.secondsText) (last error: \(String(cString: strerror(code))))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Sets the handler for objects no waiter matched (QMP events, stale replies) and for the close.
    func setHandlers(
        unmatched: (@Sendable (Message) -> Void)?, closed: (@Sendable (ControlError) -> Void)?
    ) {
        let alreadyClosed = state.withLock { state in
            state.unmatchedHandler = unmatched
            state.closeHandler = closed
            return state.started && !state.fdOpen ? state.terminalError : nil
        }
        // The reader already finished: report the close now rather than never.
        if let alreadyClosed { closed?(alreadyClosed) }
    }

    /// Starts the reader thread (once).
    func start() {
        let already = state.withLock { state in
            defer { state.started = true }
            return state.started
        }
        guard !already else { return }
        let thread = Thread { [self] in self.readLoop() }
        thread.name = "dts-control-reader"
        thread.start()
    }

    /// The pid of the process on the other end of the socket (`SO_PEERCRED`), if known.
    func peerPID() -> Int32? {
        state.withLock { state in
            guard state.fdOpen else { return nil }
            var credentials = [Int32](repeating: 0, count: 3)  // struct ucred { pid_t; uid_t; gid_t; }
            var length = socklen_t(MemoryLayout<Int32>.size * 3)
            let rc = credentials.withUnsafeMutableBytes {
                getsockopt(fd, SOL_SOCKET, SO_PEERCRED, $0.baseAddress, &length)
            }
            guard rc == 0, credentials[0] > 0 else { return nil }
            return credentials[0]
        }
    }

    /// Writes raw bytes (serialized with other writers). Records `transcriptText` as sent.
    func write(_ bytes: [UInt8], transcriptText: String?) throws {
        try writeLock.withLock { _ in
            let (open, failure) = state.withLock { ($0.fdOpen, $0.terminalError) }
            if let failure { throw failure }
            guard open else { throw ControlError.closed(endpoint) }
            if let transcriptText { transcript?(ControlTranscriptLine(direction: .sent, text: transcriptText)) }
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeBytes { raw in
                    send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                }
                if written < 0 {
                    let code = errno
                    if code == EINTR { continue }
                    if code == EPIPE || code == ECONNRESET { throw ControlError.peerClosed(endpoint) }
                    if code == EAGAIN || code == EWOULDBLOCK {
                        throw ControlError.ioFailed(endpoint, operation: "write (peer not reading for 10 s)", errno: code)
                    }
                    throw ControlError.ioFailed(endpoint, operation: "write", errno: code)
                }
                offset += written
            }
        }
    }

    /// Sends `message` as one JSON line (after `prefix` bytes) and waits for the first incoming
    /// object accepted by `matcher`, failing after `timeout` with ``ControlError/noReply(_:what:timeout:)``.
    /// With `message == nil` it only waits. The waiter is registered before anything is sent, and
    /// before the reader starts when `startReader` is set (so a greeting cannot be missed).
    func request(
        _ message: JSONValue?, prefix: [UInt8] = [], what: String, timeout: Duration, startReader: Bool = false,
        matcher: @escaping Matcher
    ) async throws -> Message {
        let token = state.withLock { $0.waiters.newToken() }
        return try await awaitWaiter(timeout: timeout) { continuation in
            let failure: ControlError? = state.withLock { state in
                if let failure = state.terminalError { return failure }
                state.waiters.append(token, Awaited(matcher: matcher, what: what, timeout: timeout), continuation)
                return nil
            }
            if let failure {
                continuation.resume(throwing: failure)
                return false
            }
            if startReader { start() }
            return true
        } then: {
            guard let message else { return }
            do {
                var bytes = prefix
                let text = message.jsonText()
                bytes.append(contentsOf: Array(text.utf8))
                bytes.append(0x0A)
                let noted = prefix.isEmpty ? text : "<0xFF> " + text
                try write(bytes, transcriptText: noted)
            } catch {
                fail(token: token, with: error)
            }
        } expire: { [weak self] timedOut in
            guard let self else { return }
            fail(token: token, with: timedOut ? ControlError.noReply(endpoint, what: what, timeout: timeout) : CancellationError())
        }
    }

    /// Connects to the `kind` socket at `path` and runs a client's opening exchange (QMP's greeting
    /// and capabilities, the guest agent's sync) within the same `timeout`: the part of
    /// ``QMPClient/connect(path:timeout:transcript:logger:)`` and
    /// ``GuestAgentClient/connect(path:timeout:allowPowerCommands:transcript:logger:)`` they share.
    ///
    /// `handshake` gets the channel (reader not started) and the connect deadline. When it throws,
    /// the channel is closed; a missing reply is reported with the caller's `timeout`, not with
    /// what was left of it.
    static func open<Client>(
        _ kind: ControlEndpoint.Kind, path: String, timeout: Duration, transcript: ControlTranscript?, logger: Logger,
        handshake: (JSONLineChannel, ConnectDeadline) async throws -> Client
    ) async throws -> Client {
        let endpoint = ControlEndpoint(kind: kind, path: path)
        let deadline = ConnectDeadline(end: ContinuousClock.now + timeout)
        let channel = try await connect(endpoint: endpoint, timeout: timeout, transcript: transcript, logger: logger)
        do {
            return try await handshake(channel, deadline)
        } catch ControlError.noReply(let endpoint, let what, _) {
            channel.close()
            throw ControlError.noReply(endpoint, what: what, timeout: timeout)
        } catch {
            channel.close()
            throw error
        }
    }

    /// Sends `{"execute": command, "arguments": ..., "id": "dts-N"}` (N unique on this channel) and
    /// waits up to `timeout` for the reply carrying that id.
    func execute(_ command: String, arguments: [String: JSONValue]?, timeout: Duration) async throws -> Message {
        let id = state.withLock { state in
            state.nextCommandID += 1
            return "dts-\(state.nextCommandID)"
        }
        var message: [String: JSONValue] = ["execute": .string(command), "id": .string(id)]
        if let arguments { message["arguments"] = .object(arguments) }
        return try await request(
            .object(message), what: "reply to \(command)", timeout: timeout, matcher: { $0["id"] == .string(id) })
    }

    /// Throws ``ControlError/commandFailed(_:command:errorClass:message:)`` when `reply` to
    /// `command` is an `error` reply.
    func checkError(_ reply: Message, command: String) throws {
        guard let error = reply["error"] else { return }
        throw ControlError.commandFailed(
            endpoint, command: command, errorClass: error["class"]?.stringValue ?? "GenericError",
            message: error["desc"]?.stringValue ?? error.jsonText())
    }

    /// The `return` member of `reply` to `command`, decoded as `Value`; an `error` reply throws as in
    /// ``checkError(_:command:)``, a value that does not decode is a ``ControlError/protocolViolation(_:_:)``.
    func returnValue<Value: Decodable>(_ reply: Message, command: String, as type: Value.Type) throws -> Value {
        try checkError(reply, command: command)
        guard reply["return"] != nil else {
            throw ControlError.protocolViolation(endpoint, "reply to \(command) has neither return nor error")
        }
        return try reply.decode(ReturnMember<Value>.self, on: endpoint, what: "\(command) reply").value
    }

    /// Waits until the socket is closed (by the peer or locally) and its reader finished, or until
    /// `timeout` passes; returns whether it closed. Polls every 20 ms without blocking a thread.
    func waitUntilClosed(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            let closed = state.withLock { $0.terminalError != nil && !$0.fdOpen }
            if closed { return true }
            if ContinuousClock.now >= deadline { return false }
            do { try await Task.sleep(for: .milliseconds(20)) } catch { return false }
        }
    }

    /// Whether the socket is still open (neither side closed it).
    var isOpen: Bool { state.withLock { $0.terminalError == nil } }

    /// Closes the socket locally: pending waiters fail with ``ControlError/closed(_:)``.
    func close() {
        let (wasStarted, open) = state.withLock { state in
            if state.terminalError == nil { state.terminalError = .closed(endpoint) }
            if state.fdOpen { _ = shutdown(fd, Int32(SHUT_RDWR)) }
            return (state.started, state.fdOpen)
        }
        failAll(with: .closed(endpoint))
        if !wasStarted && open {
            // No reader thread owns the descriptor: close it here.
            finishDescriptor()
        }
    }

    deinit {
        if state.withLock({ $0.fdOpen }) { Glibc.close(fd) }
    }

    // MARK: - Internals

    private func fail(token: UInt64, with error: any Error) {
        guard let waiter = state.withLock({ $0.waiters.remove(token: token) }) else { return }
        if let error = error as? ControlError, case .noReply = error {
            transcript?(ControlTranscriptLine(direction: .note, text: "no \(waiter.tag.what) within \(waiter.tag.timeout.secondsText)"))
        }
        waiter.continuation.resume(throwing: error)
    }

    private func failAll(with error: ControlError) {
        let failing = state.withLock { $0.waiters.removeAll() }
        for waiter in failing { waiter.continuation.resume(throwing: error) }
    }

    private func finishDescriptor() {
        writeLock.withLock { _ in
            let open = state.withLock { state in
                defer { state.fdOpen = false }
                return state.fdOpen
            }
            if open { Glibc.close(fd) }
        }
    }

    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        var line: [UInt8] = []
        var readErrno: Int32 = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                for byte in buffer[0..<count] {
                    switch byte {
                    case 0x0A:
                        deliver(line)
                        line.removeAll(keepingCapacity: true)
                    case 0xFF:
                        if !line.isEmpty {
                            transcript?(ControlTranscriptLine(
                                direction: .note, text: "discarded before 0xFF: \(String(decoding: line, as: UTF8.self))"))
                        }
                        transcript?(ControlTranscriptLine(direction: .note, text: "received 0xFF delimiter"))
                        line.removeAll(keepingCapacity: true)
                    default:
                        line.append(byte)
                    }
                }
            } else if count == 0 {
                break
            } else {
                let code = errno
                if code == EINTR { continue }
                readErrno = code
                break
            }
        }
        if !line.isEmpty {
            transcript?(ControlTranscriptLine(
                direction: .note, text: "discarded partial line at close: \(String(decoding: line, as: UTF8.self))"))
        }
        let (localClose, error, onClose) = state.withLock { state in
            let localClose = state.terminalError != nil
            if state.terminalError == nil { state.terminalError = .peerClosed(endpoint) }
            return (localClose, state.terminalError!, state.closeHandler)
        }
        if !localClose {
            let detail = readErrno == 0 ? "" : " (\(String(cString: strerror(readErrno))))"
            logger.debug("peer closed \(endpoint.socketDescription)\(detail)")
        }
        transcript?(ControlTranscriptLine(
            direction: .note, text: localClose ? "closed by client" : "peer closed the socket"))
        failAll(with: error)
        finishDescriptor()
        onClose?(error)
    }

    private func deliver(_ bytes: [UInt8]) {
        var text = String(decoding: bytes, as: UTF8.self)
        text = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty { return }
        transcript?(ControlTranscriptLine(direction: .received, text: text))
        let data = Data(text.utf8)
        guard let value = try? JSONValue.parse(data), case .object(let members) = value else {
            logger.debug("\(endpoint): ignoring a line that is not a JSON object: \(text)")
            return
        }
        let message = ControlMessage(members: members, text: data)
        let (waiter, handler): (WaiterQueue<Message, Awaited>.Waiter?, (@Sendable (Message) -> Void)?) = state.withLock { state in
            if let waiter = state.waiters.removeFirst(where: { $0.matcher(message) }) { return (waiter, nil) }
            return (nil, state.unmatchedHandler)
        }
        if let waiter {
            waiter.continuation.resume(returning: message)
        } else if let handler {
            handler(message)
        } else {
            logger.debug("\(endpoint): ignoring unmatched message \(text)")
        }
    }
}

/// The deadline of a client's connect: the socket and its opening exchange share one timeout.
struct ConnectDeadline: Sendable {
    /// When the connect's timeout ends.
    let end: ContinuousClock.Instant

    /// What is left of the timeout, but at least `minimum` (a step that starts late still gets a chance).
    func remaining(atLeast minimum: Duration) -> Duration {
        max(end - ContinuousClock.now, minimum)
    }
}
