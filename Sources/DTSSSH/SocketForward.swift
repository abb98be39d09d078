import CLibSSH2
import CSystemShims
import DTSSession
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A local Unix socket whose connections are relayed, over the SSH connection, to a command run
/// on the server for each of them, typically `socat - UNIX-CONNECT:/path` to reach a Unix socket
/// on the remote host (QEMU's QMP or guest-agent socket on a remote DUT).
///
/// libssh2 1.10 has no `direct-streamlocal` channel, and some servers (dropbear) do not offer it
/// either, so the remote end is an `exec` channel whose stdin and stdout carry the bytes. A client
/// of the local socket sees a plain stream socket: EOF from either side is passed on, and the
/// relay closes its channel when both directions ended. Create one with
/// ``SSHConnection/forwardUnixSocket(localPath:remoteCommand:)``; ``close()`` (or closing the
/// connection) stops listening, drops open relays and removes the local socket file.
public final class SSHSocketForward: Sendable {
    /// The local socket path clients connect to.
    public let localPath: String
    /// The command each connection runs on the server.
    public let remoteCommand: String
    private let core: ConnectionCore
    private let listener: ForwardListener

    init(localPath: String, remoteCommand: String, core: ConnectionCore, listener: ForwardListener) {
        self.localPath = localPath
        self.remoteCommand = remoteCommand
        self.core = core
        self.listener = listener
    }

    /// Stops listening, ends every relay of this forward and removes the local socket. Idempotent.
    public func close() async {
        let listener = self.listener
        _ = try? await core.onLoop { core in listener.shutDown(core) }
        unlink(localPath)
    }
}

extension SSHConnection {
    /// Listens on a new Unix socket at `localPath` (mode 0600; an existing file there is replaced)
    /// and relays each accepted connection to `remoteCommand` run on the server (see
    /// ``SSHSocketForward``). The command's stderr is drained and logged at debug level.
    public func forwardUnixSocket(localPath: String, remoteCommand: String) async throws -> SSHSocketForward {
        let fd = try Self.listenUnix(path: localPath)
        let listener = ForwardListener(fd: fd, command: remoteCommand, endpoint: endpoint)
        do {
            try await core.onLoop { core in
                if let error = core.unusableError() { throw error }
                core.adopt(listener)
            }
        } catch {
            Glibc.close(fd)
            unlink(localPath)
            throw error
        }
        return SSHSocketForward(localPath: localPath, remoteCommand: remoteCommand, core: core, listener: listener)
    }

    private static func listenUnix(path: String) throws -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            throw SSHError.channelFailed(endpoint: "local", operation: "forward \(path)", reason: "socket path longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw Self.localError(path, "socket") }
        unlink(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, chmod(path, 0o600) == 0, listen(fd, 8) == 0 else {
            let error = Self.localError(path, "bind/listen")
            Glibc.close(fd)
            return try { throw error }()
        }
        return fd
    }

    private static func localError(_ path: String, _ call: String) -> SSHError {
        .channelFailed(endpoint: "local", operation: "forward \(path)", reason: "\(call): \(String(cString: strerror(errno)))")
    }
}

/// Accepts connections on the forward's local socket and starts a relay for each.
/// Touched only on the connection thread (after creation).
final class ForwardListener: LoopOperation, @unchecked Sendable {
    private var fd: Int32
    private let command: String
    private let endpoint: String
    private var relays: [SocketRelay] = []

    init(fd: Int32, command: String, endpoint: String) {
        self.fd = fd
        self.command = command
        self.endpoint = endpoint
        super.init()
    }

    override func step(_ core: ConnectionCore) -> StepResult {
        guard fd >= 0 else { return .done }
        relays.removeAll { $0.finished }
        let client = dts_accept_cloexec_nonblock(fd)
        if client < 0 { return .blocked }
        core.logger.debug("forward on \(endpoint): relaying a connection to `\(command)`")
        let relay = SocketRelay(fd: client, command: command)
        relays.append(relay)
        core.adopt(relay)
        return .progressed
    }

    override func pollRequest() -> pollfd? {
        fd >= 0 ? pollfd(fd: fd, events: Int16(POLLIN), revents: 0) : nil
    }

    /// Stops listening and ends the relays.
    func shutDown(_ core: ConnectionCore) {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
        for relay in relays where !relay.finished { relay.stop() }
        relays.removeAll()
    }

    override func abort(_ core: ConnectionCore, reason: SSHError) {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
        relays.removeAll()
    }
}

/// One accepted connection relayed to an exec channel: local bytes go to the command's stdin,
/// its stdout comes back; EOF is passed on each way.
final class SocketRelay: ChannelOperation, @unchecked Sendable {
    private enum Phase { case setup, relay }
    private var phase = Phase.setup
    private var fd: Int32
    private let command: String
    /// Read from the local socket, not yet written to the channel.
    private var toRemote: [UInt8] = []
    /// Read from the channel, not yet written to the local socket.
    private var toLocal: [UInt8] = []
    private var localEOF = false
    private var remoteEOF = false
    private var eofSent = false
    private var localWriteShut = false
    private var stderr: [UInt8] = []
    private var stopRequested = false
    private let chunk = 64 * 1024

    init(fd: Int32, command: String) {
        self.fd = fd
        self.command = command
        super.init(requests: [.exec(command)])
    }

    /// Ends the relay at its next step (the forward closes; the loop steps every operation after a job).
    func stop() { stopRequested = true }

    override func pollRequest() -> pollfd? {
        guard fd >= 0, phase == .relay, !isCleaningUp else { return nil }
        var events: Int16 = 0
        if !localEOF && toRemote.count < chunk { events |= Int16(POLLIN) }
        if !toLocal.isEmpty { events |= Int16(POLLOUT) }
        return events == 0 ? nil : pollfd(fd: fd, events: events, revents: 0)
    }

    private func closeLocal() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }

    /// Closes the local socket and the channel. The channel counts as transient from here on (its
    /// command is about to exit), not while the relay runs.
    private func finish(_ core: ConnectionCore) -> StepResult {
        closeLocal()
        return closeInBackground(core, waitForPeer: true, countAsTransient: true)
    }

    override func step(_ core: ConnectionCore) -> StepResult {
        if isCleaningUp {
            let result = stepCleanup(core)
            if result == .done, !stderr.isEmpty {
                core.logger.debug("forward `\(command)` stderr: \(String(decoding: stderr, as: UTF8.self))")
            }
            return result
        }
        while true {
            switch phase {
            case .setup:
                if stopRequested && channel == nil { return finish(core) }
                switch stepSetup(core) {
                case .blocked:
                    return .blocked
                case .failed(.open, let rc):
                    core.logger.warning("forward: channel open for `\(command)` failed: \(core.lastErrorMessage())")
                    if core.isFatal(rc) { _ = core.failure(rc, operation: "forward", partialOutput: "") }
                    return finish(core)
                case .failed(.request, _):
                    core.logger.warning("forward: exec `\(command)` failed: \(core.lastErrorMessage())")
                    return finish(core)
                case .ready:
                    phase = .relay
                }
            case .relay:
                if stopRequested { return finish(core) }
                return relay(core)
            }
        }
    }

    private func relay(_ core: ConnectionCore) -> StepResult {
        guard let channel else { return finish(core) }
        var moved = false
        // Local → remote.
        if !localEOF && toRemote.count < chunk {
            // Into the connection's read buffer (this runs on its thread), not a fresh array per step.
            let n = recv(fd, core.readBuffer, min(chunk, core.readBufferSize), 0)
            if n > 0 {
                core.readBuffer.withMemoryRebound(to: UInt8.self, capacity: n) {
                    toRemote.append(contentsOf: UnsafeBufferPointer(start: $0, count: n))
                }
                moved = true
            } else if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                localEOF = true
                moved = true
            }
        }
        if !toRemote.isEmpty {
            let n = toRemote.withUnsafeBufferPointer { buffer in
                buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                    libssh2_channel_write_ex(channel, 0, $0, buffer.count)
                }
            }
            if n > 0 {
                toRemote.removeFirst(n)
                moved = true
            } else if n < 0 && Int32(n) != LIBSSH2_ERROR_EAGAIN {
                if core.isFatal(Int32(n)) { _ = core.failure(Int32(n), operation: "forward", partialOutput: "") }
                return finish(core)
            }
        }
        if localEOF && toRemote.isEmpty && !eofSent {
            let rc = libssh2_channel_send_eof(channel)
            if rc == 0 { eofSent = true; moved = true; transient.mark(core) } else if rc != LIBSSH2_ERROR_EAGAIN { return finish(core) }
        }
        // Remote → local.
        if !remoteEOF {
            switch core.readChannel(channel, stream: 0, into: &toLocal) {
            case .data: moved = true
            case .eof: remoteEOF = true; moved = true; transient.mark(core)
            case .again: break
            case .failed: return finish(core)
            }
            if case .data = core.readChannel(channel, stream: SSH_EXTENDED_DATA_STDERR, into: &stderr) { moved = true }
        }
        if !toLocal.isEmpty {
            let n = toLocal.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                toLocal.removeFirst(n)
                moved = true
            } else if n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                // The local client is gone: nothing more to deliver.
                return finish(core)
            }
        }
        if remoteEOF && toLocal.isEmpty && !localWriteShut {
            shutdown(fd, Int32(SHUT_WR))
            localWriteShut = true
            moved = true
        }
        if remoteEOF && toLocal.isEmpty {
            // The remote command is done: the client reads EOF once the local socket closes.
            return finish(core)
        }
        return moved ? .progressed : .blocked
    }

    override func expire(_ core: ConnectionCore) -> Bool {
        if isCleaningUp {
            closeLocal()
            return abandonCleanup(core)
        }
        deadline = nil
        return false
    }

    override func abort(_ core: ConnectionCore, reason: SSHError) {
        transient.release(core)
        closeLocal()
    }
}
