import CLibCrypto
import CLibSSH2
import Foundation

/// OpenSSH-style host key fingerprints, as `ssh-keygen -l` prints them: `SHA256:` and the unpadded
/// base64 of the SHA-256 of the key blob. libssh2 hashes the key a server presents, libcrypto (which
/// libssh2 links) a key read from known_hosts, and Foundation writes the base64.
enum Fingerprint {
    /// The fingerprint of the host key `session` received in its handshake, or `nil` if libssh2
    /// has none (no handshake yet).
    static func presented(by session: OpaquePointer) -> String? {
        guard let hash = libssh2_hostkey_hash(session, LIBSSH2_HOSTKEY_HASH_SHA256) else { return nil }
        return text(ofDigest: Data(bytes: hash, count: Int(SHA256_DIGEST_LENGTH)))
    }

    /// The fingerprint of a key blob given in base64 (a known_hosts entry's key), or `nil` if the
    /// text is not base64.
    static func sha256(ofBase64Key key: String) -> String? {
        guard let blob = Data(base64Encoded: key) else { return nil }
        return sha256(ofKeyBlob: blob)
    }

    /// The fingerprint of a key blob (the SSH wire encoding of a public key).
    static func sha256(ofKeyBlob blob: Data) -> String {
        var digest = Data(count: Int(SHA256_DIGEST_LENGTH))
        digest.withUnsafeMutableBytes { out in
            blob.withUnsafeBytes { input in
                _ = SHA256(input.bindMemory(to: UInt8.self).baseAddress, input.count, out.bindMemory(to: UInt8.self).baseAddress)
            }
        }
        return text(ofDigest: digest)
    }

    /// `SHA256:` and the base64 of `digest` without its `=` padding.
    private static func text(ofDigest digest: Data) -> String {
        var encoded = digest.base64EncodedString()
        while encoded.hasSuffix("=") { encoded.removeLast() }
        return "SHA256:" + encoded
    }
}
