import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Unix stream sockets for the tests' own peers and clients (fake QMP monitors and guest agents,
/// socket-forward clients): descriptors are close-on-exec, writes never raise SIGPIPE.
public enum UnixSocket {
    /// Listens at `path` (a file already there is removed first); returns the listening descriptor.
    public static func listen(at path: String, backlog: Int32 = 8) throws -> Int32 {
        unlink(path)
        var address = try self.address(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let bound = fd >= 0 && withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
        guard bound, Glibc.listen(fd, backlog) == 0 else {
            let reason = String(cString: strerror(errno))
            if fd >= 0 { close(fd) }
            throw TestSetupError(description: "cannot listen on \(path): \(reason)")
        }
        return fd
    }

    /// Connects to the socket at `path`; returns the connected descriptor.
    public static func connect(to path: String) throws -> Int32 {
        var address = try self.address(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let connected = fd >= 0 && withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
        guard connected else {
            let reason = String(cString: strerror(errno))
            if fd >= 0 { close(fd) }
            throw TestSetupError(description: "connect \(path): \(reason)")
        }
        return fd
    }

    /// Sends all of `bytes` on `fd`; `false` when the peer is gone or the socket failed.
    public static func sendAll(_ bytes: [UInt8], to fd: Int32) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { return false }
            offset += written
        }
        return true
    }

    private static func address(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw TestSetupError(description: "unix socket path too long or empty: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }
}
