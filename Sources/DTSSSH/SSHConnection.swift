import CLibSSH2
import DTSSession
import Foundation
import Logging
import Synchronization

/// An SSH connection on libssh2: commands (`exec`), interactive shells and SFTP file copy.
///
/// Each connection owns one thread that runs every libssh2 call for its session in non-blocking
/// mode, waiting in `poll(2)` with a deadline per operation. The async API hands work to that
/// thread, so callers never block Swift's cooperative pool, and several commands and shells on one
/// connection interleave safely. Close it with ``close()`` when done.
public final class SSHConnection: DUTSession, Sendable {
    let core: ConnectionCore
    private let isClosed = Mutex(false)

    /// `user@host:port`.
    public var endpoint: String { core.endpoint }
    /// The options the connection was opened with.
    public var options: SSHConnectOptions { core.options }
    /// The SSH server's host: commands run over there.
    public var location: SessionLocation { .remote(host: options.host) }
    /// `nil`: the connection does not log commands by itself (its ``SSHConnectOptions/transcript`` hook aside).
    public var sessionLog: (any SessionLogSink)? { nil }

    private init(core: ConnectionCore) { self.core = core }

    /// Opens a connection: TCP connect, SSH handshake, host key check against the policy's
    /// known-hosts file, and authentication, all within `options.connectTimeout`.
    public static func connect(_ options: SSHConnectOptions) async throws -> SSHConnection {
        let core = ConnectionCore(options: options)
        core.start()
        do {
            try await core.onLoop { core in try core.establish() }
        } catch {
            _ = core.submit { $0.requestClose() }
            options.logger.debug("SSH connect to \(options.endpoint) failed: \(error)")
            throw error
        }
        return SSHConnection(core: core)
    }

    /// Runs `command` through the remote user's login shell (`exec` channel request). Stdout and stderr
    /// are drained together, so either may be large. Exit by signal N gives status 128+N.
    /// Throws ``SSHError/timeout(endpoint:operation:after:partialOutput:)`` after `timeout`.
    public func exec(_ command: String, timeout: Duration) async throws -> ExecResult {
        core.logger.debug("exec on \(core.endpoint): \(command)")
        core.record(.exec, command)
        return try await core.perform("exec") { _, cont in
            ExecOperation(command: command, timeout: timeout, continuation: cont)
        }
    }

    /// Opens an interactive shell with the default ``SSHShellOptions`` (unique prompt marker).
    public func openShell() async throws -> any InteractiveSession {
        try await openSSHShell()
    }

    /// Opens an interactive shell on a new channel with a PTY, prepared as `options.promptSetup` says.
    public func openSSHShell(_ options: SSHShellOptions = SSHShellOptions()) async throws -> SSHShell {
        let channel: ShellChannel = try await core.perform("open shell") { _, cont in
            ShellOpenOperation(options: options, continuation: cont)
        }
        let shell = SSHShell(connection: self, channel: channel)
        do {
            try await shell.prepare(options)
        } catch {
            await shell.close()
            throw error
        }
        return shell
    }

    /// Uploads `localPath` to `remotePath` over SFTP with many write requests in flight, checks the
    /// remote size, then sets the remote mode to `mode` (or the local file's mode). On failure the
    /// remote file is removed if it is a regular file. `progress` is called on the connection thread.
    public func upload(localPath: String, remotePath: String, mode: Int32? = nil, progress: CopyProgress? = nil) async throws {
        try await transfer(.upload, localPath: localPath, remotePath: remotePath, mode: mode, progress: progress)
    }

    /// Downloads `remotePath` to `localPath` over SFTP with read-ahead; the local file gets the remote
    /// mode, and is removed if the download fails (or ends short of the size the server reported).
    public func download(remotePath: String, localPath: String, progress: CopyProgress? = nil) async throws {
        try await transfer(.download, localPath: localPath, remotePath: remotePath, mode: nil, progress: progress)
    }

    private func transfer(_ direction: TransferOperation.Direction, localPath: String, remotePath: String, mode: Int32?,
                          progress: CopyProgress?) async throws {
        let stall = core.options.transferStallTimeout
        try await core.perform(direction == .upload ? "upload" : "download") { _, cont in
            let op = TransferOperation(direction: direction, localPath: localPath, remotePath: remotePath, mode: mode,
                                       progress: progress, stallTimeout: stall, continuation: cont)
            if let error = op.prepare() {
                cont.resume(throwing: error)
                return nil
            }
            return op
        }
    }

    /// The cipher and MAC negotiated for client-to-server traffic (for example `aes128-ctr` and
    /// `hmac-sha2-256`); they bound copy throughput when the server's crypto is slow.
    public var algorithms: (cipher: String, mac: String) {
        get async throws {
            try await core.onLoop { core in
                if let error = core.unusableError() { throw error }
                func method(_ type: Int32) -> String {
                    guard let session = core.session, let name = libssh2_session_methods(session, type) else { return "" }
                    return String(cString: name)
                }
                return (method(LIBSSH2_METHOD_CRYPT_CS), method(LIBSSH2_METHOD_MAC_CS))
            }
        }
    }

    /// `true` once the connection is closed or broken (server gone, socket error).
    public var isUsable: Bool {
        get async {
            (try? await core.onLoop { core in core.unusableError() == nil }) ?? false
        }
    }

    /// Disconnects, failing any pending operation with ``SSHError/closed(endpoint:)``. Idempotent.
    public func close() async {
        let already = isClosed.withLock { closed in
            defer { closed = true }
            return closed
        }
        if already { return }
        _ = try? await core.onLoop { core in core.requestClose() }
    }

    deinit {
        // A forgotten connection still ends its thread.
        if !isClosed.withLock({ $0 }) { _ = core.submit { $0.requestClose() } }
    }
}
