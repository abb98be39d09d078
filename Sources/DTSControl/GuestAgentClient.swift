import Foundation
import Logging
import Synchronization

/// `guest-info` (QAPI `GuestAgentInfo`).
public struct GuestAgentInfo: Sendable, Hashable, Decodable {
    /// One command the agent knows (QAPI `GuestAgentCommandInfo`).
    public struct Command: Sendable, Hashable, Decodable {
        /// Command name.
        public var name: String
        /// Whether it is enabled (`qemu-ga -b` disables commands).
        public var enabled: Bool
        /// Whether it sends a reply on success (`guest-shutdown` does not).
        public var successResponse: Bool

        private enum CodingKeys: String, CodingKey {
            case name, enabled, successResponse = "success-response"
        }
    }

    /// Agent version (`7.2.22`).
    public var version: String
    /// The commands it supports.
    public var supportedCommands: [Command]

    private enum CodingKeys: String, CodingKey {
        case version, supportedCommands = "supported_commands"
    }

    /// Whether `name` is supported and enabled.
    public func isEnabled(_ name: String) -> Bool {
        supportedCommands.contains { $0.name == name && $0.enabled }
    }
}

/// An IP address of a guest interface (QAPI `GuestIpAddress`).
public struct GuestIPAddress: Sendable, Hashable, Decodable {
    /// Address family.
    public enum Family: String, Sendable, Hashable, Decodable {
        /// IPv4.
        case ipv4
        /// IPv6.
        case ipv6
    }

    /// Family.
    public var family: Family
    /// The address text (`10.0.2.15`, `fe80::1`).
    public var address: String
    /// Prefix length.
    public var prefix: Int

    /// Creates an address record.
    public init(family: Family, address: String, prefix: Int) {
        self.family = family
        self.address = address
        self.prefix = prefix
    }

    private enum CodingKeys: String, CodingKey {
        case family = "ip-address-type", address = "ip-address", prefix
    }
}

/// A guest network interface, from `guest-network-get-interfaces` (QAPI `GuestNetworkInterface`).
public struct GuestNetworkInterface: Sendable, Hashable, Decodable {
    /// Interface name (`eth0`).
    public var name: String
    /// MAC address, when the interface has one.
    public var hardwareAddress: String?
    /// Its IPv4 and IPv6 addresses.
    public var addresses: [GuestIPAddress]

    /// The IPv4 addresses only.
    public var ipv4Addresses: [GuestIPAddress] { addresses.filter { $0.family == .ipv4 } }
    /// The IPv6 addresses only.
    public var ipv6Addresses: [GuestIPAddress] { addresses.filter { $0.family == .ipv6 } }

    private enum CodingKeys: String, CodingKey {
        case name, hardwareAddress = "hardware-address", addresses = "ip-addresses"
    }

    /// Decodes one interface; one without addresses has no `ip-addresses` member.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        hardwareAddress = try container.decodeIfPresent(String.self, forKey: .hardwareAddress)
        addresses = try container.decodeIfPresent([GuestIPAddress].self, forKey: .addresses) ?? []
    }
}

/// `guest-exec-status` of a process started with `guest-exec` (QAPI `GuestExecStatus`).
public struct GuestExecStatus: Sendable, Hashable, Decodable {
    /// The guest pid (not part of the reply: the client fills it in).
    public var pid: Int
    /// Whether it has exited.
    public var exited: Bool
    /// Exit code, once exited normally.
    public var exitCode: Int?
    /// Signal number, if it was killed by one.
    public var signal: Int?
    /// Captured standard output (decoded from base64), when captured.
    public var stdout: Data
    /// Captured standard error (decoded from base64), when captured.
    public var stderr: Data
    /// Whether the agent truncated stdout.
    public var stdoutTruncated: Bool
    /// Whether the agent truncated stderr.
    public var stderrTruncated: Bool

    /// stdout as UTF-8 text.
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    /// stderr as UTF-8 text.
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }

    private enum CodingKeys: String, CodingKey {
        case exited, exitCode = "exitcode", signal, stdout = "out-data", stderr = "err-data"
        case stdoutTruncated = "out-truncated", stderrTruncated = "err-truncated"
    }

    /// Decodes a `guest-exec-status` reply (output is base64, as `JSONDecoder` reads `Data` by
    /// default); `pid` is 0 until the caller sets it.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        pid = 0
        exited = try container.decode(Bool.self, forKey: .exited)
        exitCode = try container.decodeIfPresent(Int.self, forKey: .exitCode)
        signal = try container.decodeIfPresent(Int.self, forKey: .signal)
        stdout = try container.decodeIfPresent(Data.self, forKey: .stdout) ?? Data()
        stderr = try container.decodeIfPresent(Data.self, forKey: .stderr) ?? Data()
        stdoutTruncated = try container.decodeIfPresent(Bool.self, forKey: .stdoutTruncated) ?? false
        stderrTruncated = try container.decodeIfPresent(Bool.self, forKey: .stderrTruncated) ?? false
    }
}

/// The replies of `guest-exec` and `guest-file-read`/`-write` (QAPI `GuestExec`, `GuestFileRead`,
/// `GuestFileWrite`), used inside the client only.
enum GuestAgentReply {
    /// `guest-exec`.
    struct Exec: Decodable {
        var pid: Int
    }

    /// `guest-file-read`: the bytes (base64 on the wire) and whether the end was reached.
    struct FileRead: Decodable {
        var count: Int
        var data: Data
        var eof: Bool

        enum CodingKeys: String, CodingKey { case count, data = "buf-b64", eof }
    }

    /// `guest-file-write`.
    struct FileWrite: Decodable {
        var count: Int
    }
}

/// The `mode` of `guest-shutdown`.
public enum GuestShutdownMode: String, Sendable, Hashable {
    /// Power off (ACPI powerdown inside the guest).
    case powerdown
    /// Halt.
    case halt
    /// Reboot.
    case reboot
}

/// A client of the QEMU guest agent (QGA) over a unix socket: the chardev socket QEMU exposes for
/// the guest's `org.qemu.guest_agent.0` port, or a host `qemu-ga -m unix-listen -p PATH`.
///
/// The framing is QMP's (one JSON object per line) without greeting or capabilities. Because a
/// guest agent may have stale replies or half a line buffered (it outlives connections, the guest
/// may have rebooted), the client synchronizes with `guest-sync-delimited` on connect and after any
/// timeout: it sends a 0xFF byte (resetting the agent's parser) and the command with a random id;
/// the agent answers 0xFF and the id, and everything before the 0xFF is discarded. Every command
/// also carries a unique `id`, so stale replies are never taken for the answer to a later call.
///
/// Power commands (`guest-shutdown`, `guest-suspend-*`) are refused when the peer of the socket is a
/// `qemu-ga` process on this host (that would power off the host itself), and when the client was
/// made with `allowPowerCommands: false`; so is `guest-set-time` to a host's own `qemu-ga`.
public final class GuestAgentClient: Sendable {
    /// The socket this client talks to.
    public let endpoint: ControlEndpoint
    /// Whether power commands may be sent at all.
    public let allowPowerCommands: Bool

    private let channel: JSONLineChannel
    private let logger: Logger
    private let needsSync = Mutex(true)

    /// Commands that stop or suspend the guest.
    public static let powerCommands: Set<String> = [
        "guest-shutdown", "guest-suspend-disk", "guest-suspend-ram", "guest-suspend-hybrid",
    ]

    private init(channel: JSONLineChannel, allowPowerCommands: Bool, logger: Logger) {
        self.channel = channel
        self.endpoint = channel.endpoint
        self.allowPowerCommands = allowPowerCommands
        self.logger = logger
    }

    deinit {
        channel.close()
    }

    /// Connects to the agent socket at `path` (retrying until it exists, up to `timeout`) and
    /// synchronizes with `guest-sync-delimited` within the same deadline.
    /// - Throws: ``ControlError/connectFailed(_:reason:)``, or ``ControlError/noReply(_:what:timeout:)``
    ///   when the agent does not answer the sync (no agent running in the guest yet).
    public static func connect(
        path: String, timeout: Duration = .seconds(10), allowPowerCommands: Bool = true,
        transcript: ControlTranscript? = nil, logger: Logger = Logger(label: "dts.qga")
    ) async throws -> GuestAgentClient {
        try await JSONLineChannel.open(.guestAgent, path: path, timeout: timeout, transcript: transcript, logger: logger) {
            channel, deadline in
            let endpoint = channel.endpoint
            channel.setHandlers(
                unmatched: { message in
                    logger.debug("\(endpoint): discarding stale or unsolicited message \(message.value)")
                }, closed: nil)
            channel.start()
            let client = GuestAgentClient(channel: channel, allowPowerCommands: allowPowerCommands, logger: logger)
            try await client.sync(timeout: deadline.remaining(atLeast: .milliseconds(500)))
            return client
        }
    }

    /// Synchronizes the stream with `guest-sync-delimited` (0xFF, random id, discard until the
    /// agent's 0xFF, accept only the reply carrying that id).
    public func sync(timeout: Duration = .seconds(5)) async throws {
        let syncID = Int.random(in: 1...0x7fff_ffff)
        let message: JSONValue = [
            "execute": "guest-sync-delimited", "arguments": ["id": .int(syncID)], "id": .string("sync-\(syncID)"),
        ]
        do {
            let reply = try await channel.request(
                message, prefix: [0xFF], what: "reply to guest-sync-delimited", timeout: timeout,
                matcher: { $0["return"] == .int(syncID) || $0["id"] == .string("sync-\(syncID)") })
            try channel.checkError(reply, command: "guest-sync-delimited")
            needsSync.withLock { $0 = false }
        } catch {
            markNeedsSync()
            throw error
        }
    }

    /// Executes an agent command and returns its `return` value; syncs first when a previous call
    /// timed out. Power commands are subject to the guard described on the type.
    /// - Throws: ``ControlError/commandFailed(_:command:errorClass:message:)``,
    ///   ``ControlError/noReply(_:what:timeout:)`` (`guest agent at PATH: no reply to guest-ping within 3 s`),
    ///   ``ControlError/peerClosed(_:)``, ``ControlError/refused(_:command:reason:)``.
    @discardableResult
    public func execute(
        _ command: String, arguments: [String: JSONValue]? = nil, timeout: Duration = .seconds(10)
    ) async throws -> JSONValue {
        try await execute(command, arguments: arguments, as: JSONValue.self, timeout: timeout)
    }

    /// Executes an agent command and decodes its `return` value as `Value` (a `Decodable` type
    /// that mirrors the command's QAPI return type, such as ``GuestAgentInfo``).
    /// - Throws: what ``execute(_:arguments:timeout:)`` throws, and ``ControlError/protocolViolation(_:_:)``
    ///   naming the member when the value does not decode (`guest-info reply: return.version is missing`).
    public func execute<Value: Decodable>(
        _ command: String, arguments: [String: JSONValue]? = nil, as type: Value.Type, timeout: Duration = .seconds(10)
    ) async throws -> Value {
        try checkPowerCommand(command)
        let deadline = ContinuousClock.now + timeout
        if syncNeeded { try await sync(timeout: timeout) }
        let reply: ControlMessage
        do {
            reply = try await send(
                command, arguments: arguments, timeout: max(deadline - ContinuousClock.now, .milliseconds(100)))
        } catch ControlError.noReply(let endpoint, let what, _) {
            // Report the deadline the caller gave, not what was left of it after a resync.
            throw ControlError.noReply(endpoint, what: what, timeout: timeout)
        }
        return try channel.returnValue(reply, command: command, as: Value.self)
    }

    /// `guest-ping`.
    public func ping(timeout: Duration = .seconds(5)) async throws {
        try await execute("guest-ping", timeout: timeout)
    }

    /// `guest-info`: version and supported commands.
    public func info(timeout: Duration = .seconds(5)) async throws -> GuestAgentInfo {
        try await execute("guest-info", as: GuestAgentInfo.self, timeout: timeout)
    }

    /// `guest-network-get-interfaces`: names, MAC addresses, IPv4/IPv6 addresses with prefixes.
    public func networkInterfaces(timeout: Duration = .seconds(10)) async throws -> [GuestNetworkInterface] {
        try await execute("guest-network-get-interfaces", as: [GuestNetworkInterface].self, timeout: timeout)
    }

    /// `guest-set-time`: sets the guest's system clock to `date` (nanosecond resolution); the agent
    /// then writes it to the guest's hardware clock (`hwclock -w`), and fails if it cannot.
    public func setTime(_ date: Date, timeout: Duration = .seconds(10)) async throws {
        let nanoseconds = Int((date.timeIntervalSince1970 * 1e9).rounded())
        try await execute("guest-set-time", arguments: ["time": .int(nanoseconds)], timeout: timeout)
    }

    /// `guest-get-time`: the guest's system clock.
    public func time(timeout: Duration = .seconds(10)) async throws -> Date {
        let nanoseconds = try await execute("guest-get-time", as: Int64.self, timeout: timeout)
        return Date(timeIntervalSince1970: Double(nanoseconds) / 1e9)
    }

    /// `guest-shutdown`. The agent sends no reply on success and the guest powering off may close
    /// the socket: both count as success. An error reply within `replyGrace` (the command disabled,
    /// for example) is thrown.
    /// - Throws: ``ControlError/refused(_:command:reason:)`` when the peer is this host's own `qemu-ga`.
    public func shutdown(mode: GuestShutdownMode = .powerdown, replyGrace: Duration = .seconds(2)) async throws {
        try checkPowerCommand("guest-shutdown")
        if syncNeeded { try await sync(timeout: .seconds(5)) }
        let reply: ControlMessage
        do {
            reply = try await send("guest-shutdown", arguments: ["mode": .string(mode.rawValue)], timeout: replyGrace)
        } catch ControlError.noReply, ControlError.peerClosed {
            return
        }
        if let error = reply["error"] {
            throw ControlError.commandFailed(
                endpoint, command: "guest-shutdown", errorClass: error["class"]?.stringValue ?? "GenericError",
                message: error["desc"]?.stringValue ?? error.jsonText())
        }
    }

    /// `guest-exec`: starts `path` with `arguments` (argv, no shell) in the guest; returns its pid.
    public func exec(
        path: String, arguments: [String] = [], environment: [String]? = nil, input: Data? = nil,
        captureOutput: Bool = true, timeout: Duration = .seconds(10)
    ) async throws -> Int {
        var args: [String: JSONValue] = [
            "path": .string(path), "arg": .array(arguments.map { .string($0) }), "capture-output": .bool(captureOutput),
        ]
        if let environment { args["env"] = .array(environment.map { .string($0) }) }
        if let input { args["input-data"] = .string(input.base64EncodedString()) }
        return try await execute("guest-exec", arguments: args, as: GuestAgentReply.Exec.self, timeout: timeout).pid
    }

    /// `guest-exec-status` of `pid`: exited or not, exit code, decoded stdout/stderr.
    public func execStatus(pid: Int, timeout: Duration = .seconds(10)) async throws -> GuestExecStatus {
        var status = try await execute(
            "guest-exec-status", arguments: ["pid": .int(pid)], as: GuestExecStatus.self, timeout: timeout)
        status.pid = pid
        return status
    }

    /// Runs `path args...` in the guest and polls `guest-exec-status` until it exits.
    /// - Throws: ``ControlError/guestProcessTimeout(_:path:pid:timeout:)`` if it runs past `timeout`.
    public func run(
        path: String, args: [String] = [], input: Data? = nil, timeout: Duration = .seconds(30)
    ) async throws -> GuestExecStatus {
        let deadline = ContinuousClock.now + timeout
        let pid = try await exec(path: path, arguments: args, input: input, captureOutput: true, timeout: timeout)
        var pause = Duration.milliseconds(10)
        while true {
            let remaining = deadline - ContinuousClock.now
            let status = try await execStatus(pid: pid, timeout: max(remaining, .seconds(1)))
            if status.exited { return status }
            if ContinuousClock.now >= deadline {
                throw ControlError.guestProcessTimeout(endpoint, path: path, pid: pid, timeout: timeout)
            }
            try await Task.sleep(for: min(pause, max(deadline - ContinuousClock.now, .milliseconds(1))))
            pause = min(pause * 2, .milliseconds(200))
        }
    }

    /// Reads a whole guest file (`guest-file-open`/`read`/`close`).
    public func readFile(path: String, timeout: Duration = .seconds(30)) async throws -> Data {
        let handle = try await openFile(path: path, mode: "r", timeout: timeout)
        do {
            var data = Data()
            while true {
                let chunk = try await execute(
                    "guest-file-read", arguments: ["handle": .int(handle), "count": 65536],
                    as: GuestAgentReply.FileRead.self, timeout: timeout)
                data.append(chunk.data)
                if chunk.eof || chunk.data.isEmpty { break }
            }
            try await execute("guest-file-close", arguments: ["handle": .int(handle)], timeout: timeout)
            return data
        } catch {
            _ = try? await execute("guest-file-close", arguments: ["handle": .int(handle)], timeout: .seconds(2))
            throw error
        }
    }

    /// Writes (creates or truncates) a guest file (`guest-file-open`/`write`/`close`).
    public func writeFile(path: String, data: Data, timeout: Duration = .seconds(30)) async throws {
        let handle = try await openFile(path: path, mode: "w", timeout: timeout)
        do {
            var offset = 0
            while offset < data.count {
                let end = min(offset + 49152, data.count)
                let chunk = data.subdata(in: offset..<end)
                let written = try await execute(
                    "guest-file-write",
                    arguments: ["handle": .int(handle), "buf-b64": .string(chunk.base64EncodedString())],
                    as: GuestAgentReply.FileWrite.self, timeout: timeout
                ).count
                guard written > 0 else {
                    throw ControlError.protocolViolation(endpoint, "guest-file-write reply: wrote 0 bytes to \(path)")
                }
                offset += written
            }
            try await execute("guest-file-close", arguments: ["handle": .int(handle)], timeout: timeout)
        } catch {
            _ = try? await execute("guest-file-close", arguments: ["handle": .int(handle)], timeout: .seconds(2))
            throw error
        }
    }

    /// Closes the connection; pending calls fail with ``ControlError/closed(_:)``.
    public func close() {
        channel.close()
    }

    /// Whether the socket is still open.
    public var isConnected: Bool { channel.isOpen }

    /// Whether the process at the other end of the socket is a `qemu-ga` running on this host
    /// (as opposed to QEMU's chardev for a guest's agent).
    public var peerIsHostGuestAgent: Bool {
        guard let pid = channel.peerPID(),
            let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)
        else { return false }
        return comm.trimmingCharacters(in: .whitespacesAndNewlines) == "qemu-ga"
    }

    /// Writes raw bytes to the socket, bypassing the protocol (tests: garbage and stale requests).
    @_spi(Testing) public func sendRaw(_ bytes: [UInt8]) throws {
        try channel.write(bytes, transcriptText: "raw: \(String(decoding: bytes, as: UTF8.self))")
    }

    // MARK: - Internals

    private var syncNeeded: Bool { needsSync.withLock { $0 } }

    private func markNeedsSync() { needsSync.withLock { $0 = true } }

    private func checkPowerCommand(_ command: String) throws {
        if command == "guest-set-time", peerIsHostGuestAgent {
            throw ControlError.refused(
                endpoint, command: command, reason: "the socket's peer is qemu-ga running on this host: it would set this host's clock")
        }
        guard Self.powerCommands.contains(command) else { return }
        guard allowPowerCommands else {
            throw ControlError.refused(endpoint, command: command, reason: "power commands are disabled for this client")
        }
        if peerIsHostGuestAgent {
            throw ControlError.refused(
                endpoint, command: command,
                reason: "the socket's peer is qemu-ga running on this host, not a guest")
        }
    }

    private func openFile(path: String, mode: String, timeout: Duration) async throws -> Int {
        try await execute(
            "guest-file-open", arguments: ["path": .string(path), "mode": .string(mode)], as: Int.self, timeout: timeout)
    }

    private func send(_ command: String, arguments: [String: JSONValue]?, timeout: Duration) async throws
        -> ControlMessage
    {
        do {
            return try await channel.execute(command, arguments: arguments, timeout: timeout)
        } catch ControlError.noReply(let endpoint, let what, let timeout) {
            // The reply may still come later: resync before the next command.
            markNeedsSync()
            throw ControlError.noReply(endpoint, what: what, timeout: timeout)
        }
    }
}
