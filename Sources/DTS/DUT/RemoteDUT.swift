import DTSSSH
import Foundation
import Synchronization

/// Why a remote host DUT (a `crbs.cfg` section whose `dut_ip` is not this machine) could not be
/// used. Every message names the section, `dut_ip`, the port and `dut_user`; never a password.
public enum RemoteDUTError: Error, Sendable, CustomStringConvertible {
    /// The section gives neither `dut_passwd` nor `dut_key`.
    case noCredentials(crb: String, address: String, user: String)
    /// `dut_key` names a file that cannot be read.
    case keyFile(crb: String, path: String, reason: String)
    /// Nothing answered at `dut_ip:dut_port` (timeout, refused, no route) or the SSH handshake failed.
    case unreachable(crb: String, address: String, port: Int, user: String, reason: String)
    /// The server refused `dut_user` with its password or key (a wrong one, or no such user there).
    case authenticationFailed(crb: String, address: String, port: Int, user: String, method: String, reason: String)
    /// The server's host key differs from the one recorded for this run, or the known-hosts file failed.
    case hostKey(crb: String, address: String, port: Int, user: String, reason: String)
    /// Any other failure while connecting.
    case connectFailed(crb: String, address: String, port: Int, user: String, reason: String)

    /// One line naming what failed and where.
    public var description: String {
        switch self {
        case .noCredentials(let crb, let address, let user):
            return "DUT [\(crb)] dut_ip=\(address) dut_user=\(user): no credentials: set dut_passwd or dut_key (an ed25519 private key file) in crbs.cfg"
        case .keyFile(let crb, let path, let reason):
            return "DUT [\(crb)]: dut_key \(path): \(reason)"
        case .unreachable(let crb, let address, let port, let user, let reason):
            return "DUT [\(crb)] unreachable: dut_ip=\(address) dut_port=\(port) dut_user=\(user): \(reason)"
        case .authenticationFailed(let crb, let address, let port, let user, let method, let reason):
            // The SSH layer's reason says what can be told: a server answers an unknown user as a
            // wrong password, so neither is claimed alone.
            let what = method == "publickey" ? "key (dut_key) refused" : "password (dut_passwd) refused"
            return "DUT [\(crb)] login failed: dut_ip=\(address) dut_port=\(port) dut_user=\(user): \(what)" + (reason.isEmpty ? "" : ": \(reason)")
        case .hostKey(let crb, let address, let port, let user, let reason):
            return "DUT [\(crb)] host key check failed: dut_ip=\(address) dut_port=\(port) dut_user=\(user): \(reason)"
        case .connectFailed(let crb, let address, let port, let user, let reason):
            return "DUT [\(crb)] connect failed: dut_ip=\(address) dut_port=\(port) dut_user=\(user): \(reason)"
        }
    }
}

/// Connecting to remote host DUTs over SSH (DTS's `crbs.cfg` sections that are not this machine).
///
/// ```swift
/// let ssh = try await RemoteDUT.connect(crb, knownHostsPath: outputDirectory + "/known_hosts")
/// let dut = Dut(name: crb.name, session: RemoteHostSession(ssh), run: run)   // or: try await Dut.remote(crb, run: run, knownHostsPath: ...)
/// ```
///
/// Authentication: `dut_key` (a private key file; ed25519, libssh2 1.10 has no rsa-sha2) when
/// given, else `dut_passwd` (password method). Host keys are recorded on first use in
/// `knownHostsPath`; a later different key for the same `dut_ip:dut_port` is an error.
public enum RemoteDUT {
    /// Default deadline for TCP connect, handshake and login together.
    public static let defaultConnectTimeout: Duration = .seconds(10)

    /// The connect deadline from `DTS_CONNECT_TIMEOUT` (seconds, may be fractional), else ``defaultConnectTimeout``.
    public static func connectTimeout(environment: [String: String] = ProcessInfo.processInfo.environment) -> Duration {
        if let text = environment["DTS_CONNECT_TIMEOUT"], let seconds = Double(text), seconds > 0 {
            return .milliseconds(Int64(seconds * 1000))
        }
        return defaultConnectTimeout
    }

    /// How `crb` logs in: `dut_key` if set, else `dut_passwd`.
    public static func authentication(for crb: CRBConfig) throws(RemoteDUTError) -> SSHAuthentication {
        if let key = crb.values["dut_key"], !key.isEmpty {
            guard FileManager.default.isReadableFile(atPath: key) else {
                throw .keyFile(crb: crb.name, path: key, reason: "missing or not readable")
            }
            let pub = key + ".pub"
            return .publicKeyFile(privateKeyPath: key, publicKeyPath: FileManager.default.isReadableFile(atPath: pub) ? pub : nil)
        }
        guard !crb.dutPassword.isEmpty else {
            throw .noCredentials(crb: crb.name, address: crb.dutIP, user: crb.dutUser)
        }
        return .password(crb.dutPassword)
    }

    /// The SSH options for `crb`: `dut_ip`, `dut_port`, `dut_user`, credentials, host keys recorded
    /// on first use in `knownHostsPath`.
    public static func options(for crb: CRBConfig, knownHostsPath: String,
                               connectTimeout: Duration = RemoteDUT.connectTimeout()) throws(RemoteDUTError) -> SSHConnectOptions {
        SSHConnectOptions(host: crb.dutIP, port: crb.dutPort, user: crb.dutUser, authentication: try authentication(for: crb),
                          hostKeyPolicy: .recordOnFirstUse(knownHostsPath: knownHostsPath), connectTimeout: connectTimeout)
    }

    /// Opens an SSH connection to `crb`. Errors are ``RemoteDUTError`` values naming `dut_ip` and `dut_user`.
    public static func connect(_ crb: CRBConfig, knownHostsPath: String,
                               connectTimeout: Duration = RemoteDUT.connectTimeout()) async throws(RemoteDUTError) -> SSHConnection {
        let options = try options(for: crb, knownHostsPath: knownHostsPath, connectTimeout: connectTimeout)
        do {
            return try await SSHConnection.connect(options)
        } catch let error as SSHError {
            throw map(error, crb: crb)
        } catch {
            throw .connectFailed(crb: crb.name, address: crb.dutIP, port: crb.dutPort, user: crb.dutUser, reason: "\(error)")
        }
    }

    /// Sorts an ``SSHError`` from connecting into a ``RemoteDUTError``.
    static func map(_ error: SSHError, crb: CRBConfig) -> RemoteDUTError {
        let (name, address, port, user) = (crb.name, crb.dutIP, crb.dutPort, crb.dutUser)
        switch error {
        case .connectTimeout, .connectionRefused, .connectFailed, .handshakeFailed:
            return .unreachable(crb: name, address: address, port: port, user: user, reason: error.description)
        case .authenticationFailed(_, let method, let reason):
            return .authenticationFailed(crb: name, address: address, port: port, user: user, method: method, reason: reason)
        case .hostKeyMismatch, .hostKeyUnknown, .knownHostsFailed:
            return .hostKey(crb: name, address: address, port: port, user: user, reason: error.description)
        default:
            return .connectFailed(crb: name, address: address, port: port, user: user, reason: error.description)
        }
    }
}

/// A remote host DUT's session: its ``SSHConnection``. Its shells return the same text as the
/// local DUT's (``ShellText``): DTS's habit of expecting `"# "` returns the command's output without
/// the head of the unique prompt (`dts-3fa9c2d1`) that precedes the `# `.
///
/// Commands that time out or whose task is cancelled are killed on the DUT, as ``LocalSession``
/// does (libssh2 cannot send signals, and SSH servers leave a command running when its channel
/// closes): each `exec` runs the command in a new session (`setsid`, when the DUT has it) through
/// the user's `$SHELL`, after writing its process id to `/tmp/.dts-exec-<tag>-<slot>`; on timeout
/// or cancellation a second exec sends SIGTERM, then SIGKILL, to that process group.
/// ``close()`` removes the pid files.
public final class RemoteHostSession: DUTSession {
    /// The SSH connection to the DUT.
    public let connection: SSHConnection
    /// Names this session's pid files on the DUT (`/tmp/.dts-exec-<tag>-<slot>`).
    let tag = String(UInt64.random(in: 0x1000_0000_0000...0xFFFF_FFFF_FFFF), radix: 16)
    private let slots = PidFileSlots()

    /// Wraps `connection`.
    public init(_ connection: SSHConnection) { self.connection = connection }

    /// `user@dut_ip:dut_port`.
    public var endpoint: String { connection.endpoint }
    /// `dut_ip`.
    public var location: SessionLocation { connection.location }
    /// `nil`: wrap the session in a ``LoggingSession`` to log it.
    public var sessionLog: (any SessionLogSink)? { nil }

    /// The remote command line that runs `command` in its own process group, its pid in `pidFile`.
    static func wrap(_ command: String, pidFile: String) -> String {
        let quoted = ShellQuoting.quote(command)
        return "{ echo $$ > \(pidFile); } 2>/dev/null; "
            + "if command -v setsid >/dev/null 2>&1; then exec setsid \"${SHELL:-/bin/sh}\" -c \(quoted); "
            + "else exec \"${SHELL:-/bin/sh}\" -c \(quoted); fi"
    }

    /// Runs `command` through the remote user's shell; on timeout or cancellation the command's
    /// process group is killed on the DUT before the error is rethrown.
    public func exec(_ command: String, timeout: Duration) async throws -> ExecResult {
        let slot = slots.take()
        let pidFile = "/tmp/.dts-exec-\(tag)-\(slot)"
        do {
            let result = try await connection.exec(Self.wrap(command, pidFile: pidFile), timeout: timeout)
            slots.give(slot)
            return result
        } catch let error as SSHError {
            guard case .timeout(let endpoint, _, let after, let partial) = error else { slots.give(slot); throw error }
            await killRemote(pidFile: pidFile)
            slots.give(slot)
            throw SSHError.timeout(endpoint: endpoint, operation: "exec `\(command)`", after: after, partialOutput: partial)
        }
    }

    /// SIGTERM, then SIGKILL if it still runs after a second, to the process group whose leader's pid is in `pidFile`.
    /// Runs outside the (possibly cancelled) calling task, bounded to 10 s.
    private func killRemote(pidFile: String) async {
        let connection = self.connection
        let script = "p=$(cat \(pidFile) 2>/dev/null); rm -f \(pidFile); "
            + "if [ -n \"$p\" ] && kill -TERM -\"$p\" 2>/dev/null; then "
            + "for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 -\"$p\" 2>/dev/null || break; sleep 0.1; done; "
            + "kill -KILL -\"$p\" 2>/dev/null; fi; true"
        _ = await Task.detached { try? await connection.exec(script, timeout: .seconds(10)) }.value
    }

    /// Opens a PTY shell with a unique prompt (an ``SSHShell``: its text is the local shell's, see ``ShellText``).
    public func openShell() async throws -> any InteractiveSession {
        try await connection.openSSHShell()
    }

    /// SFTP upload.
    public func upload(localPath: String, remotePath: String, mode: Int32?, progress: CopyProgress?) async throws {
        try await connection.upload(localPath: localPath, remotePath: remotePath, mode: mode, progress: progress)
    }

    /// SFTP download.
    public func download(remotePath: String, localPath: String, progress: CopyProgress?) async throws {
        try await connection.download(remotePath: remotePath, localPath: localPath, progress: progress)
    }

    /// Removes this session's pid files on the DUT (bounded to 5 s) and closes the connection.
    public func close() async {
        if await connection.isUsable {
            let connection = self.connection
            let tag = self.tag
            _ = await Task.detached { try? await connection.exec("rm -f /tmp/.dts-exec-\(tag)-*", timeout: .seconds(5)) }.value
        }
        await connection.close()
    }
}

/// Reusable slot numbers for the pid files of concurrent execs.
private final class PidFileSlots: Sendable {
    private let state = Mutex((free: [Int](), next: 0))

    func take() -> Int {
        state.withLock { state in
            if let slot = state.free.popLast() { return slot }
            state.next += 1
            return state.next
        }
    }

    func give(_ slot: Int) { state.withLock { $0.free.append(slot) } }
}

extension Dut {
    /// Connects to the remote host DUT `crb` over SSH and returns a DUT whose ``session`` is a
    /// ``RemoteHostSession`` on that ``SSHConnection`` (not logged: wrap it in a ``LoggingSession``
    /// if commands must be logged, as the runner does). Close it with ``close()``.
    public static func remote(_ crb: CRBConfig, settings: RunSettings = RunSettings(), run: Run,
                              knownHostsPath: String, connectTimeout: Duration = RemoteDUT.connectTimeout()) async throws(RemoteDUTError) -> Dut {
        let ssh = try await RemoteDUT.connect(crb, knownHostsPath: knownHostsPath, connectTimeout: connectTimeout)
        return Dut(name: crb.name, settings: settings, session: RemoteHostSession(ssh), run: run)
    }

    /// The session under any ``LoggingSession`` wrappers.
    public var underlyingSession: any DUTSession {
        var current: any DUTSession = session
        while let wrapped = current as? LoggingSession { current = wrapped.base }
        return current
    }

    /// `true` when the DUT is not this machine (its session's ``DUTSession/location``).
    public var isRemote: Bool { session.location != .local }

    /// The DUT's address (`dut_ip`): the SSH host of a remote DUT, `127.0.0.1` for this machine.
    /// VM port forwards (SSH, VNC, serial) listen on this address.
    public var address: String {
        switch session.location {
        case .remote(let host): return host
        case .local: return "127.0.0.1"
        }
    }
}

extension TestContext {
    /// The DUT's address (``Dut/address``): where a VM's forwarded ports are bound.
    public var dutAddress: String { dut.address }
}
