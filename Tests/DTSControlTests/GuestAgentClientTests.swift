import DTSTestSupport
import Foundation
import Testing

@_spi(Testing) @testable import DTSControl
import Synchronization

/// The guest agent client against the host's real qemu-ga (power commands disabled with -b, and
/// the client made with allowPowerCommands: false: a guest-shutdown can never reach it).
@Suite(.serialized) struct GuestAgentClientTests {
    static func connect(_ agent: GuestAgentFixture, transcript: ControlTranscript? = nil) async throws -> GuestAgentClient {
        try await GuestAgentClient.connect(
            path: agent.socketPath, timeout: .seconds(10), allowPowerCommands: false, transcript: transcript)
    }

    @Test func syncPingInfo() async throws {
        try await withGuestAgent { agent in
            let qga = try await Self.connect(agent)
            defer { qga.close() }
            try await qga.ping()
            let info = try await qga.info()
            #expect(info.version.hasPrefix("7."))
            #expect(info.isEnabled("guest-ping"))
            #expect(info.isEnabled("guest-exec"))
            #expect(!info.isEnabled("guest-shutdown"), "the fixture disables guest-shutdown with -b")
            try await qga.sync()
            try await qga.ping()
        }
    }

    @Test func garbageAndStaleRepliesDoNotBreakSync() async throws {
        try await withGuestAgent { agent in
            let lines = LineCollector()
            let qga = try await Self.connect(agent, transcript: lines.sink)
            defer { qga.close() }
            // A request whose (id-less) reply will be stale, a junk line, and half a JSON object with
            // no newline: the agent answers with the stale reply and parse errors, and its parser
            // is left mid-object (even across connections) until the 0xFF of the next sync resets it.
            try qga.sendRaw(Array(#"{"execute":"guest-sync","arguments":{"id":4242}}"#.utf8) + [0x0A])
            try qga.sendRaw(Array("junk }{ junk\n".utf8))
            try qga.sendRaw(Array(#"{"execute": "guest-pi"#.utf8))
            try await qga.sync()
            try await qga.ping()
            let info = try await qga.info()
            #expect(!info.version.isEmpty)
            // The stale reply really arrived and was ignored.
            #expect(lines.received.contains { $0.contains("4242") })
            #expect(lines.received.contains { $0.contains("JSON parse error") })
        }
    }

    @Test func networkInterfacesIncludeLoopback() async throws {
        try await withGuestAgent { agent in
            let qga = try await Self.connect(agent)
            defer { qga.close() }
            let interfaces = try await qga.networkInterfaces()
            let loopback = try #require(interfaces.first { $0.name == "lo" })
            #expect(loopback.ipv4Addresses.contains(GuestIPAddress(family: .ipv4, address: "127.0.0.1", prefix: 8)))
            #expect(loopback.hardwareAddress == "00:00:00:00:00:00")
        }
    }

    @Test func execCapturesOutputAndExitCodes() async throws {
        try await withGuestAgent { agent in
            let qga = try await Self.connect(agent)
            defer { qga.close() }
            let echo = try await qga.run(path: "/bin/echo", args: ["hello"], timeout: .seconds(10))
            #expect(echo.exited)
            #expect(echo.exitCode == 0)
            #expect(echo.stdoutText == "hello\n")
            #expect(echo.stderr.isEmpty)

            let three = try await qga.run(path: "/bin/sh", args: ["-c", "exit 3"], timeout: .seconds(10))
            #expect(three.exitCode == 3)

            let both = try await qga.run(
                path: "/bin/sh", args: ["-c", "printf 'out'; printf 'err' >&2; exit 1"], timeout: .seconds(10))
            #expect(both.exitCode == 1)
            #expect(both.stdoutText == "out")
            #expect(both.stderrText == "err")

            let input = try await qga.run(path: "/bin/cat", input: Data("piped\n".utf8), timeout: .seconds(10))
            #expect(input.stdoutText == "piped\n")

            // exec + execStatus by hand: a process still running is reported as not exited.
            let pid = try await qga.exec(path: "/bin/sleep", arguments: ["0.5"])
            let early = try await qga.execStatus(pid: pid)
            #expect(early.exited == false)

            // run's deadline names the program.
            do {
                // A wide margin: on a loaded 2-core machine a poll can come seconds late, and a
                // program that has exited by then is reported as done, not timed out.
                _ = try await qga.run(path: "/bin/sleep", args: ["10"], timeout: .milliseconds(300))
                Issue.record("sleep 10 finished within 0.3 s")
            } catch let error as ControlError {
                guard case .guestProcessTimeout(_, let path, _, _) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(path == "/bin/sleep")
            }

            await #expect(throws: ControlError.self) { try await qga.run(path: "/nonexistent/program") }
        }
    }

    @Test func fileWriteThenRead() async throws {
        try await withGuestAgent { agent in
            let qga = try await Self.connect(agent)
            defer { qga.close() }
            let path = agent.dir.file("roundtrip.bin")
            let payload = Data((0..<150_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            try await qga.writeFile(path: path, data: payload)
            #expect(FileManager.default.contents(atPath: path) == payload)
            let back = try await qga.readFile(path: path)
            #expect(back == payload)
            await #expect(throws: ControlError.self) { try await qga.readFile(path: agent.dir.file("missing")) }
        }
    }

    @Test func powerCommandsNeverReachTheHostAgent() async throws {
        try await withGuestAgent { agent in
            let qga = try await Self.connect(agent)
            defer { qga.close() }
            #expect(qga.peerIsHostGuestAgent)
            for command in GuestAgentClient.powerCommands {
                await #expect(throws: ControlError.self) { try await qga.execute(command) }
            }
            do {
                try await qga.shutdown(mode: .powerdown)
                Issue.record("shutdown was sent")
            } catch let error as ControlError {
                guard case .refused = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
            }
            try await qga.ping()
        }
    }

    @Test func chardevWithoutAgentTimesOutOnSync() async throws {
        // QEMU's chardev socket exists and accepts, but no agent answers (a guest still booting).
        try await withQEMU { vm in
            do {
                _ = try await GuestAgentClient.connect(path: vm.chardevPath, timeout: .milliseconds(700))
                Issue.record("sync succeeded without an agent")
            } catch let error as ControlError {
                guard case .noReply(_, let what, let timeout) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(what == "reply to guest-sync-delimited")
                // The connect's own timeout, not what was left of it for the sync.
                #expect(timeout == .milliseconds(700))
                #expect(error.description == "guest agent at \(vm.chardevPath): no reply to guest-sync-delimited within 0.7 s")
            }
        }
    }

    @Test func noAgentIsAConnectError() async throws {
        let dir = try TempDir("qganone")
        defer { dir.remove() }
        do {
            _ = try await GuestAgentClient.connect(path: dir.file("none.sock"), timeout: .milliseconds(200))
            Issue.record("connected to nothing")
        } catch let error as ControlError {
            #expect(error.description.hasPrefix("cannot connect to guest agent socket \(dir.file("none.sock"))"))
        }
    }
}

/// Guest agent protocol edge cases against a scripted peer (its peer process is this test
/// process, so power commands are allowed: that is how shutdown's reply handling is tested).
@Suite struct GuestAgentFakePeerTests {
    /// Reads a guest-sync-delimited request and answers it after `noise`; returns false if none came.
    static func answerSync(_ connection: FakeConnection, noise: [UInt8] = []) -> Bool {
        guard let request = connection.readMessage(), request["execute"] as? String == "guest-sync-delimited",
            let arguments = request["arguments"] as? [String: Any], let id = arguments["id"] as? Int
        else { return false }
        connection.write(noise + [0xFF] + Array(#"{"return": \#(id)}"#.utf8) + [0x0A])
        return true
    }

    @Test func staleRepliesAndGarbageBeforeTheDelimiterAreDiscarded() async throws {
        let dir = try TempDir("qgafake")
        defer { dir.remove() }
        let peer = try FakePeer(path: dir.file("qga.sock"))
        peer.serve { connection in
            // A stale sync reply, a stale command reply, and half an object before the 0xFF.
            let noise = Array(#"{"return": 999}"#.utf8) + [0x0A] + Array(#"{"return": {}, "id": "dts-1"}"#.utf8)
                + [0x0A] + Array(#"{"return": {"pid": "#.utf8)
            guard Self.answerSync(connection, noise: noise) else { return }
            guard let ping = connection.readMessage(), let id = ping["id"] as? String else { return }
            connection.write(#"{"return": {}, "id": "\#(id)"}"# + "\n")
            _ = connection.readLine()
        }
        let qga = try await GuestAgentClient.connect(path: peer.path, timeout: .seconds(5))
        try await qga.ping()
        qga.close()
        #expect(await peer.waitDone() == nil)
    }

    @Test func unansweredPingNamesCommandAndSocket() async throws {
        let dir = try TempDir("qgafake")
        defer { dir.remove() }
        let peer = try FakePeer(path: dir.file("qga.sock"))
        peer.serve { connection in
            guard Self.answerSync(connection) else { return }
            _ = connection.readLine()  // the ping: never answered
            // The client resyncs before the next command.
            guard Self.answerSync(connection) else { throw TestSetupError(description: "no resync after timeout") }
            guard let ping = connection.readMessage(), let id = ping["id"] as? String else { return }
            connection.write(#"{"return": {}, "id": "\#(id)"}"# + "\n")
            _ = connection.readLine()
        }
        let qga = try await GuestAgentClient.connect(path: peer.path, timeout: .seconds(5))
        do {
            try await qga.ping(timeout: .seconds(1))
            Issue.record("unanswered ping succeeded")
        } catch let error as ControlError {
            #expect(error.description == "guest agent at \(peer.path): no reply to guest-ping within 1 s")
        }
        try await qga.ping()
        qga.close()
        #expect(await peer.waitDone() == nil)
    }

    /// Runs a shutdown against a peer that reacts with `reaction` and returns what the peer saw.
    static func shutdown(
        reaction: @escaping @Sendable (FakeConnection, String) -> Void
    ) async throws -> (Result<Void, any Error>, String?) {
        let dir = try TempDir("qgafake")
        defer { dir.remove() }
        let peer = try FakePeer(path: dir.file("qga.sock"))
        let seen = LineCollector()
        peer.serve { connection in
            guard Self.answerSync(connection) else { return }
            guard let request = connection.readMessage() else { return }
            let arguments = request["arguments"] as? [String: Any]
            seen.add("\(request["execute"] as? String ?? "?") \(arguments?["mode"] as? String ?? "?")")
            reaction(connection, request["id"] as? String ?? "")
        }
        let qga = try await GuestAgentClient.connect(path: peer.path, timeout: .seconds(5))
        #expect(!qga.peerIsHostGuestAgent)
        let result: Result<Void, any Error>
        do {
            try await qga.shutdown(mode: .reboot, replyGrace: .milliseconds(500))
            result = .success(())
        } catch {
            result = .failure(error)
        }
        qga.close()
        #expect(await peer.waitDone() == nil)
        return (result, seen.received.first)
    }

    @Test func shutdownSucceedsWhenTheGuestCloses() async throws {
        let (result, seen) = try await Self.shutdown { _, _ in }  // the script ends: the socket closes
        #expect(seen == "guest-shutdown reboot")
        #expect(throws: Never.self) { try result.get() }
    }

    @Test func shutdownSucceedsWithoutReply() async throws {
        let (result, seen) = try await Self.shutdown { connection, _ in _ = connection.readLine() }
        #expect(seen == "guest-shutdown reboot")
        #expect(throws: Never.self) { try result.get() }
    }

    @Test func shutdownErrorReplyIsThrown() async throws {
        let (result, _) = try await Self.shutdown { connection, id in
            connection.write(#"{"error": {"class": "CommandNotFound", "desc": "Command guest-shutdown has been disabled"}, "id": "\#(id)"}"# + "\n")
            _ = connection.readLine()
        }
        #expect(throws: ControlError.self) { try result.get() }
    }
}

/// Collects transcript lines (thread-safe).
final class LineCollector: Sendable {
    private let lines = Mutex<[String]>([])

    func add(_ line: String) { lines.withLock { $0.append(line) } }

    var received: [String] { lines.withLock { $0 } }

    var sink: ControlTranscript {
        { [self] line in if line.direction == .received { self.add(line.text) } }
    }
}
