@testable import DTS
import DTSProcess
import DTSSSH
import DTSTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Remote host DUTs over SSH, against a real second host: a network namespace joined to this
/// machine by a veth pair, with a real dropbear listening inside it (scripts/setup.d/remote.sh).
@Suite(.serialized) struct RemoteDUTTests {
    /// `dts run` on a DUT named in crbs.cfg by the namespace host's address: every host_basic case
    /// passes, the commands ran on the namespace host (its dropbear logged the login, the case
    /// logs name it), the host key was recorded in the run's known-hosts file, the password is in
    /// no output file and the connection was closed at the end.
    @Test func dtsRunReachesTheNamespaceHost() async throws {
        let host = try RemoteNamespaceHost()
        defer { host.tearDown() }
        let conf = try TempDir("dts-remote-conf")
        let out = try TempDir("dts-remote-out")
        _ = try conf.write("crbs.cfg", """
            [\(host.address)]
            dut_ip = \(host.address)
            dut_user = \(RemoteNamespaceHost.user)
            dut_passwd = \(RemoteNamespaceHost.password)
            dut_port = 22

            """)
        _ = try conf.write("execution.cfg", "[Execution1]\ncrbs = \(host.address)\ntest_suites = host_basic\n")
        let dir = out.path + "/results"
        let result = try await DTSBinary.run(["run", "--suite", "host_basic", "--conf-dir", conf.path, "--output", dir])
        #expect(result.status == 0, "stdout: \(result.stdout)\nstderr: \(result.stderr)\ndropbear: \(host.serverLog)")

        let tree = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/test_results.json"))) as? [String: [String: [String: String]]]
        #expect(tree?[host.address]?["default"] == [
            "host_basic/test_kernel_release": "passed", "host_basic/test_shell_send_expect": "passed",
            "host_basic/test_file_transfer": "passed", "host_basic/test_qemu_version": "passed",
        ])
        // The case logs hold the commands, logged with the remote endpoint.
        let endpoint = "\(RemoteNamespaceHost.user)@\(host.address):22"
        let unameLog = try String(contentsOfFile: dir + "/host_basic/test_kernel_release.log", encoding: .utf8)
        #expect(unameLog.contains("\(endpoint) $ uname -r"), "\(unameLog)")
        let shellLog = try String(contentsOfFile: dir + "/host_basic/test_shell_send_expect.log", encoding: .utf8)
        #expect(shellLog.contains("\(endpoint) (shell) $ echo $((6 * 7))"), "\(shellLog)")
        // `--dut` picks the DUT without an execution.cfg naming it.
        let noExecution = try TempDir("dts-remote-conf2")
        _ = try noExecution.write("crbs.cfg", try String(contentsOfFile: conf.path + "/crbs.cfg", encoding: .utf8))
        let byOption = try await DTSBinary.run(["run", "--suite", "host_basic", "--test-cases", "test_kernel_release", "--dut", host.address,
                                          "--conf-dir", noExecution.path, "--output", out.path + "/by-option"])
        #expect(byOption.status == 0, "stdout: \(byOption.stdout)\nstderr: \(byOption.stderr)")
        let optionLog = try String(contentsOfFile: out.path + "/by-option/host_basic/test_kernel_release.log", encoding: .utf8)
        #expect(optionLog.contains("\(endpoint) $ uname -r"), "\(optionLog)")
        #expect(shellLog.contains("\(endpoint) (shell) > 42"), "\(shellLog)")
        let copyLog = try String(contentsOfFile: dir + "/host_basic/test_file_transfer.log", encoding: .utf8)
        #expect(copyLog.contains("\(endpoint) ⇄ upload"), "\(copyLog)")
        // The namespace's own server accepted the login, coming from the host side of the veth.
        #expect(host.serverLog.contains("Password auth succeeded for '\(RemoteNamespaceHost.user)' from \(host.hostSideAddress):"),
                "dropbear log: \(host.serverLog)")
        // The host key was recorded on first use in the run's known-hosts file: exactly the namespace server's key.
        let knownHosts = try String(contentsOfFile: dir + "/known_hosts", encoding: .utf8)
        let entries = knownHosts.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(entries.count == 1, "\(knownHosts)")
        #expect(entries.first?.prefix(3).map { $0 } == [host.address, "ssh-ed25519", host.publicKeyBase64], "\(knownHosts)")
        // No file of the run holds the password.
        for file in try remoteAllFiles(under: dir) {
            let text = String(decoding: FileManager.default.contents(atPath: file) ?? Data(), as: UTF8.self)
            #expect(!text.contains(RemoteNamespaceHost.password), "password in \(file)")
        }
        // dts closed its connection: the server has no session process left.
        #expect(host.waitForNoSessions(), "dropbear still serves a connection after dts exited")
    }

    /// A wrong password and an address nobody answers end the run with exit 3 and a message that
    /// names dut_ip and dut_user; an unreachable DUT fails within the connect timeout.
    @Test func wrongPasswordAndUnreachableAddressAreInfrastructureErrors() async throws {
        let host = try RemoteNamespaceHost()
        defer { host.tearDown() }
        let conf = try TempDir("dts-remote-conf")
        let out = try TempDir("dts-remote-out")
        let wrong = "not-the-pw-\(UInt32.random(in: 1000...9999))"
        _ = try conf.write("crbs.cfg", """
            [lab-dut]
            dut_ip = \(host.address)
            dut_user = \(RemoteNamespaceHost.user)
            dut_passwd = \(wrong)

            [gone-dut]
            dut_ip = \(host.unusedAddress)
            dut_user = \(RemoteNamespaceHost.user)
            dut_passwd = \(RemoteNamespaceHost.password)

            [closed-port-dut]
            dut_ip = \(host.address)
            dut_user = root
            dut_passwd = x
            dut_port = 2222

            """)

        _ = try conf.write("execution.cfg", "[Execution1]\ncrbs = lab-dut\ntest_suites = host_basic\n")
        let denied = try await DTSBinary.run(["run", "--conf-dir", conf.path, "--output", out.path + "/denied"])
        #expect(denied.status == 3, "\(denied.stdout)\n\(denied.stderr)")
        let message = "DUT [lab-dut] login failed: dut_ip=\(host.address) dut_port=22 dut_user=\(RemoteNamespaceHost.user): password (dut_passwd) refused: "
            + "the password is wrong, or there is no user '\(RemoteNamespaceHost.user)' on the server"
        #expect(denied.stdout.contains(message), "\(denied.stdout)")
        let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: out.path + "/denied/results.json")))
        #expect(report.allCases.count == 4)
        #expect(report.allCases.allSatisfy { $0.case.status == .error && ($0.case.reason ?? "").contains(message) })
        for file in try remoteAllFiles(under: out.path + "/denied") {
            let text = String(decoding: FileManager.default.contents(atPath: file) ?? Data(), as: UTF8.self)
            #expect(!text.contains(wrong), "password in \(file)")
        }
        #expect(host.serverLog.contains("Bad password attempt for '\(RemoteNamespaceHost.user)'"), "\(host.serverLog)")

        _ = try conf.write("execution.cfg", "[Execution1]\ncrbs = gone-dut\ntest_suites = host_basic\n")
        let started = ContinuousClock.now
        let gone = try await DTSBinary.run(["run", "--conf-dir", conf.path, "--output", out.path + "/gone"],
                                     environment: ["DTS_CONNECT_TIMEOUT": "2"])
        let elapsed = ContinuousClock.now - started
        #expect(gone.status == 3, "\(gone.stdout)\n\(gone.stderr)")
        #expect(gone.stdout.contains("DUT [gone-dut] unreachable: dut_ip=\(host.unusedAddress) dut_port=22 dut_user=\(RemoteNamespaceHost.user)"),
                "\(gone.stdout)")
        #expect(elapsed < .seconds(15), "unreachable DUT took \(elapsed)")

        _ = try conf.write("execution.cfg", "[Execution1]\ncrbs = closed-port-dut\ntest_suites = host_basic\n")
        let refused = try await DTSBinary.run(["run", "--conf-dir", conf.path, "--output", out.path + "/refused"])
        #expect(refused.status == 3, "\(refused.stdout)\n\(refused.stderr)")
        #expect(refused.stdout.contains("DUT [closed-port-dut] unreachable: dut_ip=\(host.address) dut_port=2222 dut_user=root: connection refused"),
                "\(refused.stdout)")
    }

    /// Ctrl-C while a case runs a long command on the remote DUT: the command runs inside the
    /// namespace (its process is in the namespace's network namespace), dts stops with 130,
    /// writes partial results and closes its SSH connection.
    @Test func sigintClosesTheRemoteConnection() async throws {
        let host = try RemoteNamespaceHost()
        defer { host.tearDown() }
        let conf = try TempDir("dts-remote-conf")
        let out = try TempDir("dts-remote-out")
        _ = try conf.write("crbs.cfg", host.crbsSection())
        _ = try conf.write("execution.cfg", "[Execution1]\ncrbs = \(host.address)\ntest_suites = runner_selftest\n")
        _ = try conf.write("runner_selftest.cfg", "[suite]\nsleep_seconds = 263\n")
        let dts = try DTSProcessHarness.start(["run", "--conf-dir", conf.path, "--suite", "runner_selftest",
                                               "--test-cases", "test_sleep", "--output", out.path + "/r"],
                                              log: out.path + "/stdout")
        defer {
            dts.killIfRunning()
            for pid in localProcesses(running: "sleep 263") { kill(pid, SIGKILL) }
        }
        var sleeper: Int32?
        _ = await dts.waitUntil(timeout: .seconds(20)) {
            sleeper = localProcesses(running: "sleep 263").first
            return sleeper != nil
        }
        let pid = try #require(sleeper, "the remote sleep never started: \(dts.output)")
        let sleeperNet = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net")) ?? ""
        #expect(sleeperNet == host.namespaceInode, "sleep runs in \(sleeperNet), the namespace is \(host.namespaceInode)")
        #expect(!host.waitForNoSessions(timeout: .milliseconds(100)), "no SSH session while the case runs")
        let (status, elapsed) = await dts.interrupt(waitingUpTo: .seconds(60))
        #expect(status == 130)
        #expect(elapsed < .seconds(30))
        let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: out.path + "/r/results.json")))
        #expect(report.interrupted == "SIGINT")
        #expect(report.allCases.map(\.case.status) == [.error])
        #expect(host.waitForNoSessions(), "dts left its SSH connection open after SIGINT: \(host.serverLog)")
        // The command was killed on the DUT too, not only abandoned with its channel.
        var left = localProcesses(running: "sleep 263")
        for _ in 0..<100 where !left.isEmpty {
            try await Task.sleep(for: .milliseconds(100))
            left = localProcesses(running: "sleep 263")
        }
        #expect(left.isEmpty, "the remote command survived the interruption: \(left)")
    }

    /// The shell conformance cases (DTSTestSupport) on a remote host DUT's shell: a
    /// ``RemoteHostSession`` over SSH to the namespace host. The same cases run on the local shell
    /// (ShellConformanceTests) and on an SSH shell (DTSSSHTests).
    @Test func remoteShellConforms() async throws {
        let host = try RemoteNamespaceHost()
        defer { host.tearDown() }
        let conf = try TempDir("dts-remote-conf")
        let dut = try await Dut.remote(host.crb(), run: Run(), knownHostsPath: conf.file("known_hosts"))
        let shell = try await dut.session.openShell()
        let prompt = try #require(shell as? SSHShell).prompt
        await ShellConformance.run(on: shell, prompt: prompt, transport: "remote DUT shell")
        await shell.close()
        await dut.close()
    }

    /// The library API: `Dut.remote` runs commands on the namespace host (its network namespace,
    /// its addresses), exposes the DUT's address, and QEMU refuses to start for it.
    @Test func remoteDutRunsInTheNamespace() async throws {
        let host = try RemoteNamespaceHost()
        defer { host.tearDown() }
        let conf = try TempDir("dts-remote-conf")
        let crbs = try CRBsConfig(path: try conf.write("crbs.cfg", host.crbsSection()))
        let crb = try #require(crbs.crb(host.address))
        #expect(!crb.isLocal)
        let knownHosts = conf.path + "/known_hosts"
        let dut = try await Dut.remote(crb, settings: RunSettings(confDirectory: DTSBinary.packageRoot + "/conf", accelerator: .tcg),
                                       run: Run(), knownHostsPath: knownHosts)
        do {
            #expect(dut.isRemote)
            #expect(dut.address == host.address)
            #expect(dut.session.endpoint == "\(RemoteNamespaceHost.user)@\(host.address):22")
            // The commands run inside the namespace: its addresses, not this machine's.
            let addresses = try await dut.exec(argv: ["ip", "-o", "-4", "addr", "show"], timeout: .seconds(10))
            #expect(addresses.succeeded, "\(addresses.errorOutput)")
            #expect(addresses.output.contains("inet \(host.address)/24"), "\(addresses.output)")
            #expect(!addresses.output.contains("inet \(host.hostSideAddress)/24"), "\(addresses.output)")
            let remoteNet = try await dut.exec("readlink /proc/self/ns/net", timeout: .seconds(10)).output
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let localNet = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")) ?? ""
            #expect(remoteNet.hasPrefix("net:[") && remoteNet != localNet, "remote \(remoteNet), local \(localNet)")
            #expect(remoteNet == host.namespaceInode, "remote \(remoteNet), namespace \(host.namespaceInode)")
            let who = try await dut.exec("id -un", timeout: .seconds(10))
            #expect(who.output.trimmingCharacters(in: .whitespacesAndNewlines) == RemoteNamespaceHost.user)
            // The main shell answers DTS-style "# " expectations with the bare output.
            let product = try await dut.sendExpect("echo $((6 * 7))", "# ", timeout: .seconds(10))
            #expect(product == "42")
            // A command that overruns its timeout is killed on the DUT, and the error names the command.
            do {
                _ = try await dut.exec("sleep 271; echo never", timeout: .seconds(1))
                Issue.record("sleep 271 did not time out")
            } catch {
                #expect("\(error)".contains("exec `sleep 271; echo never`") && "\(error)".contains("timed out after 1"), "\(error)")
            }
            var left = localProcesses(running: "sleep 271")
            for _ in 0..<50 where !left.isEmpty {
                try await Task.sleep(for: .milliseconds(100))
                left = localProcesses(running: "sleep 271")
            }
            #expect(left.isEmpty, "timed-out remote command still runs: \(left)")
            // A cancelled task's command is killed too.
            let task = Task { try await dut.exec("sleep 272", timeout: .seconds(60)) }
            var started = false
            for _ in 0..<100 where !started {
                try await Task.sleep(for: .milliseconds(50))
                started = !localProcesses(running: "sleep 272").isEmpty
            }
            #expect(started)
            task.cancel()
            _ = await task.result
            left = localProcesses(running: "sleep 272")
            for _ in 0..<50 where !left.isEmpty {
                try await Task.sleep(for: .milliseconds(100))
                left = localProcesses(running: "sleep 272")
            }
            #expect(left.isEmpty, "cancelled remote command still runs: \(left)")
            // Exit statuses and outputs pass through the wrapper unchanged; bash syntax works.
            let status = try await dut.exec("echo out; echo err >&2; [[ 1 == 1 ]] && exit 7", timeout: .seconds(10))
            #expect(status.status == 7 && status.output == "out\n" && status.errorOutput == "err\n", "\(status)")
        }
        // This session's pid files only: other tests' remote sessions may run meanwhile.
        let tag = try #require(dut.underlyingSession as? RemoteHostSession).tag
        let pidFiles = remotePidFiles(tag: tag)
        #expect(!pidFiles.isEmpty, "no exec pid file while the session is open")
        await dut.close()
        #expect(host.waitForNoSessions(), "the session process stays after close()")
        #expect(remotePidFiles(tag: tag).isEmpty, "pid files left after close: \(remotePidFiles(tag: tag))")
        // A second connection with the recorded key succeeds; a different server key at the same address fails.
        let again = try await Dut.remote(crb, run: Run(), knownHostsPath: knownHosts)
        await again.close()
        try host.restartServer(newHostKey: true)
        do {
            let changed = try await Dut.remote(crb, run: Run(), knownHostsPath: knownHosts)
            await changed.close()
            Issue.record("a changed host key was accepted")
        } catch {
            #expect("\(error)".contains("DUT [\(host.address)] host key check failed: dut_ip=\(host.address)"), "\(error)")
            #expect("\(error)".contains("host key mismatch"), "\(error)")
        }
    }

    /// `dut_key`: public-key login with an ed25519 key file against OpenSSH's sshd in the
    /// namespace on a non-default port; a key the server does not accept is exit 3 naming the key.
    @Test func keyFileLoginOnAnotherPort() async throws {
        let host = try RemoteNamespaceHost()
        defer { host.tearDown() }
        let keys = try TempDir("dts-remote-keys")
        let key = keys.path + "/id_ed25519", stranger = keys.path + "/other_ed25519"
        for path in [key, stranger] {
            _ = try RemoteNamespaceHost.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "dts-remote-test", "-f", path])
        }
        let authorized = keys.path + "/authorized_keys"
        try FileManager.default.copyItem(atPath: key + ".pub", toPath: authorized)
        try host.startSshd(port: 2022, authorizedKeys: authorized)
        let conf = try TempDir("dts-remote-conf")
        let out = try TempDir("dts-remote-out")
        _ = try conf.write("crbs.cfg", """
            [keyed]
            dut_ip = \(host.address)
            dut_user = \(RemoteNamespaceHost.user)
            dut_key = \(key)
            dut_port = 2022

            [stranger]
            dut_ip = \(host.address)
            dut_user = \(RemoteNamespaceHost.user)
            dut_key = \(stranger)
            dut_port = 2022

            """)
        _ = try conf.write("execution.cfg", "[Execution1]\ncrbs = keyed\ntest_suites = host_basic:test_kernel_release\\test_file_transfer\n")
        let keyed = try await DTSBinary.run(["run", "--conf-dir", conf.path, "--output", out.path + "/keyed"])
        #expect(keyed.status == 0, "\(keyed.stdout)\n\(keyed.stderr)\nsshd: \(host.sshdLog)")
        #expect(host.sshdLog.contains("Accepted publickey for \(RemoteNamespaceHost.user) from \(host.hostSideAddress)"), "\(host.sshdLog)")
        let knownHosts = (try? String(contentsOfFile: out.path + "/keyed/known_hosts", encoding: .utf8)) ?? ""
        #expect(knownHosts.hasPrefix("[\(host.address)]:2022 ssh-ed25519 "), "\(knownHosts)")

        _ = try conf.write("execution.cfg", "[Execution1]\ncrbs = stranger\ntest_suites = host_basic\n")
        let rejected = try await DTSBinary.run(["run", "--conf-dir", conf.path, "--output", out.path + "/stranger"])
        #expect(rejected.status == 3, "\(rejected.stdout)\n\(rejected.stderr)")
        #expect(rejected.stdout.contains("DUT [stranger] login failed: dut_ip=\(host.address) dut_port=2022 dut_user=\(RemoteNamespaceHost.user): key (dut_key) refused"),
                "\(rejected.stdout)")
    }

    /// Units: credential choice and the prompt trimming of remote shells.
    @Test func credentialsAndConnectTimeout() throws {
        var crb = CRBConfig.implicitLocal("192.0.2.1")
        crb.dutIP = "192.0.2.1"
        crb.dutUser = "root"
        #expect(throws: RemoteDUTError.self) { _ = try RemoteDUT.authentication(for: crb) }
        do { _ = try RemoteDUT.authentication(for: crb) } catch {
            #expect(error.description.contains("dut_ip=192.0.2.1 dut_user=root: no credentials"))
        }
        crb.dutPassword = "pw"
        #expect(try RemoteDUT.authentication(for: crb).methodName == "password")
        crb.values["dut_key"] = "/nonexistent/id_ed25519"
        #expect(throws: RemoteDUTError.self) { _ = try RemoteDUT.authentication(for: crb) }
        #expect(RemoteDUT.connectTimeout(environment: ["DTS_CONNECT_TIMEOUT": "1.5"]) == .milliseconds(1500))
        #expect(RemoteDUT.connectTimeout(environment: ["DTS_CONNECT_TIMEOUT": "junk"]) == RemoteDUT.defaultConnectTimeout)
    }
}

// MARK: - the namespace host

/// A second "host": a network namespace `dts-remote-<rand>` joined to this machine by a veth pair
/// (10.254.N.1 here, 10.254.N.2 inside, N picked unused), with `lo` up and a real dropbear
/// listening on 10.254.N.2:22 inside the namespace. `tearDown()` kills and reaps the server and
/// its session processes and deletes the namespace (and with it the veth pair).
final class RemoteNamespaceHost: @unchecked Sendable {
    static let user = "dtstest"
    static let password = "dtstest-pw"
    static let ip = "/usr/sbin/ip"

    let namespace: String
    let address: String
    let hostSideAddress: String
    /// An address of the veth subnet nobody holds.
    let unusedAddress: String
    let hostVeth: String
    let dir: TempDir
    private(set) var hostKey: String
    private(set) var publicKeyBase64 = ""
    private(set) var namespaceInode = ""
    private var server: ChildProcess?
    private var sshd: ChildProcess?
    private var namespaceCreated = false

    init() throws {
        for (program, package) in [(Self.ip, "iproute2"), ("/usr/sbin/dropbear", "dropbear-bin"), ("/usr/bin/dropbearkey", "dropbear-bin")] {
            try requireProgram(program, package: package, setup: "remote.sh")
        }
        guard getpwnam(Self.user) != nil else { throw RemoteHostError("user \(Self.user) is missing: run scripts/setup.d/remote.sh") }
        guard FileManager.default.fileExists(atPath: "/usr/lib/sftp-server") else {
            throw RemoteHostError("/usr/lib/sftp-server is missing (dropbear's SFTP): run scripts/setup.d/remote.sh")
        }
        let tag = String(UInt32.random(in: 0x10_0000...0xFF_FFFF), radix: 16)
        namespace = "dts-remote-\(tag)"
        hostVeth = "dtsr\(tag)h"
        dir = try TempDir("dts-remote-host")
        hostKey = dir.path + "/hostkey"
        let subnet = try Self.freeSubnet()
        hostSideAddress = "10.254.\(subnet).1"
        address = "10.254.\(subnet).2"
        unusedAddress = "10.254.\(subnet).3"
        do {
            try Self.ip(["netns", "add", namespace])
            namespaceCreated = true
            let inner = "dtsr\(tag)n"
            try Self.ip(["link", "add", hostVeth, "type", "veth", "peer", "name", inner])
            try Self.ip(["link", "set", inner, "netns", namespace])
            try Self.ip(["addr", "add", hostSideAddress + "/24", "dev", hostVeth])
            try Self.ip(["link", "set", hostVeth, "up"])
            try Self.ip(["netns", "exec", namespace, Self.ip, "addr", "add", address + "/24", "dev", inner])
            try Self.ip(["netns", "exec", namespace, Self.ip, "link", "set", inner, "up"])
            try Self.ip(["netns", "exec", namespace, Self.ip, "link", "set", "lo", "up"])
            namespaceInode = try Self.run(Self.ip, ["netns", "exec", namespace, "readlink", "/proc/self/ns/net"])
                .trimmingCharacters(in: .whitespacesAndNewlines)
            try makeHostKey()
            try startServer()
        } catch {
            tearDown()
            throw error
        }
    }

    /// A crbs.cfg section for this host with the test user's password (named by its address by default).
    func crbsSection(_ name: String? = nil) -> String {
        "[\(name ?? address)]\ndut_ip = \(address)\ndut_user = \(Self.user)\ndut_passwd = \(Self.password)\n\n"
    }

    /// The same section as a ``CRBConfig``.
    func crb(_ name: String? = nil) -> CRBConfig {
        CRBConfig(name: name ?? address, dutIP: address, dutUser: Self.user, dutPassword: Self.password,
                  dutPort: 22, testerIP: nil, testerPassword: "", values: [:], location: .builtIn("test"))
    }

    /// The dropbear log (stderr, `-E`).
    var serverLog: String { (try? String(contentsOfFile: dir.path + "/dropbear.log", encoding: .utf8)) ?? "" }

    private func makeHostKey() throws {
        try? FileManager.default.removeItem(atPath: hostKey)
        _ = try Self.run("/usr/bin/dropbearkey", ["-t", "ed25519", "-f", hostKey])
        let line = try Self.run("/usr/bin/dropbearkey", ["-y", "-f", hostKey]).split(separator: "\n").first { $0.hasPrefix("ssh-ed25519 ") }
        guard let blob = line?.split(separator: " ").dropFirst().first else { throw RemoteHostError("dropbearkey -y printed no ssh-ed25519 line") }
        publicKeyBase64 = String(blob)
    }

    private func startServer() throws {
        let log = dir.path + "/dropbear.log"
        // Spawn, not Foundation's Process: that passes on the test runner's blocked SIGCHLD, and
        // dropbear then never notices its session child exit and never closes the channel.
        let started = try ChildProcess.spawn([Self.ip, "netns", "exec", namespace, "/usr/sbin/dropbear", "-F", "-E", "-m",
                                              "-p", address + ":22", "-r", hostKey, "-P", dir.path + "/dropbear.pid"], .output(to: log))
        server = started
        if waitUntilListening(started, port: 22, host: address) { return }
        throw RemoteHostError("dropbear did not start in namespace \(namespace) on \(address):22: \(serverLog)")
    }

    /// Starts OpenSSH's sshd in the namespace on `address:port`, public-key login only, with
    /// `authorizedKeys` as the only authorized keys file. Stopped by `tearDown()`.
    func startSshd(port: Int, authorizedKeys: String) throws {
        try requireProgram("/usr/sbin/sshd", package: "openssh-server", setup: "remote.sh")
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        let key = dir.path + "/ssh_host_ed25519_key"
        _ = try Self.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key])
        let config = """
            Port \(port)
            ListenAddress \(address)
            HostKey \(key)
            PidFile \(dir.path)/sshd.pid
            UsePAM no
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PubkeyAuthentication yes
            AuthorizedKeysFile \(authorizedKeys)
            StrictModes no
            PermitRootLogin no
            Subsystem sftp /usr/lib/openssh/sftp-server

            """
        try config.write(toFile: dir.path + "/sshd_config", atomically: true, encoding: .utf8)
        let started = try ChildProcess.spawn([Self.ip, "netns", "exec", namespace, "/usr/sbin/sshd", "-D", "-e", "-f", dir.path + "/sshd_config"],
                                             .output(to: dir.path + "/sshd.log"))
        sshd = started
        if waitUntilListening(started, port: port, host: address) { return }
        throw RemoteHostError("sshd did not start in namespace \(namespace) on \(address):\(port): \(sshdLog)")
    }

    /// The sshd log (`-e`).
    var sshdLog: String { (try? String(contentsOfFile: dir.path + "/sshd.log", encoding: .utf8)) ?? "" }

    /// Stops the server and starts it again (with a new host key if asked) on the same address.
    func restartServer(newHostKey: Bool) throws {
        stopServer()
        if newHostKey { try makeHostKey() }
        try startServer()
    }

    /// Kills the server's session processes (SIGKILL): every SSH connection to it breaks, the
    /// server keeps listening, and what the sessions started in the background (a daemonized
    /// QEMU) keeps running.
    func dropSessions() {
        guard let server else { return }
        for child in ProcessTable.children(of: server.pid) { kill(child, SIGKILL) }
    }

    /// Waits up to `timeout` until the server has no session child left.
    func waitForNoSessions(timeout: Duration = .seconds(10)) -> Bool {
        guard let server else { return false }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if ProcessTable.children(of: server.pid).isEmpty { return true }
            usleep(50_000)
        }
        return false
    }

    private func stopServer() {
        guard let server else { return }
        Self.killTree(server)
        self.server = nil
    }

    /// Kills a server, its session processes and their children (by pid), and reaps the server.
    private static func killTree(_ server: ChildProcess) {
        if server.isRunning {
            for child in ProcessTable.children(of: server.pid) {
                for grandchild in ProcessTable.children(of: child) { kill(grandchild, SIGKILL) }
                kill(child, SIGKILL)
            }
        }
        server.signal(SIGKILL)
        server.waitUntilExit()
    }

    /// Kills and reaps the server, deletes the namespace and the veth pair. Safe to call twice.
    func tearDown() {
        stopServer()
        if let sshd { Self.killTree(sshd) }
        sshd = nil
        if namespaceCreated {
            _ = try? Self.ip(["netns", "delete", namespace])
            namespaceCreated = false
        }
        // The host end goes with its peer; remove it if it did not.
        if FileManager.default.fileExists(atPath: "/sys/class/net/\(hostVeth)") {
            _ = try? Self.ip(["link", "delete", hostVeth])
        }
    }

    /// A third octet N such that no interface here has an address in 10.254.N.0/24.
    private static func freeSubnet() throws -> Int {
        let used = try run(ip, ["-o", "-4", "addr", "show"])
        for _ in 0..<50 {
            let n = Int.random(in: 1...250)
            if !used.contains(" 10.254.\(n).") { return n }
        }
        throw RemoteHostError("no free 10.254.N.0/24 subnet")
    }

    @discardableResult
    private static func ip(_ arguments: [String]) throws -> String { try run(ip, arguments) }

    static func run(_ program: String, _ arguments: [String]) throws -> String {
        let result = try runQuickProgram(program, arguments)
        guard result.status == 0 else {
            throw RemoteHostError("\(([program] + arguments).joined(separator: " ")) exited \(result.status): \(result.stderr)\(result.stdout)")
        }
        return result.stdout
    }
}

struct RemoteHostError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The pid files of remote execs (`/tmp/.dts-exec-*`).
func remotePidFiles(tag: String) -> Set<String> {
    Set(((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter { $0.hasPrefix(".dts-exec-\(tag)-") })
}

/// Every regular file under `directory`.
func remoteAllFiles(under directory: String) throws -> [String] {
    let names = FileManager.default.enumerator(atPath: directory)?.allObjects as? [String] ?? []
    return names.map { directory + "/" + $0 }.filter {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: $0, isDirectory: &isDirectory) && !isDirectory.boolValue
    }
}
