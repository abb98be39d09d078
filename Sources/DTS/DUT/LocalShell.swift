import DTSProcess
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An interactive bash (or sh) on a real pseudo-terminal, for DTS-style `sendExpect`.
///
/// The shell runs as a session leader with the PTY as its controlling terminal, so Ctrl-C
/// reaches the foreground job like at a keyboard. Terminal echo and line editing are off, so the
/// output returned is only what commands print; a program that echoes input itself (testpmd) has its
/// echo of the command removed. The prompt is set to a unique marker ending in `# ` (``prompt``), so
/// DTS's habit of expecting `"# "` works and ``run(_:timeout:)`` can wait for the real prompt.
public final class LocalShell: InteractiveSession, Sendable {
    /// The shell's prompt, unique to this shell (e.g. `dts-3f9a1c02# `).
    public let prompt: String
    private let endpoint: String
    private let log: (any SessionLogSink)?
    private let redactor: Redactor
    private let master: Int32
    private let child: ChildProcess

    private let state = Mutex(State())

    private struct Waiter: Sendable {
        let id = UUID()
        let command: String
        let expected: Expectation
        let pattern: ShellPattern
        let timeout: Duration
        let continuation: CheckedContinuation<String, any Error>
    }

    private struct State {
        var output = ShellOutput()
        var eof = false
        var closed = false
        var waiter: Waiter?
        var busy = false

        /// Matches the registered waiter against the buffer; returns the resumption to run after unlocking.
        mutating func resolve() -> (@Sendable () -> Void)? {
            guard let waiter else { return nil }
            if let before = output.match(waiter.pattern) {
                self.waiter = nil
                return { waiter.continuation.resume(returning: before) }
            }
            if eof || closed {
                self.waiter = nil
                let partial = output.text
                return { waiter.continuation.resume(throwing: LocalSessionError.shellExited(command: waiter.command, output: partial)) }
            }
            return nil
        }
    }

    init(endpoint: String, log: (any SessionLogSink)?, redactor: Redactor) throws {
        self.endpoint = endpoint + " (shell)"
        self.log = log
        self.redactor = redactor
        self.prompt = ShellText.uniquePrompt()

        let terminal: PseudoTerminal
        do throws(SystemCallError) {
            // No echo, canonical mode: what the shell prints is all we read.
            terminal = try PseudoTerminal.open(echo: false)
        } catch {
            throw LocalSessionError.pty(step: error.operation, errno: error.code)
        }
        let master = terminal.master
        let bash = FileManager.default.isExecutableFile(atPath: "/bin/bash")
        let argv = bash ? ["/bin/bash", "--noprofile", "--norc", "--noediting", "-i"] : ["/bin/sh", "-i"]
        var environment = ProcessInfo.processInfo.environment
        environment["TERM"] = "dumb"
        environment["PS1"] = "$ "
        environment.removeValue(forKey: "PROMPT_COMMAND")
        do {
            // The slave side as standard input makes the PTY the new session's controlling terminal.
            child = try LocalSession.spawn(argv, SpawnOptions(environment: environment, processGroup: .newSession,
                                                              standardInput: .open(terminal.slavePath, flags: O_RDWR),
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
        _ = try await sendExpectRaw(ShellText.promptSetup(prompt), .literal(prompt), timeout: .seconds(15), logCommand: false)
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
        let output = ShellText.stripEcho(takeAll(), command: command)
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
        let (wasClosed, pendingWaiter, partial): (Bool, Waiter?, String) = state.withLock { state in
            defer { state.closed = true; state.waiter = nil }
            return (state.closed, state.waiter, state.output.text)
        }
        pendingWaiter?.continuation.resume(throwing: LocalSessionError.shellExited(command: pendingWaiter?.command ?? "", output: partial))
        guard !wasClosed else { return }
        // SIGHUP lets bash hang up its jobs; then everything left in the shell's session is killed.
        child.signal(SIGHUP)
        _ = await child.waitForExit(timeout: .seconds(2))
        child.signal(SIGKILL)
    }

    // MARK: internals

    private func begin() throws {
        try state.withLock { state in
            if state.busy { throw LocalSessionError.shellBusy }
            if state.closed || state.eof { throw LocalSessionError.shellExited(command: "", output: state.output.text) }
            state.busy = true
        }
    }

    private func end() { state.withLock { $0.busy = false } }

    private func sendExpectRaw(_ command: String, _ expected: Expectation, timeout: Duration, logCommand: Bool) async throws -> String {
        let pattern: ShellPattern
        do {
            pattern = try ShellPattern(expected)
        } catch {
            guard case .regex(let text) = expected else { throw error }
            throw LocalSessionError.invalidRegex(text)
        }
        try begin(); defer { end() }
        if logCommand { log?.record(endpoint, .command, command, redactor: redactor) }
        discardPending()
        try write(command + "\n")
        let before: String = try await withCheckedThrowingContinuation { continuation in
            let waiter = Waiter(command: redactor.redact(command), expected: expected, pattern: pattern, timeout: timeout,
                                continuation: continuation)
            let resolution = state.withLock { state in
                state.waiter = waiter
                return state.resolve()
            }
            resolution?()
            let id = waiter.id
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout.seconds) { [self] in
                let expired: (Waiter, String)? = state.withLock { state in
                    guard let current = state.waiter, current.id == id else { return nil }
                    state.waiter = nil
                    return (current, state.output.text)
                }
                guard let (current, partial) = expired else { return }
                current.continuation.resume(throwing: LocalSessionError.expectTimeout(
                    command: current.command, expected: current.expected, after: current.timeout, output: partial))
            }
        }
        let reply = ShellText.reply(before: before, command: command, prompt: prompt)
        if logCommand, !reply.isEmpty { log?.record(endpoint, .output, reply, redactor: redactor) }
        return reply
    }

    private func discardPending() {
        let stale = state.withLock { $0.output.takeAll() }
        if !stale.isEmpty { log?.record(endpoint, .output, "(unread) " + stale, redactor: redactor) }
    }

    private func takeAll() -> String {
        state.withLock { $0.output.takeAll() }
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
            if state.withLock({ $0.closed }) { break }
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
        let resolution = state.withLock { state in
            state.eof = true
            state.output.finish()
            return state.resolve()
        }
        resolution?()
        Glibc.close(master)
    }

    private func append(_ bytes: ArraySlice<UInt8>) {
        let resolution = state.withLock { state in
            state.output.append(bytes)
            return state.resolve()
        }
        resolution?()
    }
}
