import DTS
import DTSProcess
import DTSTestSupport
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real vhost-user crypto backend: DPDK's `vhost_crypto` example (built from Debian's dpdk-doc
/// sources by scripts/build-dpdk-example.sh) with a `crypto_null` device, listening on each of
/// `sockets`, without hugepages. QEMU's `cryptodev-vhost-user` objects connect to it.
final class VhostCryptoBackend: Sendable {
    let process: ChildProcess
    let prefix: String
    let sockets: [String]
    let log: String

    /// The example's binary, built on first use (a second build is a no-op).
    static func binary() async throws -> String {
        let script = DTSBinary.packageRoot + "/scripts/build-dpdk-example.sh"
        let built = try await runProgram("/bin/bash", [script, "vhost_crypto"])
        guard built.status == 0 else {
            throw AcceptanceError("cannot build DPDK's vhost_crypto example (scripts/setup.d/dpdk-examples.sh installs what it needs):\n\(built.output)")
        }
        return built.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Starts the backend and waits until every socket exists.
    static func start(sockets: [String], log: String) async throws -> VhostCryptoBackend {
        let prefix = "dts-vcrypto-\(UUID().uuidString.prefix(8))"
        var argv = [try await binary(), "-l", "0,1", "--no-huge", "-m", "512", "--no-pci", "--file-prefix=\(prefix)",
                    "--vdev", "crypto_null", "--", "--config", "(1,0,0)"]
        for socket in sockets { argv += ["--socket-file", "1,\(socket)"] }
        let process = try ChildProcess.spawn(argv, stdout: log, stderr: log, dieWithParent: true)
        let backend = VhostCryptoBackend(process: process, prefix: prefix, sockets: sockets, log: log)
        let deadline = ContinuousClock.now + .seconds(30)
        while !sockets.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                await backend.stop()
                throw AcceptanceError("vhost_crypto did not create its sockets:\n\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return backend
    }

    private init(process: ChildProcess, prefix: String, sockets: [String], log: String) {
        self.process = process
        self.prefix = prefix
        self.sockets = sockets
        self.log = log
    }

    /// What it logged: `VHOST_CONFIG: (<socket>) ...` lines show QEMU's vhost-user messages.
    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// Stops it and removes its sockets and DPDK's runtime directory. Idempotent.
    func stop() async {
        _ = await process.terminate(grace: .seconds(3))
        for socket in sockets { try? FileManager.default.removeItem(atPath: socket) }
        try? FileManager.default.removeItem(atPath: "/var/run/dpdk/\(prefix)")
    }
}
