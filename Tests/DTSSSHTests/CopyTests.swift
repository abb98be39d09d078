import DTSSSH
import DTSTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Failed copies (the happy path is `SSHTests.fileCopy`): they must name the file and host and
/// leave no partial file behind.
@Suite("SFTP copy against a real dropbear", .serialized)
struct CopyTests {
    @Test("a failed download names the remote file and host and leaves no local file")
    func failedDownloadCleansUp() async throws {
        try await withServer { server, ssh, dir in
            // The server opens a directory but cannot read it: the failure comes after the local
            // file was created.
            let local = dir.file("from-dir.bin")
            let error = await #expect(throws: SSHError.self) {
                try await ssh.download(remotePath: "/tmp", localPath: local)
            }
            let text = String(describing: try #require(error))
            #expect(text.contains("/tmp") && text.contains("127.0.0.1:\(server.port)"), "\(text)")
            #expect(access(local, F_OK) != 0)

            let missing = dir.file("missing.bin")
            await #expect(throws: SSHError.self) {
                try await ssh.download(remotePath: "/nonexistent/file", localPath: missing)
            }
            #expect(access(missing, F_OK) != 0)
            // The connection is still usable afterwards.
            #expect(try await ssh.exec("true", timeout: .seconds(10)).status == 0)
        }
    }

    @Test("a failed upload removes its partial remote file, but never a non-regular target")
    func failedUploadCleansUp() async throws {
        try await withServer { server, ssh, dir in
            // A local directory opens but cannot be read: the remote file exists by then.
            let remote = "/tmp/dts-ssh-partial-\(UUID().uuidString)"
            try await removingRemote(ssh, remote) {
                let error = await #expect(throws: SSHError.self) {
                    try await ssh.upload(localPath: dir.path, remotePath: remote)
                }
                let text = String(describing: try #require(error))
                #expect(text.contains(dir.path), "\(text)")
                #expect(try await ssh.exec(argv: ["test", "-e", remote], timeout: .seconds(10)).status != 0)
            }

            // Writes to /dev/full fail on the server: the error names the file and host, and the
            // device is not removed.
            let local = dir.file("small.bin")
            try Data(repeating: 0x5a, count: 100_000).write(to: URL(fileURLWithPath: local))
            let full = await #expect(throws: SSHError.self) {
                try await ssh.upload(localPath: local, remotePath: "/dev/full")
            }
            let text = String(describing: try #require(full))
            #expect(text.contains("/dev/full") && text.contains("127.0.0.1:\(server.port)"), "\(text)")
            #expect(try await ssh.exec(argv: ["test", "-c", "/dev/full"], timeout: .seconds(10)).status == 0)
        }
    }
}
