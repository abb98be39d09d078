import CLibCrypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// SHA-256 through libcrypto's EVP interface, as lowercase hex.
enum SHA256Hex {
    /// The digest of `bytes`.
    static func of(_ bytes: some Collection<UInt8>) -> String {
        let hasher = Hasher()
        Array(bytes).withUnsafeBytes { hasher.update($0) }
        return hasher.finish()
    }

    /// The digest of the file at `path`, read in 1 MiB chunks.
    static func ofFile(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ResourceError("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let hasher = Hasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw ResourceError("cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return hasher.finish()
    }

    /// One EVP digest context.
    private final class Hasher {
        let context: OpaquePointer

        init() {
            context = EVP_MD_CTX_new()
            EVP_DigestInit_ex(context, EVP_sha256(), nil)
        }

        deinit { EVP_MD_CTX_free(context) }

        func update(_ bytes: UnsafeRawBufferPointer) {
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
            EVP_DigestUpdate(context, base, bytes.count)
        }

        func finish() -> String {
            var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
            var length: UInt32 = 0
            EVP_DigestFinal_ex(context, &digest, &length)
            return digest.prefix(Int(length)).map { String(format: "%02x", $0) }.joined()
        }
    }
}

/// Content digests of files that rarely change (kernels, initrds, disk images, the QEMU binary),
/// remembered by path with the file's size, modification time, inode and device, so that a
/// 60 MB kernel is read once, not on every start. A changed file (any of those four differs) is
/// read again. The memo is a JSON file; concurrent writers may lose an entry, never corrupt one
/// (it is replaced by rename).
struct DigestMemo: Sendable {
    /// What identifies one version of a file, and its digest.
    struct Entry: Codable, Equatable {
        var size: Int64
        var mtimeNanoseconds: Int64
        var inode: UInt64
        var device: UInt64
        var sha256: String
    }

    /// The memo file.
    let path: String

    /// The SHA-256 of each file in `paths`, from the memo where the file is unchanged.
    func digests(of paths: [String]) throws -> [String: String] {
        var memo = load()
        var result: [String: String] = [:]
        var changed = false
        for path in Set(paths) {
            var info = stat()
            guard stat(path, &info) == 0 else { throw ResourceError("cannot read \(path): \(String(cString: strerror(errno)))") }
            let identity = Entry(size: Int64(info.st_size), mtimeNanoseconds: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec),
                                 inode: UInt64(info.st_ino), device: UInt64(info.st_dev), sha256: "")
            if let known = memo[path], known.size == identity.size, known.mtimeNanoseconds == identity.mtimeNanoseconds,
               known.inode == identity.inode, known.device == identity.device {
                result[path] = known.sha256
                continue
            }
            var entry = identity
            entry.sha256 = try SHA256Hex.ofFile(path)
            memo[path] = entry
            result[path] = entry.sha256
            changed = true
        }
        if changed { save(memo) }
        return result
    }

    private func load() -> [String: Entry] {
        guard let data = FileManager.default.contents(atPath: path) else { return [:] }
        return (try? JSONDecoder().decode([String: Entry].self, from: data)) ?? [:]
    }

    private func save(_ memo: [String: Entry]) {
        guard let data = try? JSONEncoder().encode(memo) else { return }
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard FileManager.default.createFile(atPath: temporary, contents: data) else { return }
        if rename(temporary, path) != 0 { unlink(temporary) }
    }
}
