import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Local file copy keeping the mode, with progress, off the cooperative pool.
enum LocalCopy {
    static func copy(from source: String, to destination: String, mode: Int32?, progress: CopyProgress?) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global().async {
                do {
                    try copyBlocking(from: source, to: destination, mode: mode, progress: progress)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    static func copyBlocking(from source: String, to destination: String, mode: Int32?, progress: CopyProgress?) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw LocalSessionError.io(operation: "open", path: source, errno: errno) }
        defer { Glibc.close(input) }
        var info = stat()
        guard fstat(input, &info) == 0 else { throw LocalSessionError.io(operation: "stat", path: source, errno: errno) }
        let finalMode = mode_t(mode ?? Int32(info.st_mode & 0o7777))
        let output = open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, finalMode)
        guard output >= 0 else { throw LocalSessionError.io(operation: "create", path: destination, errno: errno) }
        defer { Glibc.close(output) }
        let total = Int64(info.st_size)
        var done: Int64 = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        progress?(0, total)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(input, $0.baseAddress!, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw LocalSessionError.io(operation: "read", path: source, errno: errno) }
            if n == 0 { break }
            var written = 0
            while written < n {
                let w = chunk.withUnsafeBytes { Glibc.write(output, $0.baseAddress! + written, n - written) }
                if w < 0 { if errno == EINTR { continue }; throw LocalSessionError.io(operation: "write", path: destination, errno: errno) }
                written += w
            }
            done += Int64(n)
            progress?(done, total)
        }
        guard fchmod(output, finalMode) == 0 else { throw LocalSessionError.io(operation: "chmod", path: destination, errno: errno) }
    }
}
