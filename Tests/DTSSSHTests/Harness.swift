import DTSProcess
import DTSSSH
import DTSSession
import Foundation
import Logging
import Testing

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

struct HarnessError: Error, CustomStringConvertible {
    var description: String
}

/// Fails with an install hint if a program the tests need is missing.
func requireProgram(_ path: String, package: String) throws {
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw HarnessError(description: "\(path) is missing: install it with `apt-get install -y \(package)` (or run scripts/setup.d/ssh.sh)")
    }
}

func requireTestUser() throws {
    guard getpwnam(TestUsers.user) != nil else {
        throw HarnessError(description: "user \(TestUsers.user) is missing: run scripts/setup.d/ssh.sh as root")
    }
}

/// Runs a program to completion with output to a file; returns status and output.
@discardableResult
func runProgram(_ path: String, _ args: [String]) throws -> (status: Int32, output: String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dts-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let log = dir.appendingPathComponent("out").path
    _ = FileManager.default.createFile(atPath: log, contents: nil)
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
    defer { try? handle.close() }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = args
    process.standardOutput = handle
    process.standardError = handle
    process.standardInput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    return (process.terminationStatus, output)
}

/// A free TCP port on 127.0.0.1 (bound and released).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard bound else { throw HarnessError(description: "cannot bind a free port") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A scratch directory removed by `remove()`.
final class TempDir: @unchecked Sendable {
    let path: String
    init(_ prefix: String = "dts-ssh-test") throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { path + "/" + name }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// A real dropbear server on 127.0.0.1, in the foreground, with its own ed25519 host key.
final class DropbearServer: @unchecked Sendable {
    let port: Int
    let dir: TempDir
    private(set) var pid: pid_t?
    let hostKeyPath: String

    /// Starts dropbear on `port` (a free one if nil) with a new host key (or the given key file).
    let extraArguments: [String]

    init(port: Int? = nil, hostKeyPath: String? = nil, dir: TempDir? = nil, extraArguments: [String] = []) throws {
        self.extraArguments = extraArguments
        try requireProgram("/usr/sbin/dropbear", package: "dropbear-bin")
        try requireProgram("/usr/bin/dropbearkey", package: "dropbear-bin")
        try requireTestUser()
        self.dir = try dir ?? TempDir("dts-dropbear")
        self.port = try port ?? freePort()
        if let hostKeyPath {
            self.hostKeyPath = hostKeyPath
        } else {
            let key = self.dir.file("hostkey-\(UUID().uuidString.prefix(8))")
            let (status, output) = try runProgram("/usr/bin/dropbearkey", ["-t", "ed25519", "-f", key])
            guard status == 0 else { throw HarnessError(description: "dropbearkey failed: \(output)") }
            self.hostKeyPath = key
        }
        try start()
    }

    private func start() throws {
        let log = dir.file("dropbear-\(port).log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        // Not Foundation's Process: it passes on the test runner's blocked SIGCHLD, and dropbear then
        // never notices its session child exit and never closes the channel. Spawn resets the signal state.
        let pid = try Spawn.start(["/usr/sbin/dropbear", "-F", "-E", "-m", "-r", hostKeyPath, "-p", "127.0.0.1:\(port)",
                                   "-P", dir.file("dropbear-\(port).pid")] + extraArguments, .output(to: log))
        self.pid = pid
        // Wait until it accepts connections.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if canConnect() { return }
            if kill(pid, 0) != 0 { break }
            if WaitStatus.reapIfExited(pid) != nil { self.pid = nil; break }
            usleep(20_000)
        }
        stop()
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        throw HarnessError(description: "dropbear did not start on port \(port): \(text)")
    }

    private func canConnect() -> Bool { tcpConnects(port: port) }

    /// Pids of the per-connection dropbear processes (children of the server).
    func childPids() -> [pid_t] {
        guard let pid else { return [] }
        return ProcessTable.children(of: pid)
    }

    /// Kills the server and every per-connection child it started (by pid), and reaps the server.
    func stop() {
        for child in childPids() { kill(child, SIGKILL) }
        if let pid {
            kill(pid, SIGKILL)
            _ = WaitStatus.wait(for: pid)
        }
        pid = nil
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
final class ClientKey: @unchecked Sendable {
    let privateKeyPath: String
    let publicKeyPath: String
    let passphrase: String?
    private let line: String
    private static let fileLock = NSLock()
    static let authorizedKeys = TestUsers.home + "/.ssh/authorized_keys"

    init(in dir: TempDir, name: String, passphrase: String?, authorize: Bool = true) throws {
        try requireProgram("/usr/bin/ssh-keygen", package: "openssh-client")
        try requireTestUser()
        privateKeyPath = dir.file(name)
        publicKeyPath = privateKeyPath + ".pub"
        self.passphrase = passphrase
        let (status, output) = try runProgram("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", passphrase ?? "", "-C", "dts-test-\(name)", "-f", privateKeyPath])
        guard status == 0 else { throw HarnessError(description: "ssh-keygen failed: \(output)") }
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
        fileLock.lock()
        defer { fileLock.unlock() }
        let text = (try? String(contentsOfFile: authorizedKeys, encoding: .utf8)) ?? ""
        let lines = text.split(separator: "\n").map(String.init)
        let kept = change(lines)
        let updated = kept.isEmpty ? "" : kept.joined(separator: "\n") + "\n"
        // Rewrite in place so owner and mode stay as the setup script made them.
        guard let handle = FileHandle(forUpdatingAtPath: authorizedKeys) else {
            throw HarnessError(description: "cannot open \(authorizedKeys): run scripts/setup.d/ssh.sh")
        }
        defer { try? handle.close() }
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: Data(updated.utf8))
    }
}

/// Connect options for the test user on a local server, with a per-test known-hosts file.
func testOptions(port: Int, auth: SSHAuthentication, knownHosts: String, user: String = TestUsers.user,
                 transcript: SSHTranscriptHook? = nil) -> SSHConnectOptions {
    SSHConnectOptions(host: "127.0.0.1", port: port, user: user, authentication: auth,
                      hostKeyPolicy: .recordOnFirstUse(knownHostsPath: knownHosts), connectTimeout: .seconds(10),
                      transcript: transcript)
}

/// sha256sum of a local file.
func sha256(ofLocal path: String) throws -> String {
    let (status, output) = try runProgram("/usr/bin/sha256sum", [path])
    guard status == 0 else { throw HarnessError(description: "sha256sum failed: \(output)") }
    return String(output.prefix(64))
}

/// A private OpenSSH sshd on 127.0.0.1 (foreground, own config and host key) offering only
/// keyboard-interactive authentication through PAM, which dropbear's server does not implement.
final class SshdServer: @unchecked Sendable {
    let port: Int
    let dir: TempDir
    private var pid: pid_t?

    init() throws {
        try requireProgram("/usr/sbin/sshd", package: "openssh-server")
        try requireProgram("/usr/bin/ssh-keygen", package: "openssh-client")
        try requireTestUser()
        dir = try TempDir("dts-sshd")
        port = try freePort()
        // sshd's privilege separation directory (on tmpfs, so it may vanish after a reboot).
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        let key = dir.file("ssh_host_ed25519_key")
        let (status, output) = try runProgram("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key])
        guard status == 0 else { throw HarnessError(description: "ssh-keygen failed: \(output)") }
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
        let log = dir.file("sshd.log")
        let started = try Spawn.start(["/usr/sbin/sshd", "-D", "-e", "-f", dir.file("sshd_config")], .output(to: log))
        pid = started
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if tcpConnects(port: port) { return }
            if WaitStatus.reapIfExited(started) != nil { pid = nil; break }
            usleep(20_000)
        }
        shutdown()
        throw HarnessError(description: "sshd did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    func shutdown() {
        if let pid {
            for child in ProcessTable.children(of: pid) { kill(child, SIGKILL) }
            kill(pid, SIGKILL)
            _ = WaitStatus.wait(for: pid)
        }
        pid = nil
        dir.remove()
    }
}

func tcpConnects(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}
