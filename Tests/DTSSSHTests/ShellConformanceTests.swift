import DTSSSH
import DTSSession
import DTSTestSupport
import Testing

/// The shell conformance cases (DTSTestSupport) on an SSH shell: bash behind a real dropbear.
/// The same cases run on the local shell and on a remote DUT's shell (DTSTests).
@Suite struct ShellConformanceTests {
    @Test func sshShell() async throws {
        try await withServer { _, ssh, _ in
            let shell = try await ssh.openSSHShell()
            await ShellConformance.run(on: shell, prompt: shell.prompt, transport: "SSH shell")
            await shell.close()
        }
    }
}
