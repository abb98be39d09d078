import DTSProcess
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An error of a session on the machine dts runs on.
public enum LocalSessionError: Error, Sendable, CustomStringConvertible {
    /// A program could not be started.
    case spawnFailed(program: String, errno: Int32)
    /// `exec` did not finish in time; the command's process group was killed. Carries the output so far.
    case timeout(command: String, after: Duration, stdout: String, stderr: String)
    /// `sendExpect` did not see what it expected in time. Carries the output so far.
    case expectTimeout(command: String, expected: Expectation, after: Duration, output: String)
    /// The shell exited (or was closed) while waiting for output.
    case shellExited(command: String, output: String)
    /// Two operations were started at once on one shell.
    case shellBusy
    /// A regular expression given to `sendExpect` is invalid.
    case invalidRegex(String)
    /// A file operation failed.
    case io(operation: String, path: String, errno: Int32)
    /// The PTY could not be set up.
    case pty(step: String, errno: Int32)

    public var description: String {
        switch self {
        case .spawnFailed(let program, let errno):
            return "local: cannot start \(program): \(String(cString: strerror(errno)))"
        case .timeout(let command, let after, let stdout, let stderr):
            return "local: '\(command)' did not finish within \(after); killed. stdout so far: \(Self.tail(stdout)) stderr so far: \(Self.tail(stderr))"
        case .expectTimeout(let command, let expected, let after, let output):
            return "local shell: \(expected) not seen within \(after) after '\(command)'; output so far: \(Self.tail(output))"
        case .shellExited(let command, let output):
            return "local shell exited while running '\(command)'; output so far: \(Self.tail(output))"
        case .shellBusy:
            return "local shell: another operation is in progress on this shell"
        case .invalidRegex(let pattern):
            return "invalid regular expression /\(pattern)/"
        case .io(let operation, let path, let errno):
            return "local: \(operation) \(path): \(String(cString: strerror(errno)))"
        case .pty(let step, let errno):
            return "local shell: \(step) failed: \(String(cString: strerror(errno)))"
        }
    }

    static func tail(_ text: String, limit: Int = 2000) -> String {
        let quoted = text.count > limit ? "…" + String(text.suffix(limit)) : text
        return "'" + quoted + "'"
    }
}

/// A ``DUTSession`` on the machine dts itself runs on: the host DUT when `crbs.cfg` names
/// `127.0.0.1` or `localhost`.
///
/// `exec` runs `/bin/sh -c command` in a new session (its own process group) with output captured
/// in unlinked temporary files, so big outputs never block; a timeout or a cancelled task kills
/// every process of that session. `openShell()` starts bash on a real PTY (see ``LocalShell``).
/// No call blocks Swift's cooperative thread pool: waits happen on Dispatch threads.
public final class LocalSession: DUTSession {
    public let endpoint: String
    private let log: (any SessionLogSink)?
    private let redactor: Redactor
    private let shells = ShellList()

    /// Creates a session. Nothing is started until a method is called.
    /// - Parameters:
    ///   - endpoint: the name used in logs and errors.
    ///   - log: where commands and outputs are recorded.
    ///   - redactor: removes secrets from logged text.
    public init(endpoint: String = "localhost", log: (any SessionLogSink)? = nil, redactor: Redactor = .shared) {
        self.endpoint = endpoint
        self.log = log
        self.redactor = redactor
    }

    /// Whether this session records its commands to a log sink.
    public var isLogging: Bool { log != nil }
    /// Where this session logs, if it does.
    public var sessionLog: (any SessionLogSink)? { log }

    public func exec(_ command: String, timeout: Duration) async throws -> ExecResult {
        log?.record(endpoint, .command, command, redactor: redactor)
        let out = try CaptureFile(), err = try CaptureFile()
        defer { out.close(); err.close() }
        let child = try Self.spawn(["/bin/sh", "-c", command], SpawnOptions(
            processGroup: .newSession, standardInput: .null, standardOutput: .descriptor(out.fd), standardError: .descriptor(err.fd)))
        // On timeout or cancellation every process of the command's session is killed.
        let exited = await child.waitForExit(timeout: timeout)
        let status: Int32
        if let exited {
            status = exited
        } else {
            child.signal(SIGKILL)
            status = await child.waitForExit()
        }
        let result = ExecResult(status: status, stdout: out.readAll(), stderr: err.readAll())
        if !result.stdout.isEmpty { log?.record(endpoint, .output, result.output, redactor: redactor) }
        if !result.stderr.isEmpty { log?.record(endpoint, .errorOutput, result.errorOutput, redactor: redactor) }
        if exited != nil {
            log?.record(endpoint, .status, "exit status \(result.status)", redactor: redactor)
            return result
        }
        if Task.isCancelled {
            log?.record(endpoint, .status, "cancelled; process group killed", redactor: redactor)
            throw CancellationError()
        }
        log?.record(endpoint, .status, "timed out after \(timeout); process group killed", redactor: redactor)
        throw LocalSessionError.timeout(command: redactor.redact(command), after: timeout,
                                        stdout: result.output, stderr: result.errorOutput)
    }

    public func openShell() async throws -> any InteractiveSession {
        try await openLocalShell()
    }

    /// Starts a child, reporting a failure as ``LocalSessionError/spawnFailed(program:errno:)``.
    static func spawn(_ argv: [String], _ options: SpawnOptions) throws(LocalSessionError) -> ChildProcess {
        do throws(SpawnError) {
            return try ChildProcess.spawn(argv, options)
        } catch {
            throw .spawnFailed(program: argv.first ?? "", errno: error.code)
        }
    }

    /// Opens a shell and returns it with its concrete type (for ``LocalShell/prompt`` and ``LocalShell/run(_:timeout:)``).
    public func openLocalShell() async throws -> LocalShell {
        let shell = try LocalShell(endpoint: endpoint, log: log, redactor: redactor)
        shells.add(shell)
        do {
            try await shell.waitForFirstPrompt()
        } catch {
            await shell.close()
            throw error
        }
        return shell
    }

    public func upload(localPath: String, remotePath: String, mode: Int32?, progress: CopyProgress?) async throws {
        log?.record(endpoint, .transfer, "upload \(localPath) -> \(remotePath)", redactor: redactor)
        try await LocalCopy.copy(from: localPath, to: remotePath, mode: mode, progress: progress)
    }

    public func download(remotePath: String, localPath: String, progress: CopyProgress?) async throws {
        log?.record(endpoint, .transfer, "download \(remotePath) -> \(localPath)", redactor: redactor)
        try await LocalCopy.copy(from: remotePath, to: localPath, mode: nil, progress: progress)
    }

    public func close() async {
        for shell in shells.takeAll() { await shell.close() }
    }
}

/// The shells a session opened, closed with it.
private final class ShellList: @unchecked Sendable {
    private let lock = NSLock()
    private var shells: [LocalShell] = []
    func add(_ shell: LocalShell) { lock.lock(); shells.append(shell); lock.unlock() }
    func takeAll() -> [LocalShell] { lock.lock(); defer { lock.unlock() }; let all = shells; shells = []; return all }
}

// MARK: - Interactive shell on a PTY

/// An interactive bash (or sh) on a real pseudo-terminal, for DTS-style `sendExpect`.
///
/// The shell runs as a session leader with the PTY as its controlling terminal, so Ctrl-C
/// reaches the foreground job like at a keyboard. Terminal echo and line editing are off, so the
/// output returned is only what commands print; a program that echoes input itself (testpmd) has its
/// echo of the command removed. The prompt is set to a unique marker ending in `# ` (``prompt``), so
/// DTS's habit of expecting `"# "` works and ``run(_:timeout:)`` can wait for the real prompt.
public final class LocalShell: InteractiveSession, @unchecked Sendable {
    /// The shell's prompt, unique to this shell (e.g. `dts-3f9a1c02# `).
    public let prompt: String
    private let endpoint: String
    private let log: (any SessionLogSink)?
    private let redactor: Redactor
    private let master: Int32
    private let child: ChildProcess

    private let lock = NSLock()
    private var buffer = ""
    private var pending: [UInt8] = []
    private var eof = false
    private var closed = false
    private var waiter: Waiter?
    private var busy = false

    private final class Waiter {
        let id = UUID()
        let command: String
        let expected: Expectation
        let regex: NSRegularExpression?
        let timeout: Duration
        let continuation: CheckedContinuation<String, any Error>
        init(command: String, expected: Expectation, regex: NSRegularExpression?, timeout: Duration,
             continuation: CheckedContinuation<String, any Error>) {
            self.command = command; self.expected = expected; self.regex = regex
            self.timeout = timeout; self.continuation = continuation
        }
    }

    init(endpoint: String, log: (any SessionLogSink)?, redactor: Redactor) throws {
        self.endpoint = endpoint + " (shell)"
        self.log = log
        self.redactor = redactor
        self.prompt = "dts-" + String(UInt32.random(in: 0x1000_0000...UInt32.max), radix: 16) + "# "

        let master = LibC.posixOpenpt(O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard master >= 0 else { throw LocalSessionError.pty(step: "posix_openpt", errno: errno) }
        guard LibC.grantpt(master) == 0, LibC.unlockpt(master) == 0 else {
            let e = errno; Glibc.close(master); throw LocalSessionError.pty(step: "grantpt/unlockpt", errno: e)
        }
        var nameBuffer = [CChar](repeating: 0, count: 128)
        guard LibC.ptsnameR(master, &nameBuffer, nameBuffer.count) == 0 else {
            let e = errno; Glibc.close(master); throw LocalSessionError.pty(step: "ptsname_r", errno: e)
        }
        let slavePath = String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // No echo, canonical mode: what the shell prints is all we read.
        var attributes = termios()
        if tcgetattr(master, &attributes) == 0 {
            attributes.c_lflag &= ~tcflag_t(ECHO | ECHOE | ECHOK | ECHONL)
            _ = tcsetattr(master, TCSANOW, &attributes)
        }
        let bash = FileManager.default.isExecutableFile(atPath: "/bin/bash")
        let argv = bash ? ["/bin/bash", "--noprofile", "--norc", "--noediting", "-i"] : ["/bin/sh", "-i"]
        var environment = ProcessInfo.processInfo.environment
        environment["TERM"] = "dumb"
        environment["PS1"] = "$ "
        environment.removeValue(forKey: "PROMPT_COMMAND")
        do {
            // The slave side as standard input makes the PTY the new session's controlling terminal.
            child = try LocalSession.spawn(argv, SpawnOptions(environment: environment, processGroup: .newSession,
                                                              standardInput: .open(slavePath, flags: O_RDWR),
                                                              standardOutput: .sameAs(0), standardError: .sameAs(0)))
        } catch {
            Glibc.close(master)
            throw error
        }
        self.master = master
        let reader = Thread { [self] in self.readLoop() }
        reader.name = "dts-local-shell-reader"
        reader.start()
    }

    /// Sets the prompt and waits for it.
    func waitForFirstPrompt() async throws {
        // The marker is split in the command so that an echo could never match it.
        let marker = prompt.dropLast(2)
        let head = marker.prefix(6), rest = marker.dropFirst(6)
        let setup = "PS1='\(head)''\(rest)# '; PS2=''; unset PROMPT_COMMAND HISTFILE; stty -echo 2>/dev/null"
        _ = try await sendExpectRaw(setup, .literal(prompt), timeout: .seconds(15), logCommand: false)
    }

    public func sendExpect(_ command: String, _ expected: Expectation, timeout: Duration) async throws -> String {
        try await sendExpectRaw(command, expected, timeout: timeout, logCommand: true)
    }

    /// Runs `command` and waits for this shell's own prompt; returns the output (DTS's `send_expect(cmd, "# ")`).
    public func run(_ command: String, timeout: Duration) async throws -> String {
        try await sendExpect(command, .literal(prompt), timeout: timeout)
    }

    public func sendCommand(_ command: String, timeout: Duration) async throws -> String {
        try begin(); defer { end() }
        log?.record(endpoint, .command, command, redactor: redactor)
        discardPending()
        try write(command + "\n")
        try? await Task.sleep(for: timeout)
        let output = Self.stripEcho(takeAll(), command: command)
        if !output.isEmpty { log?.record(endpoint, .output, output, redactor: redactor) }
        return output
    }

    public func getSessionBefore(timeout: Duration) async throws -> String {
        try begin(); defer { end() }
        try? await Task.sleep(for: timeout)
        let output = takeAll()
        if !output.isEmpty { log?.record(endpoint, .output, output, redactor: redactor) }
        return output
    }

    public func sendControlC() async throws {
        log?.record(endpoint, .status, "^C", redactor: redactor)
        try write("\u{03}")
    }

    public func close() async {
        let (wasClosed, pendingWaiter, output) = lock.withLock {
            let state = (closed, waiter, buffer)
            closed = true
            waiter = nil
            return state
        }
        pendingWaiter?.continuation.resume(throwing: LocalSessionError.shellExited(command: pendingWaiter?.command ?? "", output: output))
        guard !wasClosed else { return }
        // SIGHUP lets bash hang up its jobs; then everything left in the shell's session is killed.
        child.signal(SIGHUP)
        _ = await child.waitForExit(timeout: .seconds(2))
        child.signal(SIGKILL)
    }

    // MARK: internals

    private func begin() throws {
        lock.lock(); defer { lock.unlock() }
        if busy { throw LocalSessionError.shellBusy }
        if closed || eof { throw LocalSessionError.shellExited(command: "", output: buffer) }
        busy = true
    }

    private func end() { lock.lock(); busy = false; lock.unlock() }

    private func sendExpectRaw(_ command: String, _ expected: Expectation, timeout: Duration, logCommand: Bool) async throws -> String {
        var regex: NSRegularExpression?
        if case .regex(let pattern) = expected {
            do { regex = try NSRegularExpression(pattern: pattern) } catch { throw LocalSessionError.invalidRegex(pattern) }
        }
        try begin(); defer { end() }
        if logCommand { log?.record(endpoint, .command, command, redactor: redactor) }
        discardPending()
        try write(command + "\n")
        let before: String = try await withCheckedThrowingContinuation { continuation in
            let waiter = Waiter(command: redactor.redact(command), expected: expected, regex: regex, timeout: timeout,
                                continuation: continuation)
            lock.lock()
            self.waiter = waiter
            let resolution = resolveLocked()
            lock.unlock()
            resolution?()
            let id = waiter.id
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout.dtsSeconds) { [self] in
                lock.lock()
                guard let current = self.waiter, current.id == id else { lock.unlock(); return }
                self.waiter = nil
                let output = buffer
                lock.unlock()
                current.continuation.resume(throwing: LocalSessionError.expectTimeout(
                    command: current.command, expected: current.expected, after: current.timeout, output: output))
            }
        }
        var output = Self.stripEcho(before, command: command)
        // DTS's "# " matches the end of our prompt: drop the prompt's head from the output.
        let head = String(prompt.dropLast(2))
        if output.hasSuffix(head) { output.removeLast(head.count) }
        while output.hasSuffix("\n") { output.removeLast() }
        if logCommand, !output.isEmpty { log?.record(endpoint, .output, output, redactor: redactor) }
        return output
    }

    /// Matches the registered waiter against the buffer; returns the resumption to run after unlocking.
    private func resolveLocked() -> (() -> Void)? {
        guard let waiter else { return nil }
        var range: Range<String.Index>?
        switch waiter.expected {
        case .literal(let text):
            range = text.isEmpty ? buffer.startIndex..<buffer.startIndex : buffer.range(of: text)
        case .regex:
            if let match = waiter.regex?.firstMatch(in: buffer, range: NSRange(buffer.startIndex..., in: buffer)) {
                range = Range(match.range, in: buffer)
            }
        }
        if let range {
            let before = String(buffer[..<range.lowerBound])
            buffer = String(buffer[range.upperBound...])
            self.waiter = nil
            return { waiter.continuation.resume(returning: before) }
        }
        if eof || closed {
            self.waiter = nil
            let output = buffer
            return { waiter.continuation.resume(throwing: LocalSessionError.shellExited(command: waiter.command, output: output)) }
        }
        return nil
    }

    private func discardPending() {
        lock.lock()
        let stale = buffer
        buffer = ""
        lock.unlock()
        if !stale.isEmpty { log?.record(endpoint, .output, "(unread) " + stale, redactor: redactor) }
    }

    private func takeAll() -> String {
        lock.lock(); defer { lock.unlock() }
        let all = buffer
        buffer = ""
        return all
    }

    private func write(_ text: String) throws {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(master, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw LocalSessionError.io(operation: "write to", path: "shell PTY", errno: errno)
            }
            offset += n
        }
    }

    private func readLoop() {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            lock.lock()
            let stop = closed
            lock.unlock()
            if stop { break }
            var pfd = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 200)
            if ready == 0 { continue }
            if ready < 0 { if errno == EINTR { continue }; break }
            let n = chunk.withUnsafeMutableBytes { Glibc.read(master, $0.baseAddress!, $0.count) }
            if n > 0 {
                append(chunk[0..<n])
            } else if n < 0 && (errno == EINTR || errno == EAGAIN) {
                continue
            } else {
                break // EOF or EIO: the shell side is gone
            }
        }
        lock.lock()
        eof = true
        let resolution = resolveLocked()
        lock.unlock()
        resolution?()
        Glibc.close(master)
    }

    private func append(_ bytes: ArraySlice<UInt8>) {
        lock.lock()
        pending.append(contentsOf: bytes)
        let (text, rest) = Self.normalize(pending)
        pending = rest
        buffer += text
        let resolution = resolveLocked()
        lock.unlock()
        resolution?()
    }

    /// Decodes complete UTF-8, turns `\r\n` (and `\r\r\n`) into `\n` and a lone `\r` into `\n`;
    /// returns the text and the bytes to keep for later (an incomplete character, a trailing `\r`).
    static func normalize(_ bytes: [UInt8]) -> (String, [UInt8]) {
        var end = bytes.count
        // Keep an incomplete UTF-8 sequence at the end.
        var i = bytes.count - 1
        while i >= 0 && i >= bytes.count - 4 {
            let b = bytes[i]
            if b & 0xC0 != 0x80 {
                let need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
                if bytes.count - i < need { end = i }
                break
            }
            i -= 1
        }
        if end > 0 && bytes[end - 1] == 0x0D { end -= 1 }
        var out: [UInt8] = []
        out.reserveCapacity(end)
        var k = 0
        while k < end {
            let b = bytes[k]
            if b == 0x0D {
                let next = k + 1 < end ? bytes[k + 1] : 0x0A
                if next != 0x0D && next != 0x0A { out.append(0x0A) }
            } else {
                out.append(b)
            }
            k += 1
        }
        return (String(decoding: out, as: UTF8.self), Array(bytes[end...]))
    }

    /// Removes the command's echo (from programs that echo their input) at the start of `output`.
    static func stripEcho(_ output: String, command: String) -> String {
        guard !command.isEmpty else { return output }
        if output.hasPrefix(command + "\n") { return String(output.dropFirst(command.count + 1)) }
        if output == command { return "" }
        return output
    }
}

/// An unlinked temporary file a child writes its output to.
final class CaptureFile {
    let fd: Int32

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/dts-capture-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { LibC.mkostemp($0.baseAddress!, O_CLOEXEC) }
        guard fd >= 0 else { throw LocalSessionError.io(operation: "create", path: NSTemporaryDirectory(), errno: errno) }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        self.fd = fd
    }

    func readAll() -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var offset: off_t = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            result.append(contentsOf: chunk[0..<n])
            offset += off_t(n)
        }
        return result
    }

    func close() { Glibc.close(fd) }
}

/// Local file copy keeping the mode, with progress, off the cooperative pool.
enum LocalCopy {
    static func copy(from source: String, to destination: String, mode: Int32?, progress: CopyProgress?) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global().async {
                do {
                    try copyBlocking(from: source, to: destination, mode: mode, progress: progress)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    static func copyBlocking(from source: String, to destination: String, mode: Int32?, progress: CopyProgress?) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw LocalSessionError.io(operation: "open", path: source, errno: errno) }
        defer { Glibc.close(input) }
        var info = stat()
        guard fstat(input, &info) == 0 else { throw LocalSessionError.io(operation: "stat", path: source, errno: errno) }
        let finalMode = mode_t(mode ?? Int32(info.st_mode & 0o7777))
        let output = open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, finalMode)
        guard output >= 0 else { throw LocalSessionError.io(operation: "create", path: destination, errno: errno) }
        defer { Glibc.close(output) }
        let total = Int64(info.st_size)
        var done: Int64 = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        progress?(0, total)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(input, $0.baseAddress!, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw LocalSessionError.io(operation: "read", path: source, errno: errno) }
            if n == 0 { break }
            var written = 0
            while written < n {
                let w = chunk.withUnsafeBytes { Glibc.write(output, $0.baseAddress! + written, n - written) }
                if w < 0 { if errno == EINTR { continue }; throw LocalSessionError.io(operation: "write", path: destination, errno: errno) }
                written += w
            }
            done += Int64(n)
            progress?(done, total)
        }
        guard fchmod(output, finalMode) == 0 else { throw LocalSessionError.io(operation: "chmod", path: destination, errno: errno) }
    }
}

extension Duration {
    /// The duration in seconds, for Dispatch deadlines.
    var dtsSeconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}

/// libc functions Swift's Glibc module does not import (they need feature macros), looked up once.
enum LibC {
    private static func symbol<T>(_ name: String, as type: T.Type) -> T {
        guard let pointer = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else {
            fatalError("libc has no \(name)")
        }
        return unsafeBitCast(pointer, to: type)
    }

    nonisolated(unsafe) static let posixOpenpt = symbol("posix_openpt", as: (@convention(c) (Int32) -> Int32).self)
    nonisolated(unsafe) static let grantpt = symbol("grantpt", as: (@convention(c) (Int32) -> Int32).self)
    nonisolated(unsafe) static let unlockpt = symbol("unlockpt", as: (@convention(c) (Int32) -> Int32).self)
    nonisolated(unsafe) static let ptsnameR = symbol("ptsname_r", as: (@convention(c) (Int32, UnsafeMutablePointer<CChar>, Int) -> Int32).self)
    nonisolated(unsafe) static let mkostemp = symbol("mkostemp", as: (@convention(c) (UnsafeMutablePointer<CChar>, Int32) -> Int32).self)
}
