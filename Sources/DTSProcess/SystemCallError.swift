#if canImport(Glibc)
import Glibc
#endif

/// A system call of the process layer failed (a capture file or a PTY could not be made).
public struct SystemCallError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was being done: `posix_openpt`, `mkostemp`, ...
    public var operation: String
    /// The file or directory concerned, if any.
    public var path: String
    /// The `errno` value.
    public var code: Int32

    /// Creates an error.
    public init(operation: String, path: String = "", code: Int32) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    public var description: String {
        "\(operation)\(path.isEmpty ? "" : " " + path): \(String(cString: strerror(code)))"
    }
}
