@testable import DTS
import Foundation
@testable import Suites
import Testing

/// The vxlan_sample suite's own logic that needs no DUT: its `[suite]` settings, version parsing,
/// guest memory from the VM parameters.
@Suite struct VxlanSampleUnitTests {
    static var configPath: String { DTSBinary.packageRoot + "/conf/vxlan_sample.cfg" }

    @Test func shippedConfigReads() throws {
        let settings = try VxlanSample.Settings(SuiteConfig(path: Self.configPath))
        #expect(settings.vni == 1000 && settings.foreignVNI == 2000 && settings.vxlanPort == 4789)
        #expect(settings.vtepIP == "172.31.1.1" && settings.testerIP == "172.31.1.2")
        #expect(settings.guestMACs == ["00:00:20:00:00:20", "00:00:20:00:00:21"])
        let perf = try PerfConfig(SuiteConfig(path: "conf/vxlan_sample.cfg"))
        #expect(perf.testParameters.map(\.frameSize) == [64, 128, 512, 1024, 1468])
        #expect(perf.expected(path: "tester_to_guest_to_tester", frameSize: 1468, descriptors: 256) == .mpps(0))
        #expect(settings.overlayMTU == 1450)
    }

    @Test func badSettingsNameTheKey() throws {
        var values = try Self.shippedValues()
        values["vni"] = "16777216"
        #expect(throws: ConfigError.self) { try VxlanSample.Settings(SuiteConfig(values: values)) }
        values = try Self.shippedValues()
        values["foreign_vni"] = values["vni"]
        let vniError = #expect(throws: ConfigError.self) { try VxlanSample.Settings(SuiteConfig(values: values)) }
        #expect(vniError?.key == "foreign_vni")
        values = try Self.shippedValues()
        values["guest_macs"] = "00:00:20:00:00:20"
        #expect(throws: ConfigError.self) { try VxlanSample.Settings(SuiteConfig(values: values)) }
        values = try Self.shippedValues()
        values.removeValue(forKey: "tester_ip")
        #expect(throws: ConfigError.self) { try VxlanSample.Settings(SuiteConfig(values: values)) }
    }

    @Test func openVSwitchVersion() {
        #expect(VxlanSample.ovsVersion("ovs-vswitchd (Open vSwitch) 3.1.0\nDPDK 22.11.5") == [3, 1, 0])
        #expect(VxlanSample.ovsVersion("ovs-vswitchd (Open vSwitch) 3.3.1") == [3, 3, 1])
        #expect(VxlanSample.ovsVersion("something else") == nil)
        #expect(VxlanSample.ovsVersion("ovs-vswitchd (Open vSwitch) 3.1.0")!.lexicographicallyPrecedes([3, 3]))
        #expect(!VxlanSample.ovsVersion("ovs-vswitchd (Open vSwitch) 3.3.0")!.lexicographicallyPrecedes([3, 3]))
    }

    @Test func payloadPatternsDiffer() {
        #expect(VxlanSample.pattern(18, seed: 1).count == 18)
        #expect(VxlanSample.pattern(100, seed: 10) != VxlanSample.pattern(100, seed: 11))
        #expect(VxlanSample.pattern(-3, seed: 1).isEmpty)
    }

    /// The shipped `[suite]` section as plain values.
    static func shippedValues() throws -> [String: String] {
        let config = try SuiteConfig(path: configPath)
        var values: [String: String] = [:]
        for key in config.keys { values[key] = config.value(key) }
        return values
    }
}
