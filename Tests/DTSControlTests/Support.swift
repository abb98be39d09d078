import DTSProcess
import DTSTestSupport
import Foundation
import Testing
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// SIGKILL to `child` and wait until it is reaped.
func stop(_ child: ChildProcess) async {
    child.signal(SIGKILL)
    _ = await child.waitForExit()
}

/// A paused QEMU (`-S`, TCG) with a QMP socket, user networking with a host forward to port 0,
/// the management e1000 at slot 0x1f, and two passthrough-like virtio NICs `pt_0` and `pt_1`.
struct QEMUFixture {
    let dir: TempDir
    let child: ChildProcess
    let qmpPath: String
    let chardevPath: String

    static func start(extra: [String] = []) throws -> QEMUFixture {
        let qemu = try requireProgram("qemu-system-x86_64", package: "qemu-system-x86", setup: "control.sh")
        let dir = try TempDir("qmp")
        let qmpPath = dir.file("qmp.sock")
        let chardevPath = dir.file("qga.sock")
        let arguments = [
            "-machine", "pc,accel=tcg", "-S", "-display", "none", "-nodefaults", "-smp", "2", "-m", "128M",
            "-object", "memory-backend-memfd,id=mem0,size=128M,share=on", "-numa", "node,memdev=mem0",
            "-qmp", "unix:\(qmpPath),server=on,wait=off",
            "-chardev", "socket,id=qga0,path=\(chardevPath),server=on,wait=off",
            "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:0-:22",
            "-device", "e1000,netdev=n0,addr=1f,id=mgmt",
            "-netdev", "user,id=n1", "-device", "virtio-net-pci,netdev=n1,id=pt_0",
            "-netdev", "user,id=n2", "-device", "virtio-net-pci,netdev=n2,id=pt_1,addr=5",
        ] + extra
        do {
            let child = try ChildProcess.spawn([qemu] + arguments, .output(to: dir.file("qemu.log")))
            return QEMUFixture(dir: dir, child: child, qmpPath: qmpPath, chardevPath: chardevPath)
        } catch {
            dir.remove()
            throw error
        }
    }

    var log: String { dir.read("qemu.log") }

    func stop() async {
        await DTSControlTests.stop(child)
        dir.remove()
    }
}

/// Runs `body` with a fresh QEMU; always kills, reaps and cleans up, even when `body` throws.
func withQEMU(extra: [String] = [], _ body: (QEMUFixture) async throws -> Void) async throws {
    let fixture = try QEMUFixture.start(extra: extra)
    do {
        try await body(fixture)
    } catch {
        let log = fixture.log
        await fixture.stop()
        if !log.isEmpty { Issue.record("qemu output:\n\(log)") }
        throw error
    }
    await fixture.stop()
}

/// The host's own qemu-ga on a unix socket, with every power command disabled (`-b`), so that
/// even a buggy test cannot power off this machine.
struct GuestAgentFixture {
    let dir: TempDir
    let child: ChildProcess
    let socketPath: String

    static let blockedCommands = "guest-shutdown,guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid"

    static func start() throws -> GuestAgentFixture {
        let agent = try requireProgram("qemu-ga", package: "qemu-guest-agent", setup: "control.sh")
        let dir = try TempDir("qga")
        let socketPath = dir.file("qga.sock")
        do {
            let child = try ChildProcess.spawn(
                [agent, "-m", "unix-listen", "-p", socketPath, "-t", dir.path, "-f", dir.file("qga.pid"), "-b", blockedCommands],
                .output(to: dir.file("qga.log")))
            return GuestAgentFixture(dir: dir, child: child, socketPath: socketPath)
        } catch {
            dir.remove()
            throw error
        }
    }

    var log: String { dir.read("qga.log") }

    func stop() async {
        await DTSControlTests.stop(child)
        dir.remove()
    }
}

/// Runs `body` with a host qemu-ga; always kills, reaps and cleans up.
func withGuestAgent(_ body: (GuestAgentFixture) async throws -> Void) async throws {
    let fixture = try GuestAgentFixture.start()
    do {
        try await body(fixture)
    } catch {
        let log = fixture.log
        await fixture.stop()
        if !log.isEmpty { Issue.record("qemu-ga output:\n\(log)") }
        throw error
    }
    await fixture.stop()
}

// MARK: - A scripted fake peer (for protocol edge cases only)

/// One accepted connection of a ``FakePeer``; blocking calls with deadlines, run on the peer's thread.
final class FakeConnection {
    let fd: Int32
    private var pending: [UInt8] = []

    init(fd: Int32) { self.fd = fd }

    /// Reads one line (without the newline); leading 0xFF bytes are dropped. `nil` on EOF or after
    /// ``FakePeer/patience``.
    func readLine() -> String? {
        let deadline = Date().addingTimeInterval(FakePeer.patience)
        while true {
            if let newline = pending.firstIndex(of: 0x0A) {
                let line = pending[..<newline].filter { $0 != 0xFF }
                pending.removeSubrange(...newline)
                return String(decoding: line, as: UTF8.self)
            }
            let remaining = Int(deadline.timeIntervalSinceNow * 1000)
            if remaining <= 0 { return nil }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32(remaining)) > 0 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { return nil }
            pending.append(contentsOf: buffer[0..<count])
        }
    }

    /// Reads one line and parses it as a JSON object.
    func readMessage() -> [String: Any]? {
        guard let line = readLine(), let data = line.data(using: .utf8) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }

    func write(_ bytes: [UInt8]) { _ = UnixSocket.sendAll(bytes, to: fd) }

    func write(_ text: String) { write(Array(text.utf8)) }
}

/// A unix socket server that accepts one connection and runs a script on a dedicated thread.
final class FakePeer: Sendable {
    let path: String
    private let listenFD: Int32
    /// Whether the script finished, and its failure.
    private let outcome = Mutex((finished: false, failure: String?.none))

    init(path: String) throws {
        self.path = path
        listenFD = try UnixSocket.listen(at: path, backlog: 4)
    }

    /// How long the peer waits for the client to connect or to send a line. Long on purpose: the
    /// client under test runs on Swift's cooperative pool, which other tests in the same process
    /// can keep busy for seconds on a 2-core machine; a short window then fails a test for a delay
    /// that is not the client's. A client that behaves ends the script at once (it sends, or it
    /// closes the socket), so a passing test never waits this long.
    static let patience: TimeInterval = 30

    /// Accepts one connection (within ``patience``) and runs `script` on it, then closes it.
    func serve(_ script: @escaping @Sendable (FakeConnection) throws -> Void) {
        let thread = Thread { [self] in
            var descriptor = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
            var problem: String?
            if poll(&descriptor, 1, Int32(Self.patience * 1000)) > 0 {
                let fd = accept(listenFD, nil, nil)
                if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
                if fd >= 0 {
                    do { try script(FakeConnection(fd: fd)) } catch { problem = "\(error)" }
                    Glibc.close(fd)
                } else {
                    problem = "accept failed"
                }
            } else {
                problem = "no client within \(Int(Self.patience)) s"
            }
            outcome.withLock { $0 = (true, problem) }
        }
        thread.start()
    }

    /// Waits until the script finished; returns its failure, if any.
    func waitDone(timeout: Duration = .seconds(Int64(patience) + 10)) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (done, problem) = outcome.withLock { $0 }
            if done { return problem }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return "fake peer script did not finish"
    }

    deinit {
        Glibc.close(listenFD)
        unlink(path)
    }
}

/// Measures how long `body` takes.
func elapsed<T>(_ body: () async throws -> T) async rethrows -> (T, Duration) {
    let start = ContinuousClock.now
    let value = try await body()
    return (value, ContinuousClock.now - start)
}
