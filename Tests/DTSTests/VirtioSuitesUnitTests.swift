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

    /// The pcap reader behind vm2vm_virtio_pmd's payload check: both byte orders, frames in
    /// order, truncation and foreign files refused.
    @Test func pcapFrames() throws {
        func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)] }
        let header = le32(0xa1b2c3d4) + [2, 0, 4, 0] + le32(0) + le32(0) + le32(65535) + le32(1)
        func record(_ frame: [UInt8]) -> [UInt8] { le32(1) + le32(2) + le32(UInt32(frame.count)) + le32(UInt32(frame.count)) + frame }
        let image = header + record([1, 2, 3]) + record(Array(repeating: 7, count: 8000))
        let frames = try PcapFile.parse(image, name: "t.pcap")
        #expect(frames.count == 2 && frames[0] == [1, 2, 3] && frames[1].count == 8000)
        // Big-endian files (magic a1b2c3d4 written big-endian) read the same.
        func be32(_ v: UInt32) -> [UInt8] { le32(v).reversed() }
        let big = be32(0xa1b2c3d4) + [0, 2, 0, 4] + be32(0) + be32(0) + be32(65535) + be32(1) + be32(1) + be32(2) + be32(2) + be32(2) + [9, 9]
        #expect(try PcapFile.parse(big, name: "b.pcap") == [[9, 9]])
        #expect(throws: PcapFile.Malformed.self) { _ = try PcapFile.parse(Array(image.dropLast(1)), name: "t.pcap") }
        #expect(throws: PcapFile.Malformed.self) { _ = try PcapFile.parse(Array(repeating: 0, count: 40), name: "z.pcap") }
        #expect(try PcapFile.parse(header, name: "empty.pcap").isEmpty)
    }

    @Test func vm2vmVirtioPMDSettings() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let shipped = try VM2VMVirtioPMD.Settings(try SuiteConfig(path: root + "/conf/vm2vm_virtio_pmd.cfg"))
        #expect(shipped.measureSeconds == 5 && shipped.minimumMpps == 0.001)
        let defaults = try VM2VMVirtioPMD.Settings(SuiteConfig(values: [:]))
        #expect(defaults.measureSeconds == 10 && defaults.minimumMpps == 4.5, "DTS's values when the config says nothing")
        #expect(throws: ConfigError.self) { _ = try VM2VMVirtioPMD.Settings(SuiteConfig(values: ["measure_seconds": "0"])) }
        // DTS's opt_settings per revision.
        #expect(VM2VMVirtioPMD.Revision.virtio095.settings(mergeable: false).hasPrefix("disable-modern=true,mrg_rxbuf=off,"))
        #expect(VM2VMVirtioPMD.Revision.virtio11.settings(mergeable: true).hasSuffix(",guest_ecn=on,packed=on"))
    }

    @Test func pvpVhostUserReconnectSettings() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let shipped = try PVPVhostUserReconnect.Settings(try SuiteConfig(path: root + "/conf/pvp_vhost_user_reconnect.cfg"))
        #expect(shipped.reconnectTimes == 1 && shipped.maxDropPercent == 90 && shipped.frameSize == 64)
        #expect(shipped.measureSeconds == 5 && shipped.minimumMpps == 0.0001 && shipped.iperfSeconds == 10)
        let defaults = try PVPVhostUserReconnect.Settings(SuiteConfig(values: [:]))
        #expect(defaults.reconnectTimes == 5 && defaults.maxDropPercent == 15 && defaults.minimumMpps == 5 && defaults.measureSeconds == 30,
                "DTS's values when the config says nothing")
        #expect(throws: ConfigError.self) { _ = try PVPVhostUserReconnect.Settings(SuiteConfig(values: ["reconnect_times": "0"])) }
        #expect(throws: ConfigError.self) { _ = try PVPVhostUserReconnect.Settings(SuiteConfig(values: ["frame_size": "9000"])) }
        #expect(throws: ConfigError.self) { _ = try PVPVhostUserReconnect.Settings(SuiteConfig(values: ["max_drop_percent": "a lot"])) }
        // DTS's names, spelling included, and its nine cases.
        #expect(PVPVhostUserReconnect.cases.count == 9)
        #expect(PVPVhostUserReconnect.cases.allSatisfy { $0.name.contains("reconnet") })
    }
}
