@testable import DTS
import Foundation
@testable import Suites
import Testing

/// The vhost/virtio suites' readers, on output captured from the dts guest image (iperf 2.1.8,
/// ethtool 6.1 on virtio-net; `Tests/DTSTests/Golden/guest/`), and their settings.
@Suite struct VirtioSuitesUnitTests {
    static func fixture(_ name: String) throws -> String {
        try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/guest/" + name),
                   encoding: .utf8)
    }

    @Test func iperfSummary() throws {
        let text = try Self.fixture("iperf-client.txt")
        let result = try #require(VirtioCommon.parseIperf(text))
        #expect(result.summary == "[  1] 0.0000-10.2269 sec   202 MBytes   165 Mbits/sec")
        #expect(result.bitsPerSecond == 165e6 && result.mbits == 165)
        // A server report after the client's summary does not count (DTS cut it off too).
        let withReport = text + "[  1] Server Report:\n[  1] 0.0000-10.3 sec  202 MBytes  2.40 Gbits/sec\n"
        #expect(VirtioCommon.parseIperf(withReport)?.mbits == 165)
        #expect(VirtioCommon.parseIperf("connect failed: Connection refused\n") == nil)
        #expect(VirtioCommon.parseIperf("[  1] 0.0-10.0 sec  1.2 GBytes  1.05 Gbits/sec\n")?.bitsPerSecond == 1.05e9)
    }

    @Test func ethtoolFeatures() throws {
        let text = try Self.fixture("ethtool-k-virtio-net.txt")
        for feature in ["tx-tcp-segmentation", "tx-tcp-ecn-segmentation", "tx-tcp6-segmentation"] {
            #expect(VM2VMVirtioNetPerf.ethtoolFeature(text, feature) == "on", "\(feature)")
        }
        #expect(VM2VMVirtioNetPerf.ethtoolFeature(text, "tx-tcp-mangleid-segmentation") == "off")
        #expect(VM2VMVirtioNetPerf.ethtoolFeature(text, "large-receive-offload") == "off")
        #expect(VM2VMVirtioNetPerf.ethtoolFeature(text, "no-such-feature") == nil)
    }

    @Test func suiteSettingsAndNumbers() throws {
        let good = SuiteConfig(values: ["iperf_seconds": "5", "iperf_min_mbits": "2.5"])
        let s = try VM2VMVirtioNetPerf.Settings(good)
        #expect(s.iperfSeconds == 5 && s.minimumMbits == 2.5)
        let defaults = try VM2VMVirtioNetPerf.Settings(SuiteConfig(values: [:]))
        #expect(defaults.iperfSeconds == 60 && defaults.minimumMbits == 1000, "DTS's values when the config says nothing")
        #expect(throws: ConfigError.self) { _ = try VM2VMVirtioNetPerf.Settings(SuiteConfig(values: ["iperf_min_mbits": "fast"])) }
        #expect(throws: ConfigError.self) { _ = try VM2VMVirtioNetPerf.Settings(SuiteConfig(values: ["iperf_seconds": "0"])) }
        let numbers = SuiteConfig(values: ["a": "4.5", "b": "1e-3", "c": "nan", "d": " 15 ", "e": "٣"])
        #expect(try numbers.double("a") == 4.5 && numbers.double("b") == 0.001 && numbers.double("d") == 15)
        #expect(throws: ConfigError.self) { _ = try numbers.double("c") }
        #expect(throws: ConfigError.self) { _ = try numbers.double("e") }
        #expect(try numbers.double("absent", default: 2) == 2)
    }

    /// The shipped configs read, with the defaults meant for this machine.
    @Test func shippedConfigsRead() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let perf = try VM2VMVirtioNetPerf.Settings(try SuiteConfig(path: root + "/conf/vm2vm_virtio_net_perf.cfg"))
        #expect(perf.iperfSeconds == 10 && perf.minimumMbits == 10)
        #expect(try SuiteConfig(path: root + "/conf/vhost_qemu_mtu.cfg").list("mtus") == ["9000", "68", "65535"])
    }
}
