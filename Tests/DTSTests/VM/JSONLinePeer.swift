import Foundation
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
final class JSONLinePeer: @unchecked Sendable {
    /// Returns the bytes to send for one request, or `nil` to send nothing.
    typealias Answer = @Sendable (_ request: [String: Any]) -> [UInt8]?

    let path: String
    private let listenFD: Int32
    private let greeting: [UInt8]?
    private let answer: Answer
    private let lock = NSLock()
    private var connections: [Int32] = []
    private var closed = false

    init(path: String, greeting: [String: Any]? = nil, answer: @escaping Answer) throws {
        self.path = path
        self.greeting = greeting.map(Self.line)
        self.answer = answer
        unlink(path)
        listenFD = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listenFD, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard listenFD >= 0, bound == 0, listen(listenFD, 8) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(listenFD)
            throw PeerError(description: "cannot listen on \(path): \(reason)")
        }
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
        let open = lock.withLock { () -> [Int32]? in
            guard !closed else { return nil }
            closed = true
            defer { connections = [] }
            return connections
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
            let accepted = lock.withLock { () -> Bool in
                guard !closed else { return false }
                connections.append(fd)
                return true
            }
            guard accepted else { Glibc.close(fd); return }
            let thread = Thread { [self] in serve(fd) }
            thread.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer {
            lock.withLock { connections.removeAll { $0 == fd } }
            Glibc.close(fd)
        }
        if let greeting, !write(greeting, to: fd) { return }
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
                if let bytes = answer(request), !write(bytes, to: fd) { return }
            }
        }
    }

    private func write(_ bytes: [UInt8], to fd: Int32) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { return false }
            offset += written
        }
        return true
    }

    struct PeerError: Error, CustomStringConvertible {
        var description: String
    }
}
