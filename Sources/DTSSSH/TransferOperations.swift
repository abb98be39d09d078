import CLibSSH2
import DTSSession
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An SFTP upload or download, streamed in chunks through a fixed buffer (any file size), on its own
/// SFTP session so transfers never share SFTP state.
final class TransferOperation: LoopOperation {
    enum Direction { case upload, download }
    private enum Phase { case sftpInit, open, fstat, transfer, verify, setMode, checkPartial, closeHandle, removePartial, sendEOF, waitEOF, waitClosed, shutdown }

    private let direction: Direction
    private let localPath: String
    private let remotePath: String
    private var mode: Int32?
    private let progress: CopyProgress?
    private let stallTimeout: Duration
    private var waiter: OnceContinuation<Void>
    private var phase = Phase.sftpInit
    private var sftp: OpaquePointer?
    private var handle: OpaquePointer?
    private var localFD: Int32 = -1
    /// Bytes handed to libssh2 per call. libssh2 1.10 splits an upload into 30000-byte SFTP writes
    /// and sends all of the buffer's requests at once (the upload keeps it full, see `uploadStep`);
    /// a download asks for up to four times this much ahead.
    static let bufferSize = 70 * 30_000
    private let buffer: UnsafeMutableRawPointer
    private var bufferStart = 0
    private var bufferEnd = 0
    private var localEOF = false
    private var done: Int64 = 0
    private var total: Int64 = 0
    /// Set once a failed upload's remote file was found to be a regular file (so it is removed).
    private var removeRemote = false
    private var partialChecked = false
    private var error: SSHError?
    private var transient = TransientMark()

    init(direction: Direction, localPath: String, remotePath: String, mode: Int32?, progress: CopyProgress?,
         stallTimeout: Duration, continuation: CheckedContinuation<Void, any Error>) {
        self.direction = direction
        self.localPath = localPath
        self.remotePath = remotePath
        self.mode = mode
        self.progress = progress
        self.stallTimeout = stallTimeout
        self.waiter = OnceContinuation(continuation)
        self.buffer = .allocate(byteCount: Self.bufferSize, alignment: 16)
        super.init()
        deadline = ContinuousClock.now + stallTimeout
    }

    deinit {
        buffer.deallocate()
        if localFD >= 0 { close(localFD) }
    }

    private var operationName: String { direction == .upload ? "upload" : "download" }

    /// Opens the local file; called once on the connection thread before stepping.
    func prepare() -> SSHError? {
        switch direction {
        case .upload:
            localFD = open(localPath, O_RDONLY | O_CLOEXEC)
            if localFD < 0 { return .localFileFailed(path: localPath, reason: String(cString: strerror(errno))) }
            var st = stat()
            fstat(localFD, &st)
            total = Int64(st.st_size)
            if mode == nil { mode = Int32(st.st_mode & 0o7777) }
        case .download:
            localFD = open(localPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            if localFD < 0 { return .localFileFailed(path: localPath, reason: String(cString: strerror(errno))) }
        }
        return nil
    }

    private func finish(_ core: ConnectionCore) -> StepResult {
        // The SFTP server process is gone or abandoned: channel opens may proceed.
        transient.release(core)
        if localFD >= 0 {
            if direction == .download, error == nil, let mode { fchmod(localFD, mode_t(mode & 0o7777)) }
            close(localFD)
            localFD = -1
            // A failed download leaves no partial file behind.
            if direction == .download, error != nil { unlink(localPath) }
        }
        if let error {
            waiter.resume(throwing: error)
        } else {
            waiter.resume()
        }
        return .done
    }

    /// Records the first error and moves on to closing the remote handle and the SFTP session.
    private func failSFTP(_ core: ConnectionCore, _ rc: Int32, _ what: String) -> StepResult {
        if error == nil {
            var reason = core.lastErrorMessage()
            if rc == LIBSSH2_ERROR_SFTP_PROTOCOL, let sftp {
                reason = "SFTP status \(libssh2_sftp_last_error(sftp))" + SFTPStatus.describe(libssh2_sftp_last_error(sftp))
            }
            if core.isFatal(rc) {
                error = .connectionLost(endpoint: core.endpoint, operation: "\(operationName) of \(remotePath)", reason: reason, partialOutput: "")
                core.markBroken(reason)
                return finish(core)
            }
            error = .sftpFailed(endpoint: core.endpoint, operation: what, path: remotePath, reason: reason)
        }
        return cleanup(core)
    }

    /// Records a copy that completed at the SFTP level but does not check out.
    private func failCopy(_ core: ConnectionCore, _ what: String, _ reason: String) -> StepResult {
        if error == nil { error = .sftpFailed(endpoint: core.endpoint, operation: what, path: remotePath, reason: reason) }
        return cleanup(core)
    }

    private func cleanup(_ core: ConnectionCore) -> StepResult {
        if direction == .upload, handle != nil, !partialChecked {
            phase = .checkPartial
        } else if handle != nil { phase = .closeHandle } else if sftp != nil { phase = .shutdown } else { return finish(core) }
        deadline = ContinuousClock.now + .seconds(2)
        return .progressed
    }

    private func touched() {
        deadline = ContinuousClock.now + stallTimeout
    }

    override func step(_ core: ConnectionCore) -> StepResult {
        while true {
            switch phase {
            case .sftpInit:
                guard beginExclusiveSetup(core) else { return .blocked }
                guard let session = core.session else { return finish(core) }
                let s = libssh2_sftp_init(session)
                if s == nil {
                    let rc = libssh2_session_last_errno(session)
                    if rc == LIBSSH2_ERROR_EAGAIN { return .blocked }
                    exclusive = false
                    return failSFTP(core, rc, "start")
                }
                exclusive = false
                sftp = s
                transient.mark(core)
                phase = .open
                touched()
            case .open:
                let flags: UInt = direction == .upload
                    ? UInt(LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC)
                    : UInt(LIBSSH2_FXF_READ)
                let createMode = Int(mode ?? 0o644) & 0o777
                let h = remotePath.withCString {
                    libssh2_sftp_open_ex(sftp, $0, UInt32(strlen($0)), flags, createMode, LIBSSH2_SFTP_OPENFILE)
                }
                if h == nil {
                    let rc = libssh2_session_last_errno(core.session)
                    if rc == LIBSSH2_ERROR_EAGAIN { return .blocked }
                    return failSFTP(core, rc, "open")
                }
                handle = h
                phase = direction == .upload ? .transfer : .fstat
                touched()
            case .fstat:
                var attrs = LIBSSH2_SFTP_ATTRIBUTES()
                let rc = libssh2_sftp_fstat_ex(handle, &attrs, 0)
                if rc == LIBSSH2_ERROR_EAGAIN { return .blocked }
                if rc < 0 { return failSFTP(core, rc, "stat") }
                if attrs.flags & UInt(LIBSSH2_SFTP_ATTR_SIZE) != 0 { total = Int64(attrs.filesize) }
                if attrs.flags & UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS) != 0 { mode = Int32(attrs.permissions & 0o7777) }
                phase = .transfer
            case .transfer:
                let result = direction == .upload ? uploadStep(core) : downloadStep(core)
                if let result { return result }
            case .verify:
                // The remote file holds exactly the bytes sent (libssh2 counts only acknowledged writes).
                var attrs = LIBSSH2_SFTP_ATTRIBUTES()
                let rc = libssh2_sftp_fstat_ex(handle, &attrs, 0)
                if rc == LIBSSH2_ERROR_EAGAIN { return .blocked }
                if rc < 0 { return failSFTP(core, rc, "stat") }
                if attrs.flags & UInt(LIBSSH2_SFTP_ATTR_SIZE) != 0, Int64(attrs.filesize) != done {
                    return failCopy(core, "verify", "remote size \(attrs.filesize) after writing \(done) bytes")
                }
                phase = .setMode
            case .setMode:
                var attrs = LIBSSH2_SFTP_ATTRIBUTES()
                attrs.flags = UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS)
                attrs.permissions = UInt(mode ?? 0o644)
                let rc = libssh2_sftp_fstat_ex(handle, &attrs, 1)
                if rc == LIBSSH2_ERROR_EAGAIN { return .blocked }
                if rc < 0 { return failSFTP(core, rc, "chmod") }
                phase = .closeHandle
            case .checkPartial:
                // A failed upload removes its remote file, but only a regular one (never a device
                // or FIFO it was writing to).
                partialChecked = true
                var attrs = LIBSSH2_SFTP_ATTRIBUTES()
                let rc = libssh2_sftp_fstat_ex(handle, &attrs, 0)
                if rc == LIBSSH2_ERROR_EAGAIN { return .blocked }
                if rc < 0 && core.isFatal(rc) {
                    core.markBroken(core.lastErrorMessage())
                    return finish(core)
                }
                let isRegular = attrs.flags & UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS) != 0
                    && attrs.permissions & UInt(LIBSSH2_SFTP_S_IFMT) == UInt(LIBSSH2_SFTP_S_IFREG)
                removeRemote = rc == 0 && isRegular
                phase = .closeHandle
            case .closeHandle:
                let rc = libssh2_sftp_close_handle(handle)
                if rc == LIBSSH2_ERROR_EAGAIN { return .blocked }
                handle = nil
                if rc < 0 && error == nil {
                    return failSFTP(core, rc, "close")
                }
                phase = removeRemote ? .removePartial : .sendEOF
            case .removePartial:
                let rc = remotePath.withCString { libssh2_sftp_unlink_ex(sftp, $0, UInt32(strlen($0))) }
                if rc == LIBSSH2_ERROR_EAGAIN { return .blocked }
                if rc < 0 {
                    core.logger.warning("\(core.endpoint): could not remove the partial upload \(remotePath): \(core.lastErrorMessage())")
                    if core.isFatal(rc) {
                        core.markBroken(core.lastErrorMessage())
                        return finish(core)
                    }
                }
                phase = .sendEOF
            case .sendEOF, .waitEOF, .waitClosed:
                // End the server's sftp-server (EOF on its stdin) and wait until it is gone, so the
                // channel stops counting as one whose process may exit (see ServerQuirks).
                guard let channel = libssh2_sftp_get_channel(sftp) else {
                    phase = .shutdown
                    continue
                }
                let rc: Int32
                switch phase {
                case .sendEOF: rc = libssh2_channel_send_eof(channel)
                case .waitEOF: rc = libssh2_channel_wait_eof(channel)
                default: rc = libssh2_channel_wait_closed(channel)
                }
                if rc == LIBSSH2_ERROR_EAGAIN { return .blocked }
                if rc < 0 {
                    phase = .shutdown
                    continue
                }
                phase = phase == .sendEOF ? .waitEOF : phase == .waitEOF ? .waitClosed : .shutdown
            case .shutdown:
                let rc = libssh2_sftp_shutdown(sftp)
                if rc == LIBSSH2_ERROR_EAGAIN { return .blocked }
                sftp = nil
                if error == nil {
                    core.record(direction == .upload ? .upload : .download,
                                direction == .upload ? "\(localPath) -> \(remotePath) (\(done) bytes)" : "\(remotePath) -> \(localPath) (\(done) bytes)")
                }
                return finish(core)
            }
        }
    }

    /// One round of upload; `nil` means the phase changed (continue the state machine).
    /// The buffer holds the bytes from the first unacknowledged one on; libssh2 has already sent
    /// requests for part of them and returns how many were acknowledged. It is topped up from the
    /// file before every call, so requests stay in flight without a pause at each buffer's end.
    private func uploadStep(_ core: ConnectionCore) -> StepResult? {
        var moved = false
        while true {
            if !localEOF && bufferStart >= Self.bufferSize / 2 {
                memmove(buffer, buffer + bufferStart, bufferEnd - bufferStart)
                bufferEnd -= bufferStart
                bufferStart = 0
            }
            if !localEOF && bufferEnd < Self.bufferSize {
                let n = read(localFD, buffer + bufferEnd, Self.bufferSize - bufferEnd)
                if n < 0 {
                    if errno == EINTR { continue }
                    error = .localFileFailed(path: localPath, reason: String(cString: strerror(errno)))
                    return cleanup(core)
                }
                if n == 0 { localEOF = true }
                bufferEnd += n
            }
            if bufferStart == bufferEnd {
                guard localEOF else { continue }
                phase = .verify
                return nil
            }
            let rc = libssh2_sftp_write(handle, buffer.assumingMemoryBound(to: CChar.self) + bufferStart, bufferEnd - bufferStart)
            if rc == Int(LIBSSH2_ERROR_EAGAIN) { return moved ? .progressed : .blocked }
            if rc < 0 { return failSFTP(core, Int32(rc), "write") }
            bufferStart += rc
            done += Int64(rc)
            moved = true
            touched()
            progress?(done, total)
        }
    }

    private func downloadStep(_ core: ConnectionCore) -> StepResult? {
        var moved = false
        while true {
            let rc = libssh2_sftp_read(handle, buffer.assumingMemoryBound(to: CChar.self), Self.bufferSize)
            if rc == Int(LIBSSH2_ERROR_EAGAIN) { return moved ? .progressed : .blocked }
            if rc < 0 { return failSFTP(core, Int32(rc), "read") }
            if rc == 0 {
                // Fewer bytes than the size the server reported at open: the file was cut short.
                if done < total { return failCopy(core, "verify", "read \(done) of \(total) bytes") }
                phase = .closeHandle
                return nil
            }
            var written = 0
            while written < rc {
                let w = write(localFD, buffer + written, rc - written)
                if w < 0 {
                    if errno == EINTR { continue }
                    error = .localFileFailed(path: localPath, reason: String(cString: strerror(errno)))
                    return cleanup(core)
                }
                written += w
            }
            done += Int64(rc)
            moved = true
            touched()
            progress?(done, max(total, done))
        }
    }

    override func expire(_ core: ConnectionCore) -> Bool {
        if error == nil {
            error = .timeout(endpoint: core.endpoint, operation: "\(operationName) of \(remotePath) (no progress, \(done) bytes done)",
                             after: stallTimeout, partialOutput: "")
        }
        // Resume now; the remote handle and SFTP channel are freed with the session.
        _ = finish(core)
        return true
    }

    override func abort(_ core: ConnectionCore, reason: SSHError) {
        if error == nil {
            error = reason.reported(for: "\(operationName) of \(remotePath)", partialOutput: "")
        }
        _ = finish(core)
    }
}

/// SFTP status codes (draft-ietf-secsh-filexfer-02).
enum SFTPStatus {
    static func describe(_ code: UInt) -> String {
        switch code {
        case 2: return " (no such file)"
        case 3: return " (permission denied)"
        case 4: return " (failure)"
        case 5: return " (bad message)"
        case 7: return " (connection lost)"
        case 8: return " (operation unsupported)"
        default: return ""
        }
    }
}
