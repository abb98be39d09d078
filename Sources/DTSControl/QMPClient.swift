import DTSSession
import Foundation
import Logging
import Synchronization

/// A client of the QEMU Machine Protocol over a unix socket (`-qmp unix:PATH,server=on,wait=off`).
///
/// ``connect(path:timeout:transcript:logger:)`` retries until the socket exists (a QEMU just
/// started), reads the greeting and negotiates `qmp_capabilities`. Commands carry unique ids and
/// replies are matched by id, so calls may run concurrently and interleave with events. Every
/// call has a deadline. When QEMU closes the socket, every pending call fails at once with
/// ``ControlError/peerClosed(_:)``. Call ``close()`` when done (or ``quit(timeout:)``).
///
/// Events are kept in a small buffer (the last 256) so ``waitForEvent(named:after:recentWithin:timeout:)``
/// also sees an event that arrived just before the call (a `RESUME` racing the `cont` reply), and
/// every ``events()`` stream receives the events that arrive after it was made.
public final class QMPClient: Sendable {
    /// The socket this client talks to.
    public let endpoint: ControlEndpoint
    /// The greeting QEMU sent (its version).
    public let greeting: QMPGreeting

    private let channel: JSONLineChannel
    private let logger: Logger

    /// What an event waiter waits for: an event named `name` after sequence number `after`.
    private struct WantedEvent: Sendable {
        var name: String
        var after: UInt64
    }

    private struct BufferedEvent {
        var event: QMPEvent
        var consumed: Bool
    }

    private struct State {
        var lastSequence: UInt64 = 0
        var buffer: [BufferedEvent] = []
        var eventWaiters = WaiterQueue<QMPEvent, WantedEvent>()
        /// Keys of event streams.
        var lastStreamKey: UInt64 = 0
        var streams: [UInt64: AsyncStream<QMPEvent>.Continuation] = [:]
        var closedError: ControlError?
    }
    private let state = Mutex(State())
    private static let bufferLimit = 256

    private init(channel: JSONLineChannel, greeting: QMPGreeting, logger: Logger) {
        self.channel = channel
        self.endpoint = channel.endpoint
        self.greeting = greeting
        self.logger = logger
    }

    deinit {
        channel.close()
    }

    /// Connects to the QMP socket at `path`, waiting up to `timeout` for it to appear and for the
    /// greeting, then sends `qmp_capabilities`.
    /// - Parameters:
    ///   - transcript: called with every line sent and received (see ``TranscriptFile``).
    /// - Throws: ``ControlError/connectFailed(_:reason:)``, ``ControlError/noReply(_:what:timeout:)``
    ///   (`no greeting within 5 s`), ``ControlError/peerClosed(_:)``.
    public static func connect(
        path: String, timeout: Duration = .seconds(5), transcript: ControlTranscript? = nil,
        logger: Logger = Logger(label: "dts.qmp")
    ) async throws -> QMPClient {
        try await JSONLineChannel.open(.qmp, path: path, timeout: timeout, transcript: transcript, logger: logger) {
            channel, deadline in
            // Register the greeting waiter before the reader starts so the greeting cannot be missed.
            let message = try await channel.request(
                nil, what: "greeting", timeout: deadline.remaining(atLeast: .milliseconds(500)),
                startReader: true, matcher: { $0["QMP"] != nil })
            let greeting = try message.decode(QMPGreeting.self, on: channel.endpoint, what: "greeting")
            let client = QMPClient(channel: channel, greeting: greeting, logger: logger)
            channel.setHandlers(
                unmatched: { [weak client] message in client?.handleUnmatched(message) },
                closed: { [weak client] error in client?.handleClosed(error) })
            _ = try await client.execute("qmp_capabilities", timeout: deadline.remaining(atLeast: .seconds(1)))
            return client
        }
    }

    // MARK: - Commands

    /// Executes a QMP command and returns its `return` value.
    /// - Throws: ``ControlError/commandFailed(_:command:errorClass:message:)`` for an `error` reply
    ///   (`QMP command query-foo failed: CommandNotFound: ...`), ``ControlError/noReply(_:what:timeout:)``,
    ///   ``ControlError/peerClosed(_:)``.
    @discardableResult
    public func execute(
        _ command: String, arguments: [String: JSONValue]? = nil, timeout: Duration = .seconds(10)
    ) async throws -> JSONValue {
        try await execute(command, arguments: arguments, as: JSONValue.self, timeout: timeout)
    }

    /// Executes a QMP command and decodes its `return` value as `Value` (a `Decodable` type that
    /// mirrors the command's QAPI return type, such as ``QMPStatus``).
    /// - Throws: what ``execute(_:arguments:timeout:)`` throws, and ``ControlError/protocolViolation(_:_:)``
    ///   naming the member when the value does not decode (`query-status reply: return.running is missing`).
    public func execute<Value: Decodable>(
        _ command: String, arguments: [String: JSONValue]? = nil, as type: Value.Type, timeout: Duration = .seconds(10)
    ) async throws -> Value {
        let reply = try await channel.execute(command, arguments: arguments, timeout: timeout)
        return try channel.returnValue(reply, command: command, as: Value.self)
    }

    /// `query-status`: running or not, and the run state (`prelaunch`, `running`, `paused`, ...).
    public func queryStatus(timeout: Duration = .seconds(10)) async throws -> QMPStatus {
        try await execute("query-status", as: QMPStatus.self, timeout: timeout)
    }

    /// `query-pci`: every PCI function of the guest (bridged buses included), typed.
    public func queryPCI(timeout: Duration = .seconds(10)) async throws -> [PCIDevice] {
        QMPPCIBus.devices(try await execute("query-pci", as: [QMPPCIBus].self, timeout: timeout))
    }

    /// The qdev id → guest PCI address map, from `query-pci`.
    public func pciMap(timeout: Duration = .seconds(10)) async throws -> PCIMap {
        PCIMap(devices: try await queryPCI(timeout: timeout))
    }

    /// `query-cpus-fast`: vCPU index → host thread id (for pinning vCPU threads).
    public func queryCPUsFast(timeout: Duration = .seconds(10)) async throws -> [QMPCPU] {
        try await execute("query-cpus-fast", as: [QMPCPU].self, timeout: timeout)
    }

    /// `query-chardev`: the character devices (serial, QGA, vhost-user sockets, ...).
    public func queryChardev(timeout: Duration = .seconds(10)) async throws -> [QMPChardev] {
        try await execute("query-chardev", as: [QMPChardev].self, timeout: timeout)
    }

    /// `query-memdev`: the memory backends (size, share, prealloc, policy, ...).
    public func queryMemdev(timeout: Duration = .seconds(10)) async throws -> [QMPMemdev] {
        try await execute("query-memdev", as: [QMPMemdev].self, timeout: timeout)
    }

    /// Runs an HMP command through QMP (`human-monitor-command`) and returns its text output.
    /// HMP reports most of its own errors as text, not as a QMP error.
    public func humanMonitorCommand(_ commandLine: String, timeout: Duration = .seconds(10)) async throws -> String {
        try await execute(
            "human-monitor-command", arguments: ["command-line": .string(commandLine)], as: String.self, timeout: timeout)
    }

    /// HMP `info pci`, parsed.
    public func infoPCI(timeout: Duration = .seconds(10)) async throws -> [PCIDevice] {
        HMPParser.infoPCI(try await humanMonitorCommand("info pci", timeout: timeout))
    }

    /// HMP `info usernet`, parsed into host forwards (read back a host port QEMU chose for port 0).
    public func usernetForwards(timeout: Duration = .seconds(10)) async throws -> [UsernetForward] {
        HMPParser.infoUsernet(try await humanMonitorCommand("info usernet", timeout: timeout))
    }

    /// `stop`: pauses the vCPUs (QEMU emits `STOP`).
    public func stop(timeout: Duration = .seconds(10)) async throws {
        try await execute("stop", timeout: timeout)
    }

    /// `cont`: resumes the vCPUs, also from `-S` prelaunch (QEMU emits `RESUME`).
    public func cont(timeout: Duration = .seconds(10)) async throws {
        try await execute("cont", timeout: timeout)
    }

    /// `system_powerdown`: presses the ACPI power button (QEMU emits `POWERDOWN`; the guest decides).
    public func systemPowerdown(timeout: Duration = .seconds(10)) async throws {
        try await execute("system_powerdown", timeout: timeout)
    }

    /// `quit`: QEMU exits. A reply or the socket closing right after both count as success; then
    /// waits (up to `timeout`) for QEMU to close the socket and closes this client.
    /// - Throws: ``ControlError/noReply(_:what:timeout:)`` if QEMU neither answers nor closes.
    public func quit(timeout: Duration = .seconds(10)) async throws {
        do {
            try await execute("quit", timeout: timeout)
        } catch ControlError.peerClosed {
            // QEMU exited before (or instead of) replying: that is what quit asks for.
        }
        let closed = await channel.waitUntilClosed(timeout: timeout)
        close()
        if !closed {
            throw ControlError.noReply(endpoint, what: "socket close after quit", timeout: timeout)
        }
    }

    /// Closes the connection; pending calls and event waits fail with ``ControlError/closed(_:)``.
    public func close() {
        channel.close()
        handleClosed(.closed(endpoint))
    }

    /// Whether the socket is still open.
    public var isConnected: Bool { channel.isOpen }

    /// Waits until QEMU closes the socket (it exited) or `timeout` passes; returns whether it closed.
    public func waitUntilClosed(timeout: Duration) async -> Bool {
        await channel.waitUntilClosed(timeout: timeout)
    }

    // MARK: - Events

    /// A cursor at the newest event received so far; pass it to
    /// ``waitForEvent(named:after:recentWithin:timeout:)`` to wait only for later events.
    public func eventCursor() -> QMPEventCursor {
        QMPEventCursor(sequence: state.withLock { $0.lastSequence })
    }

    /// The buffered events (the last 256), oldest first.
    public func recentEvents() -> [QMPEvent] {
        state.withLock { $0.buffer.map(\.event) }
    }

    /// Waits for an event named `name` (`SHUTDOWN`, `STOP`, `RESUME`, `POWERDOWN`, ...).
    ///
    /// With a cursor, the first matching event after it is returned (buffered or future). Without,
    /// a buffered matching event not yet returned by an earlier wait and received within
    /// `recentWithin` counts (so a `RESUME` that raced the `cont` reply is seen), else the next one.
    /// - Throws: ``ControlError/noReply(_:what:timeout:)`` (`no STOP event within 5 s`),
    ///   ``ControlError/peerClosed(_:)`` if QEMU goes away first.
    @discardableResult
    public func waitForEvent(
        named name: String, after cursor: QMPEventCursor? = nil, recentWithin: Duration = .seconds(5),
        timeout: Duration = .seconds(10)
    ) async throws -> QMPEvent {
        let now = ContinuousClock.now
        let found: Result<QMPEvent, ControlError>? = state.withLock { state in
            if let index = state.buffer.firstIndex(where: { entry in
                guard entry.event.name == name else { return false }
                if let cursor { return entry.event.sequence > cursor.sequence }
                return !entry.consumed && now - entry.event.receivedAt <= recentWithin
            }) {
                state.buffer[index].consumed = true
                return .success(state.buffer[index].event)
            }
            if let closedError = state.closedError { return .failure(closedError) }
            return nil
        }
        if let found { return try found.get() }
        let (token, after) = state.withLock { ($0.eventWaiters.newToken(), cursor?.sequence ?? $0.lastSequence) }
        return try await awaitWaiter(timeout: timeout) { continuation in
            let found: Result<QMPEvent, ControlError>? = state.withLock { state in
                if let closedError = state.closedError { return .failure(closedError) }
                // An event may have arrived between the buffer check and now.
                if let index = state.buffer.firstIndex(where: { $0.event.name == name && $0.event.sequence > after }) {
                    state.buffer[index].consumed = true
                    return .success(state.buffer[index].event)
                }
                state.eventWaiters.append(token, WantedEvent(name: name, after: after), continuation)
                return nil
            }
            guard let found else { return true }
            continuation.resume(with: found)
            return false
        } expire: { [weak self] timedOut in
            guard let self else { return }
            failEventWaiter(token: token, with: timedOut ? ControlError.noReply(endpoint, what: "\(name) event", timeout: timeout) : CancellationError())
        }
    }

    /// A stream of the events received from now on; it finishes when the connection closes.
    public func events() -> AsyncStream<QMPEvent> {
        let (stream, continuation) = AsyncStream<QMPEvent>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let key: UInt64? = state.withLock { state in
            guard state.closedError == nil else { return nil }
            state.lastStreamKey += 1
            state.streams[state.lastStreamKey] = continuation
            return state.lastStreamKey
        }
        guard let key else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.streams.removeValue(forKey: key) }
        }
        return stream
    }

    private func failEventWaiter(token: UInt64, with error: any Error) {
        state.withLock { $0.eventWaiters.remove(token: token) }?.continuation.resume(throwing: error)
    }

    private func handleUnmatched(_ message: ControlMessage) {
        guard message["event"] != nil, let received = try? JSONDecoder().decode(QMPEventMessage.self, from: message.text) else {
            logger.debug("\(endpoint): ignoring unmatched message \(message.value)")
            return
        }
        let name = received.event
        let (event, woken, sinks) = state.withLock { state in
            state.lastSequence += 1
            let event = QMPEvent(
                name: name, data: received.data ?? .null, timestamp: received.date, sequence: state.lastSequence,
                receivedAt: ContinuousClock.now)
            let woken = state.eventWaiters.removeAll { $0.name == name && event.sequence > $0.after }
            state.buffer.append(BufferedEvent(event: event, consumed: !woken.isEmpty))
            if state.buffer.count > Self.bufferLimit { state.buffer.removeFirst(state.buffer.count - Self.bufferLimit) }
            return (event, woken, Array(state.streams.values))
        }
        logger.debug("\(endpoint): event \(name)")
        for waiter in woken { waiter.continuation.resume(returning: event) }
        for sink in sinks { sink.yield(event) }
    }

    private func handleClosed(_ error: ControlError) {
        let (failing, sinks, reason) = state.withLock { state in
            if state.closedError == nil { state.closedError = error }
            defer { state.streams.removeAll() }
            return (state.eventWaiters.removeAll(), Array(state.streams.values), state.closedError!)
        }
        for waiter in failing { waiter.continuation.resume(throwing: reason) }
        for sink in sinks { sink.finish() }
    }
}
