import DTSProcess
import DTSSSH
import DTSSession
import DTSTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Runs blocking socket I/O on its own thread, off Swift's small cooperative pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// A blocking client of a local Unix socket.
struct UnixClient: Sendable {
    let fd: Int32

    init(path: String) throws { fd = try UnixSocket.connect(to: path) }

    func write(_ bytes: [UInt8]) throws {
        guard UnixSocket.sendAll(bytes, to: fd) else { throw TestSetupError(description: "send: \(String(cString: strerror(errno)))") }
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Everything until EOF.
    func readToEnd() throws -> [UInt8] {
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return all }
            guard n > 0 else { throw TestSetupError(description: "recv: \(String(cString: strerror(errno)))") }
            all.append(contentsOf: buffer[0..<n])
        }
    }

    func close() { Glibc.close(fd) }
}

@Suite("Unix socket forwarding over SSH (real dropbear)", .serialized)
struct SocketForwardTests {
    /// A real server on the "remote" side: socat listening on a Unix socket, upper-casing what it
    /// gets until EOF. The forward runs `socat - UNIX-CONNECT:` as the remote user: bytes go
    /// through, EOF goes both ways, and the forward's close removes the local socket.
    @Test("a Unix socket on the server, reached through a local socket, EOF both ways")
    func socatToRemoteUnixSocket() async throws {
        try requireProgram("/usr/bin/socat", package: "socat", setup: "ssh.sh")
        try await withServer { _, connection, dir in
            // The remote user (dtstest) must reach the server socket: a world-searchable directory.
            let shared = "/tmp/dts-forward-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            defer { try? FileManager.default.removeItem(atPath: shared) }
            let serverSocket = shared + "/upper.sock"
            let server = try ChildProcess.spawn(["/usr/bin/socat", "UNIX-LISTEN:\(serverSocket),fork,mode=0777", "SYSTEM:tr a-z A-Z"],
                                                .output(to: dir.file("socat.log"), processGroup: .newGroup))
            defer { server.signal(SIGKILL); server.waitUntilExit() }
            for _ in 0..<100 where !FileManager.default.fileExists(atPath: serverSocket) { try await Task.sleep(for: .milliseconds(20)) }

            let local = dir.file("forwarded.sock")
            let forward = try await connection.forwardUnixSocket(localPath: local, remoteCommand: "socat - UNIX-CONNECT:\(serverSocket)")
            let mode = try FileManager.default.attributesOfItem(atPath: local)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            for word in ["hello", "second connection"] {
                let reply = try await onThread {
                    let client = try UnixClient(path: local)
                    defer { client.close() }
                    try client.write(Array(word.utf8))
                    client.shutdownWrite()
                    return try client.readToEnd()
                }
                #expect(String(decoding: reply, as: UTF8.self) == word.uppercased())
            }
            // The connection stays usable for commands while the forward listens.
            #expect(try await connection.exec("echo still here", timeout: .seconds(10)).output == "still here\n")
            await forward.close()
            #expect(!FileManager.default.fileExists(atPath: local))
            #expect(throws: (any Error).self) { _ = try UnixClient(path: local) }
        }
    }

    /// 4 MiB of random bytes through `cat` on the server come back unchanged while an exec and an
    /// open-but-idle relay share the connection; closing the forward ends the idle relay (its
    /// client reads EOF).
    @Test("bulk data both ways, an idle relay ended by close")
    func bulkThroughCat() async throws {
        try await withServer { _, connection, dir in
            let local = dir.file("cat.sock")
            let forward = try await connection.forwardUnixSocket(localPath: local, remoteCommand: "cat")
            let idle = try UnixClient(path: local)
            defer { idle.close() }
            try idle.write(Array("ping".utf8))

            var payload = [UInt8](repeating: 0, count: 4 << 20)
            for i in payload.indices { payload[i] = UInt8.random(in: 0...255) }
            let sent = payload
            async let echoed = onThread { () -> [UInt8] in
                let client = try UnixClient(path: local)
                defer { client.close() }
                let writer = Thread { try? client.write(sent); client.shutdownWrite() }
                writer.start()
                return try client.readToEnd()
            }
            let exec = try await connection.exec("seq 1 3", timeout: .seconds(20))
            #expect(exec.output == "1\n2\n3\n")
            let back = try await echoed
            #expect(back.count == sent.count)
            #expect(back == sent)

            await forward.close()
            let rest = try await onThread { try idle.readToEnd() }
            // Whatever `cat` echoed before the close, then EOF rather than a hang.
            #expect("ping".hasPrefix(String(decoding: rest, as: UTF8.self)))
        }
    }
}
