import DTSSession
import Foundation
import Testing

/// One list of cases that every interactive shell dts offers must pass with the same text: the
/// local PTY shell (DTSTests), an SSH shell on dropbear (DTSSSHTests) and a remote host DUT's shell
/// in a network namespace (DTSTests, RemoteDUTTests). The rules are ``ShellText``'s; the shells
/// are real bash on a real PTY, so these cases also check that each transport feeds its bytes
/// through those rules.
public enum ShellConformance {
    /// One case: a name, and a body run against an open shell whose unique prompt is `prompt`.
    public struct Case: Sendable, CustomStringConvertible {
        /// The case's name, used in failure messages.
        public let name: String
        let body: @Sendable (any InteractiveSession, String) async throws -> Void
        public var description: String { name }
    }

    /// Runs every case, in order, on `shell` (opened with the unique prompt `prompt`), recording
    /// a failure per case that fails and going on with the next (`transport` names the shell in
    /// the messages).
    public static func run(on shell: any InteractiveSession, prompt: String, transport: String) async {
        for conformanceCase in cases {
            do {
                try await conformanceCase.body(shell, prompt)
            } catch {
                Issue.record("\(transport): case \(conformanceCase.name) threw \(error)")
            }
        }
    }

    /// What the shell prints up to its next prompt (collected for at most 5 s), the prompt included.
    static func rest(of shell: any InteractiveSession, through prompt: String) async throws -> String {
        var text = ""
        for _ in 0..<50 where !text.contains(prompt) { text += try await shell.getSessionBefore(timeout: .milliseconds(100)) }
        return text
    }

    /// The cases.
    public static let cases: [Case] = [
        Case(name: "dts-style # expectation drops the prompt head and the final newline") { shell, _ async throws in
            #expect(try await shell.sendExpect("echo $((6 * 7))", "# ", timeout: .seconds(10)) == "42")
            #expect(try await shell.sendExpect("printf 'a\\n\\n\\n'", "# ", timeout: .seconds(10)) == "a")
        },
        Case(name: "own prompt: several lines, no final newline") { shell, prompt async throws in
            #expect(try await shell.sendExpect("echo hello; echo world", .literal(prompt), timeout: .seconds(10)) == "hello\nworld")
            #expect(try await shell.sendExpect("true", .literal(prompt), timeout: .seconds(10)) == "")
        },
        Case(name: "echo removal (the shell echoes its input, as testpmd does)") { shell, prompt async throws in
            // `set -v` makes bash print every line it reads before running it.
            _ = try await shell.sendExpect("set -v", .literal(prompt), timeout: .seconds(10))
            let echoed = try await shell.sendExpect("echo echoed-$((1 + 1))", .literal(prompt), timeout: .seconds(10))
            _ = try await shell.sendExpect("set +v", .literal(prompt), timeout: .seconds(10))
            #expect(echoed == "echoed-2")
        },
        Case(name: "CRLF, CR CR LF and a lone CR") { shell, prompt async throws in
            #expect(try await shell.sendExpect("printf 'a\\r\\nb\\r\\n'", .literal(prompt), timeout: .seconds(10)) == "a\nb")
            #expect(try await shell.sendExpect("printf 'p\\r\\r\\nq\\n'", .literal(prompt), timeout: .seconds(10)) == "p\nq")
            #expect(try await shell.sendExpect("printf '10%%\\r20%%\\rdone\\n'", .literal(prompt), timeout: .seconds(10)) == "10%\n20%\ndone")
        },
        Case(name: "bracketed paste switched on and off") { shell, prompt async throws in
            let text = try await shell.sendExpect("printf '\\033[?2004hpasted\\033[?2004l\\n'", .literal(prompt), timeout: .seconds(10))
            #expect(text == "pasted")
        },
        Case(name: "a UTF-8 character split across reads") { shell, prompt async throws in
            // The first half of € arrives, then, after a pause, the rest: no half-character is
            // matched, returned or kept broken after a match just before it.
            let split = "printf 'v\\342\\202'; sleep 0.4; printf '\\254 after\\n'"
            #expect(try await shell.sendExpect(split, .regex("v"), timeout: .seconds(10)) == "")
            #expect(try await rest(of: shell, through: prompt) == "€ after\n" + prompt)
            #expect(try await shell.sendExpect(split, .regex("v. "), timeout: .seconds(10)) == "")
            #expect(try await rest(of: shell, through: prompt) == "after\n" + prompt)
            #expect(try await shell.sendExpect(split, .literal(prompt), timeout: .seconds(10)) == "v€ after")
            // A combining mark arriving late stays with its letter.
            #expect(try await shell.sendExpect("printf 'e\\314'; sleep 0.4; printf '\\201!\\n'", .literal(prompt), timeout: .seconds(10))
                    == "e\u{0301}!")
        },
        Case(name: "regex expectation; what follows the match stays") { shell, prompt async throws in
            let escaped = NSRegularExpression.escapedPattern(for: prompt)
            let before = try await shell.sendExpect("echo value=42; echo after", .regex("value=[0-9]+"), timeout: .seconds(10))
            #expect(before == "")
            #expect(try await rest(of: shell, through: prompt) == "\nafter\n" + prompt)
            // A regex sees the normalized text: `\n`, never `\r`.
            let lines = try await shell.sendExpect("printf 'x\\r\\ny\\r\\n'", .regex("x\\ny\\n" + escaped), timeout: .seconds(10))
            #expect(lines == "")
        },
        Case(name: "a timeout carries the output so far") { shell, prompt async throws in
            do {
                _ = try await shell.sendExpect("echo first-part; sleep 30", "never-printed", timeout: .seconds(1))
                Issue.record("no timeout")
            } catch let error as any PartialOutputError {
                #expect(error.partialOutput?.hasPrefix("first-part\n") == true, "partial output: \(String(describing: error.partialOutput))")
            }
            try await shell.sendControlC()
            // Ctrl-C brings a prompt; wait past it for this command's own output and prompt.
            let escaped = NSRegularExpression.escapedPattern(for: prompt)
            _ = try await shell.sendExpect("echo sync-$((1 + 1))", .regex("sync-2\\n" + escaped), timeout: .seconds(10))
        },
        Case(name: "sendCommand and getSessionBefore return what arrived, normalized") { shell, prompt async throws in
            let collected = try await shell.sendCommand("printf 'abc\\r\\n'", timeout: .milliseconds(500))
            #expect(collected == "abc\n" + prompt)
            #expect(try await shell.getSessionBefore(timeout: .milliseconds(200)) == "")
        },
    ]
}
