import CLibSSH2
import DTSSession

/// Placeholder replaced by the SSH layer (issue 3).
enum SSHLayer {
    static let libssh2Version = String(cString: libssh2_version(0))
}
