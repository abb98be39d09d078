import DTSProcess
import DTSSSH
import DTSSession
import DTSTestSupport
import Foundation
import Logging
import Testing
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Facts the tests rely on, set up by scripts/setup.d/ssh.sh.
enum TestUsers {
    static let user = "dtstest"
    static let password = "dtstest-pw"
    static let rootPassword = ProcessInfo.processInfo.environment["DTS_SSH_ROOT_PASSWORD"] ?? "dtsroot-pw"
    static let home = "/home/dtstest"
}

func requireTestUser() throws {
    guard getpwnam(TestUsers.user) != nil else {
        throw TestSetupError(description: "user \(TestUsers.user) is missing: run scripts/setup.d/ssh.sh as root")
    }
}

/// A real dropbear server on 127.0.0.1, in the foreground, with its own ed25519 host key.
final class DropbearServer: @unchecked Sendable {
    let port: Int
    let dir: TempDir
    private(set) var server: ChildProcess?
    let hostKeyPath: String

    /// Starts dropbear on `port` (a free one if nil) with a new host key (or the given key file).
    let extraArguments: [String]

    init(port: Int? = nil, hostKeyPath: String? = nil, dir: TempDir? = nil, extraArguments: [String] = []) throws {
        self.extraArguments = extraArguments
        try requireProgram("/usr/sbin/dropbear", package: "dropbear-bin", setup: "ssh.sh")
        try requireProgram("/usr/bin/dropbearkey", package: "dropbear-bin", setup: "ssh.sh")
        try requireTestUser()
        self.dir = try dir ?? TempDir("dts-dropbear")
        self.port = try port ?? freePort()
        if let hostKeyPath {
            self.hostKeyPath = hostKeyPath
        } else {
            let key = self.dir.file("hostkey-\(UUID().uuidString.prefix(8))")
            let made = try runQuickProgram("/usr/bin/dropbearkey", ["-t", "ed25519", "-f", key])
            guard made.status == 0 else { throw TestSetupError(description: "dropbearkey failed: \(made.output)") }
            self.hostKeyPath = key
        }
        try start()
    }

    private func start() throws {
        let log = dir.file("dropbear-\(port).log")
        // Not Foundation's Process: it passes on the test runner's blocked SIGCHLD, and dropbear then
        // never notices its session child exit and never closes the channel. Spawn resets the signal state.
        let server = try ChildProcess.spawn(["/usr/sbin/dropbear", "-F", "-E", "-m", "-r", hostKeyPath, "-p", "127.0.0.1:\(port)",
                                             "-P", dir.file("dropbear-\(port).pid")] + extraArguments, .output(to: log))
        self.server = server
        if waitUntilListening(server, port: port) { return }
        stop()
        throw TestSetupError(description: "dropbear did not start on port \(port): \(dir.read("dropbear-\(port).log"))")
    }

    /// Pids of the per-connection dropbear processes (children of the server).
    func childPids() -> [pid_t] {
        guard let server, server.isRunning else { return [] }
        return ProcessTable.children(of: server.pid)
    }

    /// Kills the server and every per-connection child it started (by pid), and reaps the server.
    func stop() {
        for child in childPids() { kill(child, SIGKILL) }
        server?.signal(SIGKILL)
        server?.waitUntilExit()
        server = nil
    }

    /// Stops the server and removes its directory.
    func shutdown() {
        stop()
        if let keep = ProcessInfo.processInfo.environment["DTS_SSH_KEEP_LOGS"] {
            try? FileManager.default.copyItem(atPath: dir.file("dropbear-\(port).log"), toPath: keep + "/dropbear-\(port).log")
        }
        dir.remove()
    }
}

/// ed25519 client keys made with ssh-keygen, authorized for the test user while the value lives.
final class ClientKey: Sendable {
    let privateKeyPath: String
    let publicKeyPath: String
    let passphrase: String?
    private let line: String
    private static let fileLock = Mutex(())
    static let authorizedKeys = TestUsers.home + "/.ssh/authorized_keys"

    init(in dir: TempDir, name: String, passphrase: String?, authorize: Bool = true) throws {
        try requireProgram("/usr/bin/ssh-keygen", package: "openssh-client", setup: "ssh.sh")
        try requireTestUser()
        privateKeyPath = dir.file(name)
        publicKeyPath = privateKeyPath + ".pub"
        self.passphrase = passphrase
        let made = try runQuickProgram("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", passphrase ?? "", "-C", "dts-test-\(name)", "-f", privateKeyPath])
        guard made.status == 0 else { throw TestSetupError(description: "ssh-keygen failed: \(made.output)") }
        line = try String(contentsOfFile: publicKeyPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        if authorize { try Self.edit { $0 + [line] } }
    }

    var authentication: SSHAuthentication {
        .publicKeyFile(privateKeyPath: privateKeyPath, publicKeyPath: publicKeyPath, passphrase: passphrase)
    }

    /// Removes the key from authorized_keys.
    func revoke() {
        try? Self.edit { $0.filter { $0 != line } }
    }

    private static func edit(_ change: ([String]) -> [String]) throws {
        try fileLock.withLock { _ in
            let text = (try? String(contentsOfFile: authorizedKeys, encoding: .utf8)) ?? ""
            let lines = text.split(separator: "\n").map(String.init)
            let kept = change(lines)
            let updated = kept.isEmpty ? "" : kept.joined(separator: "\n") + "\n"
            // Rewrite in place so owner and mode stay as the setup script made them.
            guard let handle = FileHandle(forUpdatingAtPath: authorizedKeys) else {
                throw TestSetupError(description: "cannot open \(authorizedKeys): run scripts/setup.d/ssh.sh")
            }
            defer { try? handle.close() }
            try handle.truncate(atOffset: 0)
            try handle.write(contentsOf: Data(updated.utf8))
        }
    }
}

/// Connect options for the test user on a local server, with a per-test known-hosts file.
func testOptions(port: Int, auth: SSHAuthentication, knownHosts: String, user: String = TestUsers.user,
                 transcript: SSHTranscriptHook? = nil) -> SSHConnectOptions {
    SSHConnectOptions(host: "127.0.0.1", port: port, user: user, authentication: auth,
                      hostKeyPolicy: .recordOnFirstUse(knownHostsPath: knownHosts), connectTimeout: .seconds(10),
                      transcript: transcript)
}

/// Writes `size` random bytes to `path`.
func writeRandomFile(_ path: String, size: Int) throws {
    let random = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
    defer { try? random.close() }
    let data = try random.read(upToCount: size) ?? Data()
    guard data.count == size else { throw TestSetupError(description: "read \(data.count) of \(size) random bytes") }
    try data.write(to: URL(fileURLWithPath: path))
}

/// sha256sum of a local file.
func sha256(ofLocal path: String) throws -> String {
    let summed = try runQuickProgram("/usr/bin/sha256sum", [path])
    guard summed.status == 0 else { throw TestSetupError(description: "sha256sum failed: \(summed.output)") }
    return String(summed.stdout.prefix(64))
}

/// A private OpenSSH sshd on 127.0.0.1 (foreground, own config and host key) offering only
/// keyboard-interactive authentication through PAM, which dropbear's server does not implement.
final class SshdServer: @unchecked Sendable {
    let port: Int
    let dir: TempDir
    private var server: ChildProcess?

    init() throws {
        try requireProgram("/usr/sbin/sshd", package: "openssh-server", setup: "ssh.sh")
        try requireProgram("/usr/bin/ssh-keygen", package: "openssh-client", setup: "ssh.sh")
        try requireTestUser()
        dir = try TempDir("dts-sshd")
        port = try freePort()
        // sshd's privilege separation directory (on tmpfs, so it may vanish after a reboot).
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        let key = dir.file("ssh_host_ed25519_key")
        let made = try runQuickProgram("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key])
        guard made.status == 0 else { throw TestSetupError(description: "ssh-keygen failed: \(made.output)") }
        let config = """
            Port \(port)
            ListenAddress 127.0.0.1
            HostKey \(key)
            PidFile \(dir.file("sshd.pid"))
            UsePAM yes
            KbdInteractiveAuthentication yes
            PasswordAuthentication no
            PubkeyAuthentication no
            PermitRootLogin no
            AuthenticationMethods keyboard-interactive

            """
        try config.write(toFile: dir.file("sshd_config"), atomically: true, encoding: .utf8)
        let server = try ChildProcess.spawn(["/usr/sbin/sshd", "-D", "-e", "-f", dir.file("sshd_config")], .output(to: dir.file("sshd.log")))
        self.server = server
        if waitUntilListening(server, port: port) { return }
        let log = dir.read("sshd.log")
        shutdown()
        throw TestSetupError(description: "sshd did not start: \(log)")
    }

    func shutdown() {
        if let server {
            if server.isRunning { for child in ProcessTable.children(of: server.pid) { kill(child, SIGKILL) } }
            server.signal(SIGKILL)
            server.waitUntilExit()
        }
        server = nil
        dir.remove()
    }
}
