import DTS
import Foundation

/// `vm2vm_virtio_net_perf`: DTS's VM2VM vhost-user/virtio-net suite. Two VMs, each with one
/// virtio-net NIC (the guests' kernel driver) on a vhost-user port of one host testpmd
/// (`net_vhost` with `tso=1`, forwarding io between the two ports). The iperf cases check that a
/// TCP stream crosses from one guest to the other at a rate, and that vhost's xstats count frames
/// over 1518 bytes in both directions (TSO: the guests hand over whole segments); the capability
/// cases check that the guests' virtio-net offers TSO, ECN and TCP6 segmentation.
/// See docs/suites/vm2vm_virtio_net_perf.md.
final class VM2VMVirtioNetPerf: VirtioSuite, TestSuite {
    static let name = "vm2vm_virtio_net_perf"
    static let cases: [TestCase<VM2VMVirtioNetPerf>] = [
        .functional("test_vm2vm_split_ring_iperf_with_tso") { try await $0.iperfWithTSO(mergeable: false, packed: false) },
        .functional("test_vm2vm_split_ring_device_capbility") { try await $0.deviceCapability(packed: false) },
        .functional("test_vm2vm_packed_ring_iperf_with_tso") { try await $0.iperfWithTSO(mergeable: true, packed: true) },
        .functional("test_vm2vm_packed_ring_device_capbility") { try await $0.deviceCapability(packed: true) },
    ]
    static var defaultCaseTimeout: Duration { .seconds(600) }

    /// The `[suite]` settings.
    struct Settings {
        /// iperf's duration (DTS: 60 s).
        var iperfSeconds: Int
        /// The least iperf rate that passes, Mbit/s (DTS: Gbits/sec, i.e. 1000 on KVM).
        var minimumMbits: Double

        init(_ config: SuiteConfig) throws {
            iperfSeconds = try config.int("iperf_seconds", default: 60, in: 1...3600)
            minimumMbits = try config.double("iperf_min_mbits", default: 1000)
        }
    }

    private var settings: Settings?

    init(context: TestContext) { super.init(context: context, suite: Self.name) }

    func setUpAll() async throws {
        settings = try Settings(context.config)
        try await makeWorkDirectory()
    }

    // MARK: Cases

    /// Test Cases 1 and 3: iperf from VM1 to VM0 through the vhost testpmd; big frames in both directions.
    func iperfWithTSO(mergeable: Bool, packed: Bool) async throws {
        let s = try settings.orFail("settings not read")
        try await startVhostTestpmd()
        try await startVMs(mergeable: mergeable, packed: packed)
        _ = try await common.configureIPs(vms)
        let result = try await common.runIperf(server: vms[0], client: vms[1], serverIP: VirtioCommon.vmIPs[0], seconds: s.iperfSeconds)
        var table = PerfTable(title: "iperf VM1 -> VM0 through vhost-user (TSO), TCG guests",
                              columns: ["ring", "mergeable", "seconds", "Mbits/sec", "minimum", "iperf summary"])
        table.add([packed ? "packed" : "split", mergeable ? "on" : "off", s.iperfSeconds, String(format: "%.1f", result.mbits),
                   String(format: "%.1f", s.minimumMbits), result.summary])
        context.recordPerformance(table)
        try await verifyBigFramesCrossed()
        try verify(result.mbits >= s.minimumMbits,
                   "iperf between the VMs reached \(String(format: "%.1f", result.mbits)) Mbits/sec, below iperf_min_mbits=\(s.minimumMbits)")
    }

    /// Test Cases 2 and 4: the guests' virtio-net offers TSO, TSO with ECN and TSO over IPv6.
    func deviceCapability(packed: Bool) async throws {
        try await startVhostTestpmd()
        try await startVMs(mergeable: true, packed: packed)
        for vm in vms {
            let port = try await common.testPort(of: vm)
            let intf = try port.interface.orFail("\(vm.vmName)'s NIC has no kernel interface")
            let features = try await common.guestCommand(vm, ["ethtool", "-k", intf])
            context.logger.info("\(vm.vmName) ethtool -k \(intf):\n\(features)")
            for feature in ["tx-tcp-segmentation", "tx-tcp-ecn-segmentation", "tx-tcp6-segmentation"] {
                let state = Self.ethtoolFeature(features, feature)
                try verify(state == "on", "\(feature) in \(vm.vmName) is \(state ?? "missing"), expected on")
            }
        }
    }

    // MARK: Steps

    private func startVhostTestpmd() async throws {
        // DTS: -l 2-4 (two forwarding lcores), --nb-cores=2; this host has two cores, one forwards.
        let options = VirtioCommon.vhostOptions(dir: dir, ports: 2, extra: [.init("tso", "1")],
                                                arguments: ["--nb-cores=1", "--txd=1024", "--rxd=1024"])
        let pmd = try await common.startHostTestpmd(options)
        vhost = pmd
        try await pmd.startForwarding()
    }

    private func startVMs(mergeable: Bool, packed: Bool) async throws {
        let settings = "disable-modern=false,mrg_rxbuf=\(mergeable ? "on" : "off"),csum=on,guest_csum=on,host_tso4=on,guest_tso4=on,guest_ecn=on"
            + (packed ? ",packed=on" : "")
        kvms = try common.makeVMs(count: 2, dir: dir, settings: settings)
        vms = try await QEMUKvm.startAll(kvms)
        for vm in vms { try await common.requirePrograms(["iperf", "ethtool"], in: vm) }
        let pmd = try vhost.orFail("no vhost testpmd")
        for port in 0..<2 { try await pmd.waitForLink(port, timeout: .seconds(120)) }
    }

    /// DTS's `verify_xstats_info_on_vhost`: port 1 (VM1's) received frames over 1518 bytes and
    /// port 0 (VM0's) sent such frames.
    private func verifyBigFramesCrossed() async throws {
        let pmd = try vhost.orFail("no vhost testpmd")
        let toVM0 = try await pmd.xstats(0), fromVM1 = try await pmd.xstats(1)
        let sent = toVM0.sum("tx", "size_1519_max_packets"), received = fromVM1.sum("rx", "size_1519_max_packets")
        context.logger.info("vhost xstats: port 1 received \(received) frames over 1518 bytes, port 0 sent \(sent)")
        try verify(received > 0, "port 1 did not receive frames over 1518 bytes from VM1 (rx_q0_size_1519_max_packets = 0)")
        try verify(sent > 0, "port 0 did not forward frames over 1518 bytes to VM0 (tx_q0_size_1519_max_packets = 0)")
    }

    /// The state (`on`, `off`, `off [fixed]` → `off`) of `feature` in `ethtool -k` output.
    nonisolated static func ethtoolFeature(_ text: String, _ feature: String) -> String? {
        for line in TestpmdParser.lines(text) {
            let words = TestpmdParser.words(line)
            if words.count >= 2, words[0] == feature + ":" { return words[1] }
        }
        return nil
    }
}
