import DTSTestSupport
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A small in-process server of QMP's framing (one JSON object per line) on a unix socket, standing
/// in for QEMU's QMP monitor or a guest agent in tests of the VM lifecycle that run no QEMU.
///
/// Every connection gets `greeting` first (QMP's), then each request line is handed to `answer`,
/// whose bytes (if any) are sent back. Leading `0xFF` bytes (a guest-agent client's parser reset)
/// are skipped. Connections are served on their own threads until ``close()``.
final class JSONLinePeer: Sendable {
    /// Returns the bytes to send for one request, or `nil` to send nothing.
    typealias Answer = @Sendable (_ request: [String: Any]) -> [UInt8]?

    let path: String
    private let listenFD: Int32
    private let greeting: [UInt8]?
    private let answer: Answer
    /// Open connections, and whether ``close()`` ran.
    private let state = Mutex((connections: [Int32](), closed: false))

    init(path: String, greeting: [String: Any]? = nil, answer: @escaping Answer) throws {
        self.path = path
        self.greeting = greeting.map(Self.line)
        self.answer = answer
        listenFD = try UnixSocket.listen(at: path)
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "json-line-peer"
        thread.start()
    }

    /// A reply line: `object` as JSON and a newline.
    static func line(_ object: [String: Any]) -> [UInt8] {
        Array((try? JSONSerialization.data(withJSONObject: object)) ?? Data("{}".utf8)) + [0x0A]
    }

    /// `{"return": value, "id": <the request's id>}`.
    static func reply(_ request: [String: Any], _ value: Any = [String: Any]()) -> [UInt8] {
        var object: [String: Any] = ["return": value]
        if let id = request["id"] { object["id"] = id }
        return line(object)
    }

    /// Stops accepting, ends every connection and removes the socket. Idempotent.
    func close() {
        let open = state.withLock { state -> [Int32]? in
            guard !state.closed else { return nil }
            state.closed = true
            defer { state.connections = [] }
            return state.connections
        }
        guard let open else { return }
        shutdown(listenFD, Int32(SHUT_RDWR))
        for fd in open { shutdown(fd, Int32(SHUT_RDWR)) }
        unlink(path)
    }

    deinit {
        close()
        Glibc.close(listenFD)
    }

    private func acceptLoop() {
        while true {
            let fd = accept(listenFD, nil, nil)
            guard fd >= 0 else {
                if errno == EINTR { continue }
                return
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            let accepted = state.withLock { state -> Bool in
                guard !state.closed else { return false }
                state.connections.append(fd)
                return true
            }
            guard accepted else { Glibc.close(fd); return }
            let thread = Thread { [self] in serve(fd) }
            thread.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer {
            state.withLock { $0.connections.removeAll { $0 == fd } }
            Glibc.close(fd)
        }
        if let greeting, !UnixSocket.sendAll(greeting, to: fd) { return }
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { return }
            pending += buffer[0..<count]
            while let newline = pending.firstIndex(of: 0x0A) {
                let line = pending[..<newline].drop { $0 == 0xFF }
                pending.removeSubrange(...newline)
                guard let request = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] else { continue }
                if let bytes = answer(request), !UnixSocket.sendAll(bytes, to: fd) { return }
            }
        }
    }

}
