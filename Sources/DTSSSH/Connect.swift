import CLibSSH2
import DTSSession
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension ConnectionCore {
    /// TCP connect, handshake, host key verification and authentication, all before `deadline`.
    /// Runs on the connection thread before any operation exists, so it may wait in `poll` itself.
    func establish() throws {
        let deadline = ContinuousClock.now + options.connectTimeout
        try connectSocket(deadline: deadline)

        let abstract = Unmanaged.passUnretained(self).toOpaque()
        guard let session = libssh2_session_init_ex(nil, nil, nil, abstract) else {
            throw SSHError.handshakeFailed(hostPort: options.hostPort, reason: "libssh2_session_init_ex failed")
        }
        self.session = session
        libssh2_session_set_blocking(session, 0)

        try retry(deadline: deadline, stage: "handshake") { libssh2_session_handshake(session, self.sock) } onError: { _ in
            SSHError.handshakeFailed(hostPort: self.options.hostPort, reason: self.lastErrorMessage())
        }
        if let banner = libssh2_session_banner_get(session) { serverBanner = String(cString: banner) }
        serializeSetups = options.serializeChannelSetup ?? ServerQuirks.dropsChannelsOnChildExit(banner: serverBanner)
        if serializeSetups { logger.debug("\(serverBanner): channel setups wait for running commands (dropbear#321)") }
        try verifyHostKey()
        try authenticate(deadline: deadline)
        if let interval = options.keepaliveInterval {
            let seconds = max(1, interval.components.seconds)
            libssh2_keepalive_config(session, 1, UInt32(clamping: seconds))
        }
        logger.debug("SSH connected to \(endpoint) (\(options.authentication.methodName))")
    }

    private func connectSocket(deadline: ContinuousClock.Instant) throws {
        let hostPort = options.hostPort
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let gai = getaddrinfo(options.host, String(options.port), &hints, &list)
        guard gai == 0, let first = list else {
            throw SSHError.connectFailed(hostPort: hostPort, reason: "cannot resolve \(options.host): \(String(cString: gai_strerror(gai)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = SSHError.connectFailed(hostPort: hostPort, reason: "no address")
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let ai = entry {
            entry = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd < 0 { continue }
            var rc = connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen)
            if rc < 0 && errno == EINPROGRESS {
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                while true {
                    let now = ContinuousClock.now
                    if now >= deadline {
                        close(fd)
                        throw SSHError.connectTimeout(hostPort: hostPort, after: options.connectTimeout)
                    }
                    let r = poll(&pfd, 1, Int32(min(1000, milliseconds(until: deadline, from: now))))
                    if r > 0 { break }
                    if r < 0 && errno != EINTR { break }
                }
                var soError: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
                rc = soError == 0 ? 0 : -1
                errno = soError
            }
            if rc == 0 {
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                sock = fd
                return
            }
            let err = errno
            close(fd)
            lastError = err == ECONNREFUSED
                ? .connectionRefused(hostPort: hostPort)
                : .connectFailed(hostPort: hostPort, reason: String(cString: strerror(err)))
        }
        throw lastError
    }

    /// Waits until the socket is ready in the directions libssh2 asked for, or throws a connect timeout.
    func waitSocket(deadline: ContinuousClock.Instant) throws {
        let now = ContinuousClock.now
        if now >= deadline { throw SSHError.connectTimeout(hostPort: options.hostPort, after: options.connectTimeout) }
        var events: Int16 = 0
        let dirs = session.map { libssh2_session_block_directions($0) } ?? 0
        if dirs & LIBSSH2_SESSION_BLOCK_INBOUND != 0 { events |= Int16(POLLIN) }
        if dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { events |= Int16(POLLOUT) }
        if events == 0 { events = Int16(POLLIN) }
        var pfd = pollfd(fd: sock, events: events, revents: 0)
        _ = poll(&pfd, 1, Int32(min(1000, milliseconds(until: deadline, from: now))))
    }

    /// Calls `call` until it stops returning `EAGAIN`; a negative result becomes `onError`.
    func retry(deadline: ContinuousClock.Instant, stage: String, _ call: () -> Int32, onError: (Int32) -> SSHError) throws {
        while true {
            let rc = call()
            if rc == LIBSSH2_ERROR_EAGAIN {
                try waitSocket(deadline: deadline)
                continue
            }
            if rc < 0 { throw onError(rc) }
            return
        }
    }

    private func verifyHostKey() throws {
        guard let session else { return }
        var length = 0
        var type: Int32 = 0
        guard let key = libssh2_session_hostkey(session, &length, &type) else {
            throw SSHError.handshakeFailed(hostPort: options.hostPort, reason: "server sent no host key")
        }
        let blob = [UInt8](UnsafeRawBufferPointer(start: key, count: length))
        try KnownHosts.verify(
            session: session, host: options.host, port: options.port, hostPort: options.hostPort,
            keyBlob: blob, keyType: type, policy: options.hostKeyPolicy, logger: logger)
    }

    private func authenticate(deadline: ContinuousClock.Instant) throws {
        guard let session else { return }
        let user = options.user
        let userLength = UInt32(user.utf8.count)
        let method = options.authentication.methodName
        let endpoint = self.endpoint
        let authError: (Int32) -> SSHError = { rc in
            if self.isFatal(rc) {
                return .connectionLost(endpoint: endpoint, operation: "authentication", reason: self.lastErrorMessage(), partialOutput: "")
            }
            return .authenticationFailed(endpoint: endpoint, method: method, reason: Self.rejection(method: method, user: user))
        }
        // What the server offers this user (asking is the "none" method, which some servers accept).
        guard let offered = try offeredMethods(user: user, deadline: deadline, onError: authError) else { return }
        guard offered.contains(method) else {
            throw SSHError.authenticationFailed(endpoint: endpoint, method: method,
                                                reason: "the server does not accept \(method) authentication (it offers: \(offered.joined(separator: ", ")))")
        }
        switch options.authentication {
        case .password(let password):
            try retry(deadline: deadline, stage: "auth") {
                libssh2_userauth_password_ex(session, user, userLength, password, UInt32(password.utf8.count), nil)
            } onError: { authError($0) }
        case .publicKeyFile(let privateKey, let publicKey, let passphrase):
            guard access(privateKey, R_OK) == 0 else {
                throw SSHError.authenticationFailed(endpoint: endpoint, method: method, reason: "cannot read private key \(privateKey)")
            }
            try retry(deadline: deadline, stage: "auth") {
                libssh2_userauth_publickey_fromfile_ex(session, user, userLength, publicKey, privateKey, passphrase)
            } onError: { authError($0) }
        case .keyboardInteractive(let password):
            kbdPassword = Array(password.utf8CString)
            defer { kbdPassword = [] }
            try retry(deadline: deadline, stage: "auth") {
                libssh2_userauth_keyboard_interactive_ex(session, user, userLength, keyboardInteractiveResponder)
            } onError: { authError($0) }
        }
    }
}

extension ConnectionCore {
    /// The authentication methods the server lists for `user`, or `nil` if it let the user in
    /// without any.
    fileprivate func offeredMethods(user: String, deadline: ContinuousClock.Instant, onError: (Int32) -> SSHError) throws -> [String]? {
        guard let session else { return nil }
        while true {
            if let list = libssh2_userauth_list(session, user, UInt32(user.utf8.count)) {
                return String(cString: list).split(separator: ",").map(String.init)
            }
            if libssh2_userauth_authenticated(session) != 0 { return nil }
            let rc = libssh2_session_last_errno(session)
            guard rc == LIBSSH2_ERROR_EAGAIN else { throw onError(rc) }
            try waitSocket(deadline: deadline)
        }
    }

    /// Why the server refused `user` with `method`, as far as anyone can tell: SSH servers answer
    /// an unknown user exactly as a wrong password (or key), so the message names both.
    static func rejection(method: String, user: String) -> String {
        switch method {
        case "publickey": return "the key was refused: it is not authorized for '\(user)', or there is no user '\(user)' on the server (SSH servers do not say which)"
        default: return "the password is wrong, or there is no user '\(user)' on the server (SSH servers do not say which)"
        }
    }
}

/// Answers every keyboard-interactive prompt with the configured password. libssh2 frees the
/// response texts with `free` (default allocator), so they are `strdup`ed.
private let keyboardInteractiveResponder: @convention(c) (
    UnsafePointer<CChar>?, Int32, UnsafePointer<CChar>?, Int32, Int32,
    UnsafePointer<LIBSSH2_USERAUTH_KBDINT_PROMPT>?, UnsafeMutablePointer<LIBSSH2_USERAUTH_KBDINT_RESPONSE>?,
    UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> Void = { _, _, _, _, count, _, responses, abstract in
    guard let responses, let abstract, let raw = abstract.pointee, count > 0 else { return }
    let core = Unmanaged<ConnectionCore>.fromOpaque(raw).takeUnretainedValue()
    for i in 0..<Int(count) {
        core.kbdPassword.withUnsafeBufferPointer { buffer in
            let copy = strdup(buffer.baseAddress!)
            responses[i].text = copy
            responses[i].length = UInt32(strlen(copy!))
        }
    }
}

/// Known server bugs that change how channels are used.
enum ServerQuirks {
    /// Dropbear 2022.82 up to 2024.85 close a channel that has no process yet when another session
    /// child exits, then abort the connection when that channel's command writes (mkj/dropbear#321).
    static func dropsChannelsOnChildExit(banner: String) -> Bool {
        guard let range = banner.range(of: "dropbear_") else { return false }
        let version = banner[range.upperBound...].prefix { $0.isNumber || $0 == "." }
        let parts = version.split(separator: ".").compactMap { Int($0) }
        guard parts.count >= 2 else { return true }
        let number = parts[0] * 1000 + parts[1]
        return number >= 2022_082 && number < 2024_086
    }
}

/// Known-hosts verification with libssh2's knownhost API, serialized process-wide because
/// several connections may share one file.
enum KnownHosts {
    private static let fileLock = Mutex(())

    static func verify(
        session: OpaquePointer, host: String, port: Int, hostPort: String, keyBlob: [UInt8], keyType: Int32,
        policy: HostKeyPolicy, logger: Logger
    ) throws {
        let path = policy.knownHostsPath
        guard let presented = Fingerprint.presented(by: session) else {
            throw SSHError.handshakeFailed(hostPort: hostPort, reason: "libssh2 has no SHA-256 hash of the host key")
        }
        try fileLock.withLock { _ in
            guard let hosts = libssh2_knownhost_init(session) else {
                throw SSHError.knownHostsFailed(path: path, reason: "libssh2_knownhost_init failed")
            }
            defer { libssh2_knownhost_free(hosts) }
            if FileManager.default.fileExists(atPath: path) {
                let rc = libssh2_knownhost_readfile(hosts, path, LIBSSH2_KNOWNHOST_FILE_OPENSSH)
                if rc < 0 { throw SSHError.knownHostsFailed(path: path, reason: "cannot parse (libssh2 error \(rc))") }
            }
            let keyBits: Int32 = (keyType + 1) << LIBSSH2_KNOWNHOST_KEY_SHIFT
            let typemask = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | keyBits
            var found: UnsafeMutablePointer<libssh2_knownhost>?
            let check = keyBlob.withUnsafeBufferPointer { blob in
                blob.withMemoryRebound(to: CChar.self) {
                    libssh2_knownhost_checkp(hosts, host, Int32(port), $0.baseAddress, $0.count, typemask, &found)
                }
            }
            switch check {
            case LIBSSH2_KNOWNHOST_CHECK_MATCH:
                return
            case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
                var known = "unknown"
                if let entry = found?.pointee, let keyText = entry.key,
                   let stored = Fingerprint.sha256(ofBase64Key: String(cString: keyText)) {
                    known = stored
                }
                throw SSHError.hostKeyMismatch(hostPort: hostPort, knownFingerprint: known, presentedFingerprint: presented, knownHosts: path)
            case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
                guard policy.recordsUnknown else {
                    throw SSHError.hostKeyUnknown(hostPort: hostPort, presentedFingerprint: presented, knownHosts: path)
                }
                let name = port == 22 ? host : "[\(host)]:\(port)"
                let comment = "dts"
                let rc = keyBlob.withUnsafeBufferPointer { blob in
                    blob.withMemoryRebound(to: CChar.self) {
                        libssh2_knownhost_addc(hosts, name, nil, $0.baseAddress, $0.count, comment, comment.utf8.count, typemask, nil)
                    }
                }
                if rc < 0 { throw SSHError.knownHostsFailed(path: path, reason: "cannot add \(name) (libssh2 error \(rc))") }
                let directory = (path as NSString).deletingLastPathComponent
                if !directory.isEmpty {
                    try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                }
                let wrc = libssh2_knownhost_writefile(hosts, path, LIBSSH2_KNOWNHOST_FILE_OPENSSH)
                if wrc < 0 { throw SSHError.knownHostsFailed(path: path, reason: "cannot write (libssh2 error \(wrc))") }
                logger.info("recorded host key \(presented) for \(hostPort) in \(path)")
            default:
                throw SSHError.knownHostsFailed(path: path, reason: "host key check failed for \(hostPort)")
            }
        }
    }
}
