import DTSSession
import Logging

/// How to authenticate.
public enum SSHAuthentication: Sendable, CustomStringConvertible {
    /// Password authentication (`password` method).
    case password(String)
    /// Public-key authentication with a private key file (use ed25519: libssh2 1.10 has no rsa-sha2).
    /// `publicKeyPath` may be `nil` (derived from the private key); `passphrase` for encrypted keys.
    case publicKeyFile(privateKeyPath: String, publicKeyPath: String? = nil, passphrase: String? = nil)
    /// Keyboard-interactive: every prompt is answered with `password` (PAM's `Password:`).
    case keyboardInteractive(password: String)

    /// The SSH method name, as used in errors (`password`, `publickey`, `keyboard-interactive`).
    public var methodName: String {
        switch self {
        case .password: return "password"
        case .publicKeyFile: return "publickey"
        case .keyboardInteractive: return "keyboard-interactive"
        }
    }

    /// Never shows secrets.
    public var description: String {
        switch self {
        case .password: return "password(***)"
        case .publicKeyFile(let key, _, let pass): return "publickey(\(key)\(pass == nil ? "" : ", passphrase ***"))"
        case .keyboardInteractive: return "keyboard-interactive(***)"
        }
    }
}

/// How the server's host key is verified against an OpenSSH-format known-hosts file.
public enum HostKeyPolicy: Sendable, Equatable {
    /// The host:port must already have a matching entry in the file.
    case strict(knownHostsPath: String)
    /// Records the key if the host:port has no entry yet; a different key is a mismatch error.
    case recordOnFirstUse(knownHostsPath: String)
    /// For VMs reached through a forwarded port that later VMs may reuse: the key is recorded on first
    /// use in `<directory>/known_hosts.<instanceID>`, a file of its own per VM instance, so a new
    /// instance never meets the key of an earlier one, while a key change within one instance is caught.
    case perInstance(directory: String, instanceID: String)

    /// The known-hosts file this policy reads and writes.
    public var knownHostsPath: String {
        switch self {
        case .strict(let p), .recordOnFirstUse(let p): return p
        case .perInstance(let dir, let id):
            let safe = String(id.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
            return dir + "/known_hosts." + safe
        }
    }

    var recordsUnknown: Bool {
        if case .strict = self { return false }
        return true
    }
}

/// One entry of a session transcript (see ``SSHConnectOptions/transcript``).
public struct SSHTranscriptEvent: Sendable, CustomStringConvertible {
    /// What happened.
    public enum Kind: String, Sendable {
        /// An `exec` command (text) and, in a second event, its result.
        case exec, execResult
        /// Text sent to an interactive shell.
        case shellSend
        /// Output received from a shell (the part returned to the caller).
        case shellReceive
        /// Ctrl-C sent to a shell.
        case controlC
        /// A file copy (text: `local -> remote` or `remote -> local`).
        case upload, download
    }
    /// `user@host:port`.
    public var endpoint: String
    /// The event kind.
    public var kind: Kind
    /// The command, the output, or a description.
    public var text: String
    /// For `execResult`: the exit status.
    public var status: Int32?

    /// `[endpoint] kind status=N: text`, for logs.
    public var description: String {
        "[\(endpoint)] \(kind.rawValue)\(status.map { " status=\($0)" } ?? ""): \(text)"
    }
}

/// Receives every command sent and every output returned. Called on the connection's own thread:
/// keep it quick. Passwords (authentication, ``SSHShell/sendSecret(_:_:timeout:)``) are never passed.
public typealias SSHTranscriptHook = @Sendable (SSHTranscriptEvent) -> Void

/// Everything needed to open an SSH connection.
public struct SSHConnectOptions: Sendable {
    /// Host name or address.
    public var host: String
    /// TCP port.
    public var port: Int
    /// Remote user.
    public var user: String
    /// Credentials.
    public var authentication: SSHAuthentication
    /// Host key verification (always on).
    public var hostKeyPolicy: HostKeyPolicy
    /// Deadline for TCP connect, SSH handshake and authentication together.
    public var connectTimeout: Duration
    /// Interval of SSH keepalive messages on an idle connection (`nil`: none).
    public var keepaliveInterval: Duration?
    /// An upload or download fails if no byte moves for this long.
    public var transferStallTimeout: Duration
    /// Logger (label `dts.ssh` by default).
    public var logger: Logger
    /// Optional transcript of commands and outputs (for per-case logs).
    public var transcript: SSHTranscriptHook?
    /// Whether a new channel (exec, shell, SFTP) waits until no command or SFTP process of this
    /// connection is running on the server. `nil` (default) turns it on for dropbear 2022.82 to
    /// 2024.85, which drop the whole connection if a session child exits while another channel is
    /// between open and its exec/shell request (mkj/dropbear#321; Debian 12 ships 2022.83).
    public var serializeChannelSetup: Bool?

    /// Options with defaults: 10 s connect timeout, 30 s keepalive, 60 s transfer stall timeout.
    public init(
        host: String, port: Int = 22, user: String, authentication: SSHAuthentication,
        hostKeyPolicy: HostKeyPolicy, connectTimeout: Duration = .seconds(10),
        keepaliveInterval: Duration? = .seconds(30), transferStallTimeout: Duration = .seconds(60),
        logger: Logger = Logger(label: "dts.ssh"), transcript: SSHTranscriptHook? = nil,
        serializeChannelSetup: Bool? = nil
    ) {
        self.serializeChannelSetup = serializeChannelSetup
        self.host = host
        self.port = port
        self.user = user
        self.authentication = authentication
        self.hostKeyPolicy = hostKeyPolicy
        self.connectTimeout = connectTimeout
        self.keepaliveInterval = keepaliveInterval
        self.transferStallTimeout = transferStallTimeout
        self.logger = logger
        self.transcript = transcript
    }

    /// `host:port` (IPv6 addresses in brackets).
    public var hostPort: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    /// `user@host:port`.
    public var endpoint: String { "\(user)@\(hostPort)" }
}

/// How an interactive shell is prepared.
public struct SSHShellOptions: Sendable {
    /// How the end of a command's output is recognized.
    public enum PromptSetup: Sendable, Equatable {
        /// Disable echo and line editing, and set `PS1` to a random marker such as `dts-3fa9c2d1# `
        /// (POSIX shells: bash, busybox sh). The default: no assumption about the DUT's own prompt.
        case uniqueMarker
        /// Keep the shell as it is and wait for this prompt after opening.
        case existing(Expectation)
        /// Do nothing after opening (the caller expects what it needs).
        case none
    }
    /// Terminal type for the PTY (`dumb` or `vt100`).
    public var terminal: String
    /// PTY width in columns (wide, so long command lines do not wrap).
    public var columns: Int32
    /// PTY height in rows.
    public var rows: Int32
    /// Prompt handling.
    public var promptSetup: PromptSetup
    /// Deadline for opening the shell and setting up the prompt.
    public var openTimeout: Duration

    /// Defaults: `dumb` terminal, 4000×50, unique marker prompt, 10 s.
    public init(terminal: String = "dumb", columns: Int32 = 4000, rows: Int32 = 50,
                promptSetup: PromptSetup = .uniqueMarker, openTimeout: Duration = .seconds(10)) {
        self.terminal = terminal
        self.columns = columns
        self.rows = rows
        self.promptSetup = promptSetup
        self.openTimeout = openTimeout
    }
}
