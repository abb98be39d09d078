import DTSSSH
import DTSSession
import DTSTestSupport
import Foundation
import Testing
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A dropbear server, a scratch directory and a connected session for one test; always torn down.
func withServer(
    auth: ((TempDir) throws -> SSHAuthentication)? = nil,
    _ body: (DropbearServer, SSHConnection, TempDir) async throws -> Void
) async throws {
    let dir = try TempDir()
    defer { dir.remove() }
    let server = try DropbearServer()
    defer { server.shutdown() }
    let authentication = try auth?(dir) ?? .password(TestUsers.password)
    let connection = try await SSHConnection.connect(
        testOptions(port: server.port, auth: authentication, knownHosts: dir.file("known_hosts")))
    do {
        try await body(server, connection, dir)
        await connection.close()
    } catch {
        await connection.close()
        throw error
    }
}

/// Runs `body`, then removes `remote` over the connection whether `body` failed or not.
func removingRemote(_ ssh: SSHConnection, _ remote: String, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch {
        _ = try? await ssh.exec(argv: ["rm", "-f", remote], timeout: .seconds(10))
        throw error
    }
    _ = try await ssh.exec(argv: ["rm", "-f", remote], timeout: .seconds(10))
}

func elapsed(since start: ContinuousClock.Instant) -> Duration { ContinuousClock.now - start }

@Suite("SSH against a real dropbear", .serialized)
struct SSHTests {
    @Test("exec returns status, stdout and stderr separately")
    func execStatus() async throws {
        try await withServer { _, ssh, _ in
            let ok = try await ssh.exec("echo out; echo err >&2", timeout: .seconds(10))
            #expect(ok.status == 0)
            #expect(ok.output == "out\n")
            #expect(ok.errorOutput == "err\n")
            let three = try await ssh.exec("exit 3", timeout: .seconds(10))
            #expect(three.status == 3)
            let killed = try await ssh.exec("kill -KILL $$", timeout: .seconds(10))
            #expect(killed.status == 128 + 9)
            let argv = try await ssh.exec(argv: ["printf", "%s|", "a b", "it's", "$HOME"], timeout: .seconds(10))
            #expect(argv.output == "a b|it's|$HOME|")
        }
    }

    @Test("several MB on stdout and stderr at the same time")
    func bigOutputs() async throws {
        try await withServer { _, ssh, _ in
            let result = try await ssh.exec("seq 1 600000 & seq 600001 1200000 >&2; wait", timeout: .seconds(60))
            #expect(result.status == 0)
            let expectedOut = (1...600_000).map(String.init).joined(separator: "\n") + "\n"
            let expectedErr = (600_001...1_200_000).map(String.init).joined(separator: "\n") + "\n"
            #expect(result.stdout.count == expectedOut.utf8.count)
            #expect(result.stderr.count == expectedErr.utf8.count)
            #expect(result.stdout.count > 4_000_000 && result.stderr.count > 4_000_000)
            #expect(result.output == expectedOut)
            #expect(result.errorOutput == expectedErr)
        }
    }

    @Test("exec deadline: a timeout error carries the partial output")
    func execTimeout() async throws {
        try await withServer { _, ssh, _ in
            let start = ContinuousClock.now
            let error = await #expect(throws: SSHError.self) {
                _ = try await ssh.exec("echo started; sleep 30", timeout: .seconds(1))
            }
            #expect(elapsed(since: start) < .seconds(5))
            guard case .timeout(_, _, _, let partial) = error else {
                Issue.record("expected a timeout, got \(String(describing: error))")
                return
            }
            #expect(partial.contains("started"))
            // The connection is still usable afterwards.
            let again = try await ssh.exec("echo again", timeout: .seconds(10))
            #expect(again.output == "again\n")
        }
    }

    /// A loaded DUT answers a channel open late. The exec times out, but the connection was never
    /// broken: before, a deadline passing while the open was under way gave up on the connection
    /// ("busy sending"), and every later exec on it failed.
    @Test("a server that answers a channel open after the exec's deadline: a timeout, and the connection stays usable")
    func lateChannelOpen() async throws {
        try await withServer { server, ssh, _ in
            _ = try await ssh.exec("true", timeout: .seconds(10))
            let children = server.childPids()
            try #require(!children.isEmpty, "no per-connection dropbear process")
            for child in children { kill(child, SIGSTOP) }
            let start = ContinuousClock.now
            let error = await #expect(throws: SSHError.self) { _ = try await ssh.exec("echo late", timeout: .seconds(1)) }
            #expect(elapsed(since: start) < .seconds(10))
            if case .timeout = error {} else { Issue.record("expected a timeout, got \(String(describing: error))") }
            try await Task.sleep(for: .seconds(2))
            for child in children { kill(child, SIGCONT) }
            #expect(await ssh.isUsable)
            let again = try await ssh.exec("echo again", timeout: .seconds(20))
            #expect(again.output == "again\n")
        }
    }

    @Test("cancelling the waiting task ends the operation at once")
    func cancellation() async throws {
        try await withServer { _, ssh, _ in
            let start = ContinuousClock.now
            let task = Task { try await ssh.exec("sleep 30", timeout: .seconds(30)) }
            try await Task.sleep(for: .milliseconds(300))
            task.cancel()
            await #expect(throws: SSHError.self) { _ = try await task.value }
            #expect(elapsed(since: start) < .seconds(3))
            let after = try await ssh.exec("echo still-usable", timeout: .seconds(10))
            #expect(after.output == "still-usable\n")
        }
    }

    @Test("sendExpect on a real bash with a unique prompt; echo removed, CRLF normalized, no final newline")
    func sendExpectPrompt() async throws {
        try await withServer { _, ssh, _ in
            let shell = try await ssh.openSSHShell()
            #expect(shell.prompt.hasPrefix("dts-"))
            let out = try await shell.sendExpect("echo hello; echo world", .literal(shell.prompt), timeout: .seconds(10))
            #expect(out == "hello\nworld")
            #expect(try await shell.run("cd /tmp && pwd", timeout: .seconds(10)) == "/tmp")
            let regex = try await shell.sendExpect("printf 'value=%d\\n' 42; echo after", .regex("value=[0-9]+"), timeout: .seconds(10))
            #expect(regex == "")
            // The rest stays pending until consumed.
            #expect(try await shell.expect(.literal(shell.prompt), timeout: .seconds(10)) == "\nafter")
            #expect(try await shell.run("echo next", timeout: .seconds(10)) == "next")
            await shell.close()
        }
    }

    @Test("a program that prompts late, then reads a reply")
    func latePrompt() async throws {
        try await withServer { _, ssh, _ in
            let shell = try await ssh.openSSHShell()
            let start = ContinuousClock.now
            let before = try await shell.sendExpect("sleep 1; printf 'ready> '; read v; echo got=$v", "ready> ", timeout: .seconds(10))
            #expect(elapsed(since: start) >= .milliseconds(900))
            #expect(before == "")
            #expect(try await shell.run("world", timeout: .seconds(10)) == "got=world")
            await shell.close()
        }
    }

    @Test("sendExpect timeout carries partial output; Ctrl-C brings the prompt back")
    func timeoutAndControlC() async throws {
        try await withServer { _, ssh, _ in
            let shell = try await ssh.openSSHShell()
            let error = await #expect(throws: SSHError.self) {
                _ = try await shell.sendExpect("echo partial-output; sleep 100", .literal("never-printed"), timeout: .seconds(1))
            }
            #expect(error?.partialOutput?.contains("partial-output") == true)
            #expect(String(describing: error!).contains("timed out after 1 s"))
            let start = ContinuousClock.now
            try await shell.sendControlC()
            _ = try await shell.expect(.literal(shell.prompt), timeout: .seconds(5))
            #expect(elapsed(since: start) < .seconds(3))
            #expect(try await shell.run("echo alive", timeout: .seconds(10)) == "alive")
            // sendCommand / getSessionBefore collect what arrives within the time given.
            let collected = try await shell.sendCommand("echo abc", timeout: .milliseconds(500))
            #expect(collected.contains("abc\n"))
            #expect(collected.contains(shell.prompt))
            #expect(try await shell.getSessionBefore(timeout: .milliseconds(200)) == "")
            await shell.close()
        }
    }

    @Test("two shells and an exec on one connection, used concurrently")
    func concurrentShells() async throws {
        try await withServer { _, ssh, _ in
            let a = try await ssh.openSSHShell()
            let b = try await ssh.openSSHShell()
            #expect(a.prompt != b.prompt)
            let start = ContinuousClock.now
            // Three 2 s commands: one after another they would take 6 s.
            async let one = a.run("sleep 2; echo one", timeout: .seconds(20))
            async let two = b.run("sleep 2; echo two", timeout: .seconds(20))
            async let three = ssh.exec("sleep 2; echo three", timeout: .seconds(20))
            let (r1, r2, r3) = try await (one, two, three)
            #expect(r1 == "one")
            #expect(r2 == "two")
            #expect(r3.output == "three\n")
            #expect(elapsed(since: start) < .seconds(5), "the three commands ran one after another")
            // The same shell cannot be driven by two tasks at once: of two concurrent runs, one gets
            // the shell and the other is refused (which one depends on scheduling).
            async let first = outcome { try await a.run("sleep 2; echo x", timeout: .seconds(10)) }
            async let second = outcome { try await a.run("sleep 2; echo y", timeout: .seconds(10)) }
            let outcomes = await [first, second]
            let refused = outcomes.filter { if case .failure(let e) = $0 { return (e as? SSHError) == .shellBusy(endpoint: ssh.endpoint) }; return false }
            let served = outcomes.compactMap { try? $0.get() }
            #expect(refused.count == 1 && served.count == 1, "outcomes: \(outcomes)")
            #expect(served.first == "x" || served.first == "y")
            await a.close()
            await b.close()
        }
    }

    @Test("many concurrent execs, a shell and an upload interleave on one connection")
    func manyConcurrent() async throws {
        try await withServer { _, ssh, dir in
            let shell = try await ssh.openSSHShell()
            let payload = dir.file("small.bin")
            try Data(repeating: 0x5A, count: 3 * 1024 * 1024).write(to: URL(fileURLWithPath: payload))
            let remote = "/tmp/dts-ssh-test-\(UUID().uuidString)"
            try await removingRemote(ssh, remote) {
                try await withThrowingTaskGroup(of: String.self) { group in
                    for i in 0..<24 {
                        group.addTask {
                            let r = try await ssh.exec("seq 1 \(5000 + i); echo done-\(i) >&2", timeout: .seconds(60))
                            let lines = r.output.split(separator: "\n")
                            return lines.count == 5000 + i && r.errorOutput == "done-\(i)\n" ? "exec-ok" : "exec-bad-\(i)"
                        }
                    }
                    group.addTask {
                        var ok = true
                        for i in 0..<20 {
                            ok = try await shell.run("echo shell-\(i)", timeout: .seconds(30)) == "shell-\(i)" && ok
                        }
                        return ok ? "shell-ok" : "shell-bad"
                    }
                    group.addTask {
                        try await ssh.upload(localPath: payload, remotePath: remote, mode: 0o640, progress: nil)
                        return "upload-ok"
                    }
                    var results: [String] = []
                    for try await r in group { results.append(r) }
                    #expect(results.filter { $0 == "exec-ok" }.count == 24, "\(results.filter { $0 != "exec-ok" })")
                    #expect(results.contains("shell-ok"))
                    #expect(results.contains("upload-ok"))
                }
                let sum = try await ssh.exec(argv: ["sha256sum", remote], timeout: .seconds(30)).output.prefix(64)
                #expect(String(sum) == (try sha256(ofLocal: payload)))
            }
        }
    }

    @Test("wrong password, wrong key and a closed port are typed errors")
    func authAndConnectErrors() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try DropbearServer()
        defer { server.shutdown() }
        let knownHosts = dir.file("known_hosts")
        let wrongPassword = await #expect(throws: SSHError.self) {
            _ = try await SSHConnection.connect(testOptions(port: server.port, auth: .password("not-the-password"), knownHosts: knownHosts))
        }
        #expect(String(describing: wrongPassword!).hasPrefix("auth failed for dtstest@127.0.0.1:\(server.port) (password)"))
        // A server does not tell a wrong password from an unknown user: the message says both, never one for sure.
        #expect(String(describing: wrongPassword!).contains("the password is wrong, or there is no user 'dtstest' on the server"), "\(wrongPassword!)")
        let unknownUser = await #expect(throws: SSHError.self) {
            _ = try await SSHConnection.connect(testOptions(port: server.port, auth: .password(TestUsers.password), knownHosts: knownHosts,
                                                            user: "no-such-user-dts"))
        }
        #expect(String(describing: unknownUser!).contains("or there is no user 'no-such-user-dts' on the server"), "\(unknownUser!)")

        let stranger = try ClientKey(in: dir, name: "unauthorized", passphrase: nil, authorize: false)
        let wrongKey = await #expect(throws: SSHError.self) {
            _ = try await SSHConnection.connect(testOptions(port: server.port, auth: stranger.authentication, knownHosts: knownHosts))
        }
        #expect(String(describing: wrongKey!).hasPrefix("auth failed for dtstest@127.0.0.1:\(server.port) (publickey)"))

        let closedPort = try freePort()
        await #expect(throws: SSHError.connectionRefused(hostPort: "127.0.0.1:\(closedPort)")) {
            _ = try await SSHConnection.connect(testOptions(port: closedPort, auth: .password(TestUsers.password), knownHosts: knownHosts))
        }
        #expect(SSHError.connectionRefused(hostPort: "127.0.0.1:1").description == "connection refused by 127.0.0.1:1")
    }

    @Test("a server that never speaks SSH: connect times out at the deadline")
    func connectTimeout() async throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) == 0 && getsockname(listener, $0, &len) == 0 }
        }
        try #require(ok && listen(listener, 4) == 0)
        let port = Int(UInt16(bigEndian: addr.sin_port))
        let dir = try TempDir()
        defer { dir.remove() }
        var options = testOptions(port: port, auth: .password("x"), knownHosts: dir.file("known_hosts"))
        options.connectTimeout = .seconds(1)
        let start = ContinuousClock.now
        await #expect(throws: SSHError.connectTimeout(hostPort: "127.0.0.1:\(port)", after: .seconds(1))) {
            _ = try await SSHConnection.connect(options)
        }
        #expect(elapsed(since: start) < .seconds(3))
        #expect(SSHError.connectTimeout(hostPort: "127.0.0.1:6022", after: .seconds(5)).description == "connect to 127.0.0.1:6022 timed out after 5 s")
    }

    @Test("ed25519 keys with and without passphrase; root with a password")
    func keysAndRoot() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try DropbearServer()
        defer { server.shutdown() }
        let knownHosts = dir.file("known_hosts")
        let plain = try ClientKey(in: dir, name: "plain", passphrase: nil)
        defer { plain.revoke() }
        let locked = try ClientKey(in: dir, name: "locked", passphrase: "open sesame")
        defer { locked.revoke() }
        for key in [plain, locked] {
            let ssh = try await SSHConnection.connect(testOptions(port: server.port, auth: key.authentication, knownHosts: knownHosts))
            #expect(try await ssh.exec("id -un", timeout: .seconds(10)).output == "dtstest\n")
            await ssh.close()
        }
        // Only the private key given (public key derived by libssh2).
        let derived = try await SSHConnection.connect(testOptions(
            port: server.port, auth: .publicKeyFile(privateKeyPath: plain.privateKeyPath), knownHosts: knownHosts))
        await derived.close()
        let badPassphrase = SSHAuthentication.publicKeyFile(privateKeyPath: locked.privateKeyPath, publicKeyPath: locked.publicKeyPath, passphrase: "wrong")
        let error = await #expect(throws: SSHError.self) {
            _ = try await SSHConnection.connect(testOptions(port: server.port, auth: badPassphrase, knownHosts: knownHosts))
        }
        #expect(String(describing: error!).hasPrefix("auth failed for dtstest@127.0.0.1:\(server.port) (publickey)"))

        let root = try await SSHConnection.connect(testOptions(port: server.port, auth: .password(TestUsers.rootPassword), knownHosts: knownHosts, user: "root"))
        #expect(try await root.exec("id -u", timeout: .seconds(10)).output == "0\n")
        await root.close()
    }

    @Test("the server dies mid-command: an error within the deadline, not a hang")
    func serverKilled() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try DropbearServer()
        defer { server.shutdown() }
        let ssh = try await SSHConnection.connect(testOptions(port: server.port, auth: .password(TestUsers.password), knownHosts: dir.file("known_hosts")))
        let shell = try await ssh.openSSHShell()
        let start = ContinuousClock.now
        async let running = ssh.exec("echo begun; sleep 30", timeout: .seconds(20))
        async let waiting = shell.sendExpect("sleep 30", .literal("testpmd>"), timeout: .seconds(20))
        try await Task.sleep(for: .milliseconds(700))
        server.stop()
        do {
            _ = try await running
            Issue.record("exec returned although the server was killed")
        } catch let error as SSHError {
            guard case .connectionLost(_, _, _, let partial) = error else {
                Issue.record("expected connectionLost, got \(error)")
                return
            }
            #expect(partial.contains("begun"))
        }
        do {
            _ = try await waiting
            Issue.record("sendExpect returned although the server was killed")
        } catch let error as SSHError {
            switch error {
            case .connectionLost, .channelClosed: break
            default: Issue.record("unexpected error \(error)")
            }
        }
        #expect(elapsed(since: start) < .seconds(5))
        #expect(await ssh.isUsable == false)
        await #expect(throws: SSHError.self) { _ = try await ssh.exec("true", timeout: .seconds(2)) }
        await ssh.close()
        #expect(SSHError.channelClosed(endpoint: "e", waitingFor: "\"testpmd>\"", partialOutput: "").description
            .hasPrefix("channel closed by peer while waiting for \"testpmd>\""))
    }

    @Test("SFTP upload and download of a file of many transfer buffers: same sha256, mode kept, progress reported")
    func fileCopy() async throws {
        try await withServer { _, ssh, dir in
            let local = dir.file("payload.bin")
            // 24 MiB + 7: about twelve 2.1 MB transfer buffers, so the upload buffer is refilled and
            // compacted many times, and the last SFTP request is a short one.
            let size = 24 * 1024 * 1024 + 7
            try writeRandomFile(local, size: size)
            chmod(local, 0o751)
            let remote = "/tmp/dts-ssh-test-\(UUID().uuidString)"
            try await removingRemote(ssh, remote) {
                let progress = ProgressLog()
                try await ssh.upload(localPath: local, remotePath: remote, mode: nil, progress: { done, total in progress.add(done, total) })
                let (lastDone, lastTotal, calls) = progress.snapshot()
                #expect(lastDone == Int64(size) && lastTotal == Int64(size))
                #expect(calls > 1)
                let remoteSum = try await ssh.exec(argv: ["sha256sum", remote], timeout: .seconds(30)).output.prefix(64)
                let localSum = try sha256(ofLocal: local)
                #expect(String(remoteSum) == localSum)
                #expect(try await ssh.exec(argv: ["stat", "-c", "%a %s", remote], timeout: .seconds(10)).output == "751 \(size)\n")

                let back = dir.file("back.bin")
                try await ssh.download(remotePath: remote, localPath: back, progress: nil)
                #expect(try sha256(ofLocal: back) == localSum)
                var st = stat()
                stat(back, &st)
                #expect(st.st_mode & 0o7777 == 0o751)

                // An explicit mode wins over the local one.
                try await ssh.upload(localPath: local, remotePath: remote, mode: 0o600, progress: nil)
                #expect(try await ssh.exec(argv: ["stat", "-c", "%a", remote], timeout: .seconds(10)).output == "600\n")
            }

            let missing = await #expect(throws: SSHError.self) {
                try await ssh.download(remotePath: "/nonexistent/file", localPath: dir.file("missing.bin"), progress: nil)
            }
            #expect(String(describing: missing!).contains("/nonexistent/file"))
        }
    }

    @Test("host key: recorded, then a changed key on the same port is a mismatch; per-instance files")
    func hostKeyChange() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let knownHosts = dir.file("known_hosts")
        let first = try DropbearServer()
        let port = first.port
        let ssh = try await SSHConnection.connect(testOptions(port: port, auth: .password(TestUsers.password), knownHosts: knownHosts))
        await ssh.close()
        first.shutdown()
        // The recorded entry matches what OpenSSH computes for it.
        let listed = try await runProgram("/usr/bin/ssh-keygen", ["-l", "-f", knownHosts]).output
        let firstFingerprint = try #require(listed.split(separator: " ").first { $0.hasPrefix("SHA256:") }).description
        let recorded = try String(contentsOfFile: knownHosts, encoding: .utf8)
        #expect(recorded.hasPrefix("[127.0.0.1]:\(port) ssh-ed25519 "), "\(recorded)")

        let second = try DropbearServer(port: port)
        defer { second.shutdown() }
        let error = await #expect(throws: SSHError.self) {
            _ = try await SSHConnection.connect(testOptions(port: port, auth: .password(TestUsers.password), knownHosts: knownHosts))
        }
        guard case .hostKeyMismatch(let hostPort, let known, let presented, let file) = error else {
            Issue.record("expected a host key mismatch, got \(String(describing: error))")
            return
        }
        #expect(hostPort == "127.0.0.1:\(port)")
        #expect(known == firstFingerprint)
        #expect(presented != known && presented.hasPrefix("SHA256:"))
        // The presented key's fingerprint is OpenSSH's too.
        let publicLine = try await #require(runProgram("/usr/bin/dropbearkey", ["-y", "-f", second.hostKeyPath]).output
            .split(separator: "\n").first { $0.hasPrefix("ssh-ed25519 ") })
        let publicKey = dir.file("second.pub")
        try (publicLine + "\n").write(toFile: publicKey, atomically: true, encoding: .utf8)
        let secondListed = try await runProgram("/usr/bin/ssh-keygen", ["-l", "-f", publicKey]).output
        #expect(secondListed.split(separator: " ").contains { $0 == presented }, "\(secondListed) vs \(presented)")
        #expect(file == knownHosts)
        #expect(String(describing: error!).contains(known) && String(describing: error!).contains(presented))

        // Strict checking refuses an unknown host.
        await #expect(throws: SSHError.self) {
            var options = testOptions(port: port, auth: .password(TestUsers.password), knownHosts: dir.file("empty"))
            options.hostKeyPolicy = .strict(knownHostsPath: dir.file("empty"))
            _ = try await SSHConnection.connect(options)
        }
        // A new VM instance gets a file of its own, so the reused port is fine...
        var options = testOptions(port: port, auth: .password(TestUsers.password), knownHosts: knownHosts)
        options.hostKeyPolicy = .perInstance(directory: dir.file("vm"), instanceID: "vm0-boot2")
        let fresh = try await SSHConnection.connect(options)
        await fresh.close()
        #expect(FileManager.default.fileExists(atPath: dir.file("vm/known_hosts.vm0-boot2")))
        // ...and strict checking now accepts it from that file.
        options.hostKeyPolicy = .strict(knownHostsPath: dir.file("vm/known_hosts.vm0-boot2"))
        let again = try await SSHConnection.connect(options)
        await again.close()
    }

    @Test("keepalives are sent on an idle connection, and only when configured")
    func keepalive() async throws {
        try requireProgram("/usr/bin/ss", package: "iproute2", setup: "ssh.sh")
        let dir = try TempDir()
        defer { dir.remove() }
        let keptServer = try DropbearServer()
        defer { keptServer.shutdown() }
        let silentServer = try DropbearServer()
        defer { silentServer.shutdown() }
        var options = testOptions(port: keptServer.port, auth: .password(TestUsers.password), knownHosts: dir.file("known_hosts"))
        options.keepaliveInterval = .seconds(1)
        let kept = try await SSHConnection.connect(options)
        options.port = silentServer.port
        options.keepaliveInterval = nil
        let silent = try await SSHConnection.connect(options)
        _ = try await kept.exec("true", timeout: .seconds(10))
        _ = try await silent.exec("true", timeout: .seconds(10))
        let keptBefore = try bytesSent(toPort: keptServer.port)
        let silentBefore = try bytesSent(toPort: silentServer.port)
        try await Task.sleep(for: .milliseconds(3500))
        let keptAfter = try bytesSent(toPort: keptServer.port)
        let silentAfter = try bytesSent(toPort: silentServer.port)
        // Each keepalive is one encrypted packet of several dozen bytes; 1 s interval over 3.5 s.
        #expect(keptAfter - keptBefore >= 2 * 40, "kept: \(keptBefore) -> \(keptAfter)")
        #expect(silentAfter == silentBefore, "silent: \(silentBefore) -> \(silentAfter)")
        #expect(try await kept.exec("echo kept", timeout: .seconds(10)).output == "kept\n")
        await kept.close()
        await silent.close()
    }

    @Test("the transcript hook sees commands and outputs, never the password")
    func transcript() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try DropbearServer()
        defer { server.shutdown() }
        let log = TranscriptLog()
        let ssh = try await SSHConnection.connect(testOptions(port: server.port, auth: .password(TestUsers.password),
                                                              knownHosts: dir.file("known_hosts"), transcript: { log.add($0) }))
        _ = try await ssh.exec("echo transcript-check", timeout: .seconds(10))
        let shell = try await ssh.openSSHShell()
        _ = try await shell.run("echo in-shell", timeout: .seconds(10))
        _ = try await shell.sendSecret("s3cret-value", .literal(shell.prompt), timeout: .seconds(10))
        await ssh.close()
        let events = log.events()
        #expect(events.contains { $0.kind == .exec && $0.text == "echo transcript-check" })
        #expect(events.contains { $0.kind == .execResult && $0.status == 0 && $0.text == "transcript-check\n" })
        #expect(events.contains { $0.kind == .shellSend && $0.text == "echo in-shell" })
        #expect(events.contains { $0.kind == .shellReceive && $0.text == "in-shell" })
        #expect(!events.contains { $0.text.contains(TestUsers.password) || $0.text.contains("s3cret-value") })
    }
}

@Suite("SSH against a real OpenSSH sshd", .serialized)
struct SSHKeyboardInteractiveTests {
    @Test("keyboard-interactive (PAM password prompt) succeeds, and fails with a wrong password")
    func keyboardInteractive() async throws {
        let server = try SshdServer()
        defer { server.shutdown() }
        let dir = try TempDir()
        defer { dir.remove() }
        let options = testOptions(port: server.port, auth: .keyboardInteractive(password: TestUsers.password), knownHosts: dir.file("known_hosts"))
        let ssh = try await SSHConnection.connect(options)
        let result = try await ssh.exec("id -un; echo $SHELL", timeout: .seconds(10))
        #expect(result.output == "dtstest\n/bin/bash\n")
        let shell = try await ssh.openSSHShell()
        #expect(try await shell.run("echo via-openssh", timeout: .seconds(10)) == "via-openssh")
        await ssh.close()
        let wrong = testOptions(port: server.port, auth: .keyboardInteractive(password: "wrong"), knownHosts: dir.file("known_hosts"))
        let error = await #expect(throws: SSHError.self) { _ = try await SSHConnection.connect(wrong) }
        #expect(String(describing: error!).hasPrefix("auth failed for dtstest@127.0.0.1:\(server.port) (keyboard-interactive)"))
        // This server takes no passwords: said so, with what it offers, rather than "wrong password".
        let password = testOptions(port: server.port, auth: .password(TestUsers.password), knownHosts: dir.file("known_hosts"))
        let refused = await #expect(throws: SSHError.self) { _ = try await SSHConnection.connect(password) }
        #expect(String(describing: refused!).contains("the server does not accept password authentication (it offers: keyboard-interactive)"),
                "\(refused!)")
    }
}

/// `bytes_sent` of the one client TCP socket connected to 127.0.0.1:`port`, from `ss -ti`.
func bytesSent(toPort port: Int) throws -> Int {
    let listed = try runQuickProgram("/usr/bin/ss", ["-tinH", "state", "established", "dst", "127.0.0.1:\(port)"])
    let output = listed.output
    guard listed.status == 0, let range = output.range(of: "bytes_sent:") else {
        throw TestSetupError(description: "no bytes_sent in `ss -ti` output: \(output)")
    }
    return Int(output[range.upperBound...].prefix { $0.isNumber }) ?? -1
}

final class ProgressLog: Sendable {
    private let state = Mutex((last: (Int64(0), Int64(0)), calls: 0))
    func add(_ done: Int64, _ total: Int64) { state.withLock { $0.last = (done, total); $0.calls += 1 } }
    func snapshot() -> (Int64, Int64, Int) { state.withLock { ($0.last.0, $0.last.1, $0.calls) } }
}

final class TranscriptLog: Sendable {
    private let list = Mutex<[SSHTranscriptEvent]>([])
    func add(_ event: SSHTranscriptEvent) { list.withLock { $0.append(event) } }
    func events() -> [SSHTranscriptEvent] { list.withLock { $0 } }
}

/// The result of an async throwing call, as a value.
func outcome<T: Sendable>(_ body: @Sendable () async throws -> T) async -> Result<T, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}
