import DTSSSH
import Foundation

/// The connectors the runner uses to open DUT sessions.
public enum DUTConnectors {
    /// The name of the run's known-hosts file in the output directory.
    public static let knownHostsFileName = "known_hosts"

    /// This machine through ``LocalSession`` (logging itself); any other DUT over SSH
    /// (a ``RemoteHostSession`` from ``RemoteDUT/connect(_:knownHostsPath:connectTimeout:)``), host keys recorded on first use in
    /// `knownHostsPath` (a file kept per run). The SSH session does not log by itself: the runner
    /// wraps it in a ``LoggingSession``, whose redactor hides `dut_passwd`.
    public static func standard(knownHostsPath: String, connectTimeout: Duration = RemoteDUT.connectTimeout()) -> DUTConnector {
        { crb, log, redactor in
            if crb.isLocal {
                return LocalSession(endpoint: "\(crb.dutUser)@\(crb.dutIP)", log: log, redactor: redactor)
            }
            let endpoint = "\(crb.dutUser)@\(crb.dutIP):\(crb.dutPort)"
            log.record(endpoint, .status, "ssh connect (timeout \(connectTimeout), known hosts \(knownHostsPath))", redactor: redactor)
            do {
                let ssh = try await RemoteDUT.connect(crb, knownHostsPath: knownHostsPath, connectTimeout: connectTimeout)
                log.record(endpoint, .status, "ssh connected", redactor: redactor)
                return RemoteHostSession(ssh)
            } catch {
                log.record(endpoint, .status, "ssh connect failed: \(error)", redactor: redactor)
                throw error
            }
        }
    }

    /// ``standard(knownHostsPath:connectTimeout:)`` with the known-hosts file in the run's output directory.
    public static func standard(outputDirectory: String) -> DUTConnector {
        standard(knownHostsPath: outputDirectory + "/" + knownHostsFileName)
    }
}
