@testable import DTSSSH
import Foundation
import DTSSession
import Testing

/// Pure helpers; the behaviour they serve is tested against real servers in SSHTests.
@Suite("SSH helpers")
struct SSHHelperTests {
    @Test func fingerprintIsUnpaddedBase64OfSHA256() {
        // FIPS 180-4 test vectors, as OpenSSH would print them (no `=` padding).
        #expect(Fingerprint.sha256(ofKeyBlob: Data("abc".utf8)) == "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0")
        #expect(Fingerprint.sha256(ofKeyBlob: Data()) == "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU")
        let long = Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(Fingerprint.sha256(ofKeyBlob: long) == "SHA256:JI1qYdIGOLjlwCaTDD5gOaM85Flk/yFn9uzt1BnbBsE")
        #expect(Fingerprint.sha256(ofBase64Key: "YWJj") == Fingerprint.sha256(ofKeyBlob: Data("abc".utf8)))
        #expect(Fingerprint.sha256(ofBase64Key: "not base64!") == nil)
    }

    @Test func dropbearQuirkVersions() {
        #expect(ServerQuirks.dropsChannelsOnChildExit(banner: "SSH-2.0-dropbear_2022.83"))
        #expect(ServerQuirks.dropsChannelsOnChildExit(banner: "SSH-2.0-dropbear_2024.85"))
        #expect(!ServerQuirks.dropsChannelsOnChildExit(banner: "SSH-2.0-dropbear_2024.86"))
        #expect(!ServerQuirks.dropsChannelsOnChildExit(banner: "SSH-2.0-dropbear_2020.81"))
        #expect(!ServerQuirks.dropsChannelsOnChildExit(banner: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"))
    }

    @Test func durationsAndPolicies() {
        #expect(Duration.seconds(5).secondsText == "5 s")
        #expect(Duration.milliseconds(1500).secondsText == "1.5 s")
        #expect(Duration.milliseconds(250).secondsText == "0.25 s")
        #expect(Duration.microseconds(1_000_400).secondsText == "1 s")
        #expect(Duration.milliseconds(-50).secondsText == "-0.05 s")
        #expect(Duration.milliseconds(1500).seconds == 1.5)
        #expect(HostKeyPolicy.perInstance(directory: "/run/x", instanceID: "vm 0/a").knownHostsPath == "/run/x/known_hosts.vm_0_a")
        #expect(SSHAuthentication.password("pw").description == "password(***)")
    }
}
