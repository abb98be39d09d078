import CLibSSH2
import DTSSession
import Foundation

/// An interactive shell on its own channel with a PTY, for DTS-style `sendExpect`.
///
/// By default the shell is prepared with a unique prompt: echo and line editing are turned off
/// and `PS1` becomes a random marker such as `dts-3fa9c2d1# ` (see ``prompt``), so the end of a
/// command's output is recognized without guessing the DUT's prompt, and programs' own prompts
/// (`testpmd> `) are matched with `sendExpect`. Use one task per shell at a time; different
/// shells of one connection may be used concurrently.
public final class SSHShell: InteractiveSession, @unchecked Sendable {
    /// The connection this shell belongs to.
    public let connection: SSHConnection
    let channel: ShellChannel
    /// The shell prompt set up at open (``SSHShellOptions/PromptSetup/uniqueMarker``), or the
    /// expected existing prompt's text if it was a literal; empty otherwise.
    public private(set) var prompt: String = ""

    init(connection: SSHConnection, channel: ShellChannel) {
        self.connection = connection
        self.channel = channel
    }

    private var core: ConnectionCore { connection.core }

    func prepare(_ options: SSHShellOptions) async throws {
        switch options.promptSetup {
        case .uniqueMarker:
            prompt = ShellText.uniquePrompt()
            _ = try await io(send: Array((ShellText.promptSetup(prompt) + "\n").utf8), clear: false,
                             wait: .match(.literal(Array(prompt.utf8)), description: "\"\(prompt)\""),
                             timeout: options.openTimeout, label: "shell prompt setup", logSend: nil)
        case .existing(let expectation):
            if case .literal(let text) = expectation { prompt = text }
            _ = try await expect(expectation, timeout: options.openTimeout)
        case .none:
            break
        }
    }

    private func compile(_ expected: Expectation) throws -> ShellWait {
        do {
            return .match(try ShellPattern(expected), description: expected.description)
        } catch {
            guard case .regex(let pattern) = expected else { throw error }
            throw SSHError.invalidRegex(pattern: pattern, reason: "\(error)")
        }
    }

    private func io(send: [UInt8], clear: Bool, wait: ShellWait, timeout: Duration, label: String, logSend: String?) async throws -> String {
        if let logSend {
            core.logger.debug("shell \(channel.number) on \(core.endpoint) <- \(logSend)")
            core.record(.shellSend, logSend)
        }
        let channel = self.channel
        let endpoint = core.endpoint
        return try await core.perform(label) { _, cont in
            if channel.busy {
                cont.resume(throwing: SSHError.shellBusy(endpoint: endpoint))
                return nil
            }
            return ShellIOOperation(shell: channel, send: send, clearPending: clear, wait: wait, timeout: timeout,
                                    label: label, continuation: cont)
        }
    }

    /// Sends `command` and a newline, waits for `expected`, and returns the output before it as
    /// ``ShellText`` says: normalized, without the echoed command, without the prompt's head and
    /// trailing newlines. Unconsumed output that arrived before the send is discarded first. A timeout
    /// throws ``SSHError/timeout(endpoint:operation:after:partialOutput:)`` carrying the output so
    /// far (which stays available to ``expect(_:timeout:)``).
    public func sendExpect(_ command: String, _ expected: Expectation, timeout: Duration) async throws -> String {
        let wait = try compile(expected)
        let before = try await io(send: Array((command + "\n").utf8), clear: true, wait: wait, timeout: timeout,
                                  label: "sendExpect `\(command)`", logSend: command)
        let text = ShellText.reply(before: before, command: command, prompt: prompt)
        core.record(.shellReceive, text)
        return text
    }

    /// Runs `command` and waits for the shell's ``prompt`` (requires a prompt set up at open).
    public func run(_ command: String, timeout: Duration) async throws -> String {
        try await sendExpect(command, .literal(prompt), timeout: timeout)
    }

    /// Like ``sendExpect(_:_:timeout:)`` but the text sent (a password) never reaches the transcript or logs.
    public func sendSecret(_ secret: String, _ expected: Expectation, timeout: Duration) async throws -> String {
        let wait = try compile(expected)
        let before = try await io(send: Array((secret + "\n").utf8), clear: true, wait: wait, timeout: timeout,
                                  label: "sending a secret", logSend: "<secret>")
        return ShellText.reply(before: before, command: secret, prompt: prompt)
    }

    /// Waits for `expected` without sending anything (after a timeout, a Ctrl-C, or a late prompt).
    /// Returns the output before the match, as ``sendExpect(_:_:timeout:)`` does (no echo to remove).
    public func expect(_ expected: Expectation, timeout: Duration) async throws -> String {
        let wait = try compile(expected)
        let before = try await io(send: [], clear: false, wait: wait, timeout: timeout, label: "expect \(expected)", logSend: nil)
        let text = ShellText.reply(before: before, command: nil, prompt: prompt)
        core.record(.shellReceive, text)
        return text
    }

    /// Sends `command` and a newline and returns everything that arrives within `timeout`.
    public func sendCommand(_ command: String, timeout: Duration) async throws -> String {
        let collected = try await io(send: Array((command + "\n").utf8), clear: true, wait: .collect, timeout: timeout,
                                     label: "sendCommand `\(command)`", logSend: command)
        let text = ShellText.stripEcho(collected, command: command)
        core.record(.shellReceive, text)
        return text
    }

    /// Returns the pending output plus whatever arrives within `timeout`, without sending anything.
    public func getSessionBefore(timeout: Duration) async throws -> String {
        let text = try await io(send: [], clear: false, wait: .collect, timeout: timeout, label: "getSessionBefore", logSend: nil)
        core.record(.shellReceive, text)
        return text
    }

    /// Sends Ctrl-C (0x03) to the foreground program.
    public func sendControlC() async throws {
        core.record(.controlC, "^C")
        _ = try await io(send: [0x03], clear: false, wait: .none, timeout: .seconds(5), label: "sending Ctrl-C", logSend: nil)
    }

    /// Closes the shell's channel. Idempotent; the connection stays open.
    public func close() async {
        let channel = self.channel
        _ = try? await core.perform("close shell") { _, cont in
            ShellCloseOperation(shell: channel, continuation: cont)
        }
    }
}
