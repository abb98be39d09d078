import DTSSession

/// Everything the SSH layer can fail with. Each case names the endpoint (`user@host:port` or
/// `host:port`) and, where it matters, what was being waited for and the output received so far.
public enum SSHError: PartialOutputError, Sendable, Equatable, CustomStringConvertible {
    /// The TCP connection (plus SSH handshake and authentication) did not finish in time.
    case connectTimeout(hostPort: String, after: Duration)
    /// The TCP connection was refused (nothing listens on the port).
    case connectionRefused(hostPort: String)
    /// The TCP connection failed for another reason (unknown host, unreachable, ...).
    case connectFailed(hostPort: String, reason: String)
    /// The SSH handshake (key exchange) failed.
    case handshakeFailed(hostPort: String, reason: String)
    /// The server rejected the credentials; `method` is `password`, `publickey` or `keyboard-interactive`.
    case authenticationFailed(endpoint: String, method: String, reason: String)
    /// The server's host key differs from the one recorded in `knownHosts`.
    case hostKeyMismatch(hostPort: String, knownFingerprint: String, presentedFingerprint: String, knownHosts: String)
    /// Strict host-key checking found no entry for this host and port.
    case hostKeyUnknown(hostPort: String, presentedFingerprint: String, knownHosts: String)
    /// The known-hosts file could not be read or written.
    case knownHostsFailed(path: String, reason: String)
    /// An operation did not complete before its deadline; `partialOutput` is what arrived meanwhile.
    case timeout(endpoint: String, operation: String, after: Duration, partialOutput: String)
    /// The peer closed the channel (the shell or command ended) while we waited for something.
    case channelClosed(endpoint: String, waitingFor: String, partialOutput: String)
    /// The connection broke (socket error, server gone) during `operation`.
    case connectionLost(endpoint: String, operation: String, reason: String, partialOutput: String)
    /// A channel could not be opened or a request on it failed.
    case channelFailed(endpoint: String, operation: String, reason: String)
    /// An SFTP operation failed on `path`.
    case sftpFailed(endpoint: String, operation: String, path: String, reason: String)
    /// A local file could not be read or written.
    case localFileFailed(path: String, reason: String)
    /// The connection was already closed by `close()`.
    case closed(endpoint: String)
    /// The shell is already running another operation (one task per shell at a time).
    case shellBusy(endpoint: String)
    /// The regular expression given to `sendExpect` does not compile.
    case invalidRegex(pattern: String, reason: String)

    /// A one-line message naming what failed and where.
    public var description: String {
        switch self {
        case .connectTimeout(let hp, let after):
            return "connect to \(hp) timed out after \(after.secondsText)"
        case .connectionRefused(let hp):
            return "connection refused by \(hp)"
        case .connectFailed(let hp, let reason):
            return "connect to \(hp) failed: \(reason)"
        case .handshakeFailed(let hp, let reason):
            return "SSH handshake with \(hp) failed: \(reason)"
        case .authenticationFailed(let ep, let method, let reason):
            return "auth failed for \(ep) (\(method))" + (reason.isEmpty ? "" : ": \(reason)")
        case .hostKeyMismatch(let hp, let known, let presented, let file):
            return "host key mismatch for \(hp): known \(known) (in \(file)), server presented \(presented)"
        case .hostKeyUnknown(let hp, let presented, let file):
            return "host key of \(hp) (\(presented)) is not in \(file) and host key checking is strict"
        case .knownHostsFailed(let path, let reason):
            return "known-hosts file \(path): \(reason)"
        case .timeout(let ep, let op, let after, let partial):
            return "\(op) on \(ep) timed out after \(after.secondsText)" + partialSuffix(partial)
        case .channelClosed(let ep, let waiting, let partial):
            return "channel closed by peer while waiting for \(waiting) on \(ep)" + partialSuffix(partial)
        case .connectionLost(let ep, let op, let reason, let partial):
            return "connection to \(ep) lost during \(op): \(reason)" + partialSuffix(partial)
        case .channelFailed(let ep, let op, let reason):
            return "\(op) on \(ep) failed: \(reason)"
        case .sftpFailed(let ep, let op, let path, let reason):
            return "SFTP \(op) of \(path) on \(ep) failed: \(reason)"
        case .localFileFailed(let path, let reason):
            return "local file \(path): \(reason)"
        case .closed(let ep):
            return "connection \(ep) is closed"
        case .shellBusy(let ep):
            return "shell on \(ep) is busy with another operation"
        case .invalidRegex(let pattern, let reason):
            return "invalid regular expression /\(pattern)/: \(reason)"
        }
    }

    /// A broken connection reported by the connection (operation `session`) as a failure of
    /// `operation`, with the output it had received; any other error unchanged.
    func reported(for operation: String, partialOutput: String) -> SSHError {
        guard case .connectionLost(let endpoint, _, let reason, _) = self else { return self }
        return .connectionLost(endpoint: endpoint, operation: operation, reason: reason, partialOutput: partialOutput)
    }

    /// The output received before the error, for timeouts, closed channels and lost connections.
    public var partialOutput: String? {
        switch self {
        case .timeout(_, _, _, let p), .channelClosed(_, _, let p), .connectionLost(_, _, _, let p): return p
        default: return nil
        }
    }
}

private func partialSuffix(_ partial: String) -> String {
    if partial.isEmpty { return " (no output)" }
    let tail = partial.count > 200 ? "…" + String(partial.suffix(200)) : partial
    return "; output so far: \(tail.debugDescription)"
}
