import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An error in setting a test up (a missing program, a directory that cannot be made): the test
/// fails with this message, which says what to install or run.
public struct TestSetupError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, and the fix.
    public var description: String

    /// Creates an error.
    public init(description: String) { self.description = description }
}

/// A fresh scratch directory under `/tmp` (short, so unix socket paths inside fit), removed with
/// everything in it by ``remove()`` or when the value goes away. Mode 0755: the unprivileged test
/// user of the SSH servers reads files tests put there (authorized keys, images).
public final class TempDir: @unchecked Sendable {
    /// The directory.
    public let path: String

    /// Creates `/tmp/<prefix>-XXXXXX`.
    public init(_ prefix: String = "dts-test") throws {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TestSetupError(description: "cannot make a directory /tmp/\(prefix)-XXXXXX: \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
        chmod(path, 0o755)
    }

    /// The path of `name` in the directory.
    public func file(_ name: String) -> String { path + "/" + name }

    /// Writes `text` to `name` in the directory and returns its path.
    @discardableResult
    public func write(_ name: String, _ text: String) throws -> String {
        let file = file(name)
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    /// The text of `name` in the directory, empty if it cannot be read.
    public func read(_ name: String) -> String {
        String(decoding: FileManager.default.contents(atPath: file(name)) ?? Data(), as: UTF8.self)
    }

    /// Removes the directory and everything in it. Idempotent.
    public func remove() { try? FileManager.default.removeItem(atPath: path) }

    deinit { remove() }
}
