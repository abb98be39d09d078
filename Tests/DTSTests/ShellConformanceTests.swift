@testable import DTS
import DTSTestSupport
import Testing

/// The shell conformance cases (DTSTestSupport) on the local DUT's shell: bash on a PTY. The same
/// cases run on an SSH shell (DTSSSHTests) and on a remote DUT's shell (RemoteDUTTests).
@Suite struct ShellConformanceTests {
    @Test func localShell() async throws {
        let session = LocalSession()
        let shell = try await session.openLocalShell()
        await ShellConformance.run(on: shell, prompt: shell.prompt, transport: "local shell")
        await session.close()
    }
}
