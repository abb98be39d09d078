@testable import DTS
import DTSTestSupport
import Foundation
import Testing
import Synchronization

/// Processes whose command line is exactly `command` (arguments joined by spaces).
func localProcesses(running command: String) -> [Int32] {
    processes { $0.joined(separator: " ") == command }
}

/// Waits up to 10 s until a process runs `command`; returns whether it did.
func waitForLocalProcess(running command: String) async -> Bool {
    for _ in 0..<200 {
        if !localProcesses(running: command).isEmpty { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return false
}

/// Collects session log events (for checking logging and redaction).
final class LocalSessionLogCollector: SessionLogSink, Sendable {
    private let storage = Mutex<[SessionLogEvent]>([])
    func record(_ event: SessionLogEvent) { storage.withLock { $0.append(event) } }
    var events: [SessionLogEvent] { storage.withLock { $0 } }
}

/// Real `/bin/sh` and `/bin/bash` on this machine.
@Suite struct LocalSessionTests {
    @Test func execReportsStatusAndSeparateStreams() async throws {
        let session = LocalSession()
        let ok = try await session.exec("echo out; echo err >&2", timeout: .seconds(10))
        #expect(ok.status == 0)
        #expect(ok.output == "out\n")
        #expect(ok.errorOutput == "err\n")
        let failed = try await session.exec("exit 7", timeout: .seconds(10))
        #expect(failed.status == 7)
        let killed = try await session.exec("kill -TERM $$", timeout: .seconds(10))
        #expect(killed.status == 128 + SIGTERM)
        let argv = try await session.exec(argv: ["printf", "%s|", "a b", "$HOME", "it's"], timeout: .seconds(10))
        #expect(argv.output == "a b|$HOME|it's|")
    }

    @Test func execHandlesBigOutputOnBothStreams() async throws {
        let session = LocalSession()
        // 8 MB on stdout and 4 MB on stderr: far beyond any pipe buffer.
        let result = try await session.exec("head -c 8388608 /dev/zero; head -c 4194304 /dev/zero >&2", timeout: .seconds(30))
        #expect(result.status == 0)
        #expect(result.stdout.count == 8_388_608)
        #expect(result.stderr.count == 4_194_304)
    }

    @Test func execTimeoutKillsTheGroupAndKeepsPartialOutput() async throws {
        let session = LocalSession()
        let marker = "dts-timeout-\(UUID().uuidString)"
        let start = ContinuousClock.now
        do {
            _ = try await session.exec("echo partial; sleep 311.73 & echo \(marker) >/dev/null; sleep 200; echo never", timeout: .seconds(1))
            Issue.record("expected a timeout")
        } catch let LocalSessionError.timeout(_, after, stdout, _) {
            #expect(after == .seconds(1))
            #expect(stdout == "partial\n")
        }
        // Far from the command's 200 s, with room for a loaded 2-core machine (11 s was seen).
        #expect(ContinuousClock.now - start < .seconds(30))
        // The background sleep of the same command was killed too.
        try await Task.sleep(for: .milliseconds(200))
        let left = localProcesses(running: "sleep 311.73")
        #expect(left.isEmpty, "left running: \(left)")
    }

    @Test func execCancellationKillsTheCommand() async throws {
        let session = LocalSession()
        let task = Task { try await session.exec("sleep 251.37", timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        let result = await task.result
        #expect(throws: CancellationError.self) { try result.get() }
        let left = localProcesses(running: "sleep 251.37")
        #expect(left.isEmpty)
    }

    @Test func shellSendExpectWithLatePromptAndRegex() async throws {
        let session = LocalSession()
        let shell = try await session.openLocalShell()
        do {
            #expect(shell.prompt.hasSuffix("# "))
            let echo = try await shell.sendExpect("echo hello; echo world", .literal(shell.prompt), timeout: .seconds(5))
            #expect(echo == "hello\nworld")
            // DTS style: expect "# " (our prompt ends with it).
            let dts = try await shell.sendExpect("echo dts", "# ", timeout: .seconds(5))
            #expect(dts.hasPrefix("dts"))
            // The expected text arrives late, after 1.5 s.
            // The regex runs up to the prompt that follows, so nothing of this command stays buffered
            // for the next one.
            let promptPattern = NSRegularExpression.escapedPattern(for: shell.prompt)
            let late = try await shell.sendExpect("sleep 1.5; echo READY-42", .regex("READY-[0-9]+\\n" + promptPattern), timeout: .seconds(10))
            #expect(late == "")
            let state = try await shell.run("cd /tmp && X=5; echo $PWD $X", timeout: .seconds(5))
            #expect(state == "/tmp 5")
        } catch {
            await shell.close()
            throw error
        }
        await shell.close()
    }

    @Test func shellTimeoutCarriesOutputSoFar() async throws {
        let session = LocalSession()
        let shell = try await session.openLocalShell()
        defer { Task { await shell.close() } }
        do {
            _ = try await shell.sendExpect("echo first-part; sleep 30", "never-printed", timeout: .seconds(1))
            Issue.record("expected a timeout")
        } catch let LocalSessionError.expectTimeout(_, expected, _, output) {
            #expect(expected == .literal("never-printed"))
            #expect(output.contains("first-part"))
        }
        try await shell.sendControlC()
        _ = try await shell.sendExpect("", .literal(shell.prompt), timeout: .seconds(5))
        await shell.close()
    }

    @Test func controlCStopsSleep() async throws {
        let session = LocalSession()
        let shell = try await session.openLocalShell()
        do {
            let start = ContinuousClock.now
            _ = try await shell.sendCommand("sleep 101.93", timeout: .milliseconds(100))
            try #require(await waitForLocalProcess(running: "sleep 101.93"))
            try await shell.sendControlC()
            // bash prints its prompt once the job is gone. (Sending an empty line here would bring a
            // second prompt that may arrive after the next command was sent and end its wait early.)
            var seen = ""
            for _ in 0..<50 where !seen.contains(shell.prompt) {
                seen += try await shell.getSessionBefore(timeout: .milliseconds(100))
            }
            #expect(seen.contains(shell.prompt), "no prompt after Ctrl-C: \(seen)")
            let status = try await shell.run("echo status=$?", timeout: .seconds(5))
            #expect(status == "status=130")
            #expect(ContinuousClock.now - start < .seconds(10))
            let left = localProcesses(running: "sleep 101.93")
            #expect(left.isEmpty)
        } catch {
            await shell.close()
            throw error
        }
        await shell.close()
    }

    @Test func closeKillsShellAndItsJobs() async throws {
        let session = LocalSession()
        let shell = try await session.openLocalShell()
        _ = try await shell.run("sleep 321.77 &", timeout: .seconds(5))
        try #require(await waitForLocalProcess(running: "sleep 321.77"))
        await session.close()
        try await Task.sleep(for: .milliseconds(300))
        let left = localProcesses(running: "sleep 321.77")
        #expect(left.isEmpty, "left running: \(left)")
        await #expect(throws: LocalSessionError.self) { _ = try await shell.run("true", timeout: .seconds(1)) }
    }

    @Test func uploadDownloadKeepModeAndReportProgress() async throws {
        let scratch = try TempDir("dts-copy")
        let dir = scratch.path
        let source = dir + "/src.bin"
        let bytes = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try Data(bytes).write(to: URL(fileURLWithPath: source))
        chmod(source, 0o751)
        let session = LocalSession()
        let seen = LocalSessionLogCollector()
        let progress: CopyProgress = { done, total in
            seen.record(SessionLogEvent(endpoint: "p", kind: .transfer, text: "\(done)/\(total)"))
        }
        try await session.upload(localPath: source, remotePath: dir + "/up.bin", mode: nil, progress: progress)
        try await session.download(remotePath: dir + "/up.bin", localPath: dir + "/down.bin", progress: nil)
        try await session.upload(localPath: source, remotePath: dir + "/mode.bin", mode: 0o600, progress: nil)
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/down.bin")) == Data(bytes))
        let modes = try [dir + "/up.bin", dir + "/down.bin", dir + "/mode.bin"].map {
            (try FileManager.default.attributesOfItem(atPath: $0)[.posixPermissions] as? Int) ?? -1
        }
        #expect(modes == [0o751, 0o751, 0o600])
        #expect(seen.events.last?.text == "\(3 << 20)/\(3 << 20)")
        await #expect(throws: LocalSessionError.self) {
            try await session.download(remotePath: dir + "/missing", localPath: dir + "/x", progress: nil)
        }
    }

    @Test func commandsAreLoggedWithSecretsRedacted() async throws {
        let sink = LocalSessionLogCollector()
        let redactor = Redactor()
        redactor.register("s3cret-pw")
        let session = LocalSession(endpoint: "root@local", log: sink, redactor: redactor)
        _ = try await session.exec("echo login s3cret-pw", timeout: .seconds(5))
        let shell = try await session.openLocalShell()
        _ = try await shell.run("echo via-shell s3cret-pw", timeout: .seconds(5))
        await shell.close()
        let text = sink.events.map { "\($0.kind.rawValue): \($0.text)" }.joined(separator: "\n")
        #expect(!text.contains("s3cret-pw"))
        #expect(text.contains("command: echo login ***"))
        #expect(text.contains("output: login ***"))
        #expect(text.contains("command: echo via-shell ***"))
        #expect(text.contains("status: exit status 0"))
    }
}
