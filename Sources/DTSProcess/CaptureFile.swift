import CSystemShims
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An unlinked temporary file a child writes its output to (``Redirection/descriptor(_:)``):
/// unlike a pipe it never fills up, so a child with big output never blocks, and nothing is left
/// on disk whatever happens.
public final class CaptureFile: @unchecked Sendable {
    /// The descriptor, open read-write and close-on-exec.
    public let fd: Int32

    /// Creates the file in the temporary directory and unlinks it at once.
    public init() throws(SystemCallError) {
        let directory = NSTemporaryDirectory()
        var template = Array((directory + "/dts-capture-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { dts_mkostemp($0.baseAddress!, O_CLOEXEC) }
        guard fd >= 0 else { throw SystemCallError(operation: "mkostemp", path: directory, code: errno) }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        self.fd = fd
    }

    /// Everything written so far.
    public func readAll() -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var offset: off_t = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            result.append(contentsOf: chunk[0..<n])
            offset += off_t(n)
        }
        return result
    }

    deinit { close(fd) }
}
