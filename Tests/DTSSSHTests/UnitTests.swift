@testable import DTSSSH
import DTSSession
import Testing

/// Pure helpers; the behaviour they serve is tested against real servers in SSHTests.
@Suite("SSH helpers")
struct SSHHelperTests {
    @Test func signalNames() {
        #expect(SignalNames.number("KILL") == 9)
        #expect(SignalNames.number("SIGTERM") == 15)
        #expect(SignalNames.number("BOGUS") == 0)
    }

    @Test func sha256AndBase64() {
        // FIPS 180-4 test vectors.
        #expect(Fingerprint.base64(SHA256.digest(Array("abc".utf8))) == "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=")
        #expect(Fingerprint.base64(SHA256.digest([])) == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(Fingerprint.base64(SHA256.digest(long)) == "JI1qYdIGOLjlwCaTDD5gOaM85Flk/yFn9uzt1BnbBsE=")
        #expect(Fingerprint.decodeBase64("AAEC/w==") == [0, 1, 2, 255])
    }

    @Test func dropbearQuirkVersions() {
        #expect(ServerQuirks.dropsChannelsOnChildExit(banner: "SSH-2.0-dropbear_2022.83"))
        #expect(ServerQuirks.dropsChannelsOnChildExit(banner: "SSH-2.0-dropbear_2024.85"))
        #expect(!ServerQuirks.dropsChannelsOnChildExit(banner: "SSH-2.0-dropbear_2024.86"))
        #expect(!ServerQuirks.dropsChannelsOnChildExit(banner: "SSH-2.0-dropbear_2020.81"))
        #expect(!ServerQuirks.dropsChannelsOnChildExit(banner: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"))
    }

    @Test func durationsAndPolicies() {
        #expect(formatDuration(.seconds(5)) == "5 s")
        #expect(formatDuration(.milliseconds(1500)) == "1.5 s")
        #expect(formatDuration(.milliseconds(250)) == "250 ms")
        #expect(HostKeyPolicy.perInstance(directory: "/run/x", instanceID: "vm 0/a").knownHostsPath == "/run/x/known_hosts.vm_0_a")
        #expect(SSHAuthentication.password("pw").description == "password(***)")
    }
}
