import DTSSSH
import DTSSession
import Foundation
import Testing

@Test func smokeExec() async throws {
    let server = try DropbearServer()
    defer { server.shutdown() }
    let conn = try await SSHConnection.connect(testOptions(port: server.port, auth: .password(TestUsers.password), knownHosts: server.dir.file("known_hosts")))
    let r = try await conn.exec("echo hi; echo err >&2; exit 3", timeout: .seconds(5))
    print(r.output, r.errorOutput, r.status)
    #expect(r.status == 3)
    let shell = try await conn.openSSHShell()
    let out = try await shell.run("echo hello; pwd", timeout: .seconds(5))
    print("shell:", out.debugDescription)
    await conn.close()
}
