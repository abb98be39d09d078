import Testing
@testable import DTSSSH
@Test func libssh2Links() { #expect(SSHLayer.libssh2Version.hasPrefix("1.")) }
