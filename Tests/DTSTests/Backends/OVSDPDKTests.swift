@testable import DTS
import Foundation
import Testing

extension HostBackendTests {
@Suite struct OVSDPDKTests {
    /// The NOTES.md topology: tester namespace with a kernel VXLAN (VNI 1000) over a veth whose host end
    /// is an af_packet DPDK port of OVS bridge br-phy (VTEP 172.31.77.1); br-int holds the VXLAN port and
    /// an internal port 10.77.0.1 that the namespace pings through the tunnel.
    @Test func privateOVSTerminatesVXLANAndTearsDownClean() async throws {
        try requirePrograms(["ovsdb-tool", "ovsdb-server", "ovs-vsctl", "ovs-appctl",
                             "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk", "ip", "ethtool", "busybox", "/usr/bin/python3"])
        let names = BackendNames()
        let dir = try TemporaryDirectory("dts-ovs")
        let resources = RunResources()
        let session = LocalSession()
        let hugepagesBefore = nrHugepages()
        let namespace = names.name("dtso"), hostEnd = names.name("dtoh"), nsEnd = names.name("dton")
        let phy = names.name("dbp"), integration = names.name("dbi"), vxlanPort = names.name("dbx")
        let tester = Tester(session: session, namespace: namespace, workDirectory: dir.path, cleanup: .resources(resources))
        let ovs = OVSDPDKBackend(session: session, options: OVSDPDKOptions(name: names.name("t"), parentDirectory: dir.path),
                                 cleanup: .resources(resources))
        try await withBackendCleanup(resources) {
            try await tester.setUp(veth: VethSpec(hostName: hostEnd, namespaceName: nsEnd, namespaceAddress: "172.31.77.2/24"))
            try await tester.addKernelVXLAN(KernelVXLANSpec(name: names.name("dtov"), vni: 1000, remote: "172.31.77.1",
                                                            local: "172.31.77.2", underlay: nsEnd, address: "10.77.0.2/24"))
            try await ovs.start()
            #expect(try await ovs.dpdkInitialized())
            let vswitchd = try #require(await ovs.vswitchdPID())
            #expect(ProcessIdentity.commandLine(of: vswitchd).contains { $0.contains(ovs.runDirectory) })
            #expect(isMounted(ovs.hugepageDirectory))
            #expect(nrHugepages() >= hugepagesBefore + ovs.options.hugepages)

            try await ovs.addBridge(phy)
            try await ovs.addAfPacketPort(bridge: phy, port: names.name("dbd"), interface: hostEnd)
            try await ovs.setInternalAddress("172.31.77.1/24", bridge: phy)
            try await ovs.addBridge(integration)
            try await ovs.addVXLANPort(bridge: integration, port: vxlanPort, remoteIP: "172.31.77.2", localIP: "172.31.77.1", key: 1000)
            try await ovs.setInternalAddress("10.77.0.1/24", bridge: integration)
            #expect(try await ovs.vsctl(["get", "Bridge", phy, "datapath_type"]) == "netdev")

            let before = try await ovs.liveStatistics(bridge: integration, port: vxlanPort)
            let beforeDB = try await ovs.statistics(vxlanPort)
            // Frames sent into the kernel VXLAN device reach OVS's VXLAN port.
            try await tester.send(FrameSpec(ether: EthernetSpec(dst: "ff:ff:ff:ff:ff:ff"), ip: IPv4Spec(src: "10.77.0.2", dst: "10.77.0.99"),
                                            l4: .udp(sport: 4000, dport: 4001)), count: 20, on: names.name("dtov"))
            // And the namespace pings the internal port of br-int through the tunnel, both ways.
            let ping = try await tester.exec(["busybox", "ping", "-c", "3", "-W", "5", "10.77.0.1"], timeout: .seconds(40))
            let after = try await ovs.liveStatistics(bridge: integration, port: vxlanPort)
            #expect(after.rxPackets >= before.rxPackets + 20, "vxlan port rx: \(before.rxPackets) -> \(after.rxPackets)")
            #expect(ping.succeeded, "ping through the tunnel: \(ping.output) \(ping.errorOutput)")
            #expect(after.txPackets > before.txPackets, "vxlan port tx: \(before.txPackets) -> \(after.txPackets)")
            let physical = try await ovs.liveStatistics(bridge: phy, port: names.name("dbd"))
            #expect(physical.rxPackets >= 20)
            // The OVSDB statistics column catches up within its refresh interval.
            let afterDB = try await ovs.waitForStatistics(vxlanPort) { $0.rxPackets >= beforeDB.rxPackets + 20 }
            #expect(afterDB.txPackets > beforeDB.txPackets)

            await ovs.stop()
            await ovs.stop()   // idempotent
        }
        #expect(processes(mentioning: ovs.runDirectory).isEmpty, "ovs processes left")
        #expect(!isMounted(ovs.hugepageDirectory))
        #expect(!FileManager.default.fileExists(atPath: "/var/run/dpdk/" + ovs.filePrefix))
        #expect(!FileManager.default.fileExists(atPath: ovs.runDirectory))
        #expect(nrHugepages() == hugepagesBefore)
        #expect(!namespaceExists(namespace) && !linkExists(hostEnd) && !linkExists(phy) && !linkExists(integration))
    }

    /// A vswitchd that cannot initialize DPDK fails the start at once with its log, and leaves nothing.
    @Test func startFailsFastWithLogAndCleansUp() async throws {
        try requirePrograms(["ovsdb-tool", "ovsdb-server", "ovs-vsctl", "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"])
        let names = BackendNames()
        let dir = try TemporaryDirectory("dts-ovsf")
        let resources = RunResources()
        let hugepagesBefore = nrHugepages()
        var options = OVSDPDKOptions(name: names.name("f"), parentDirectory: dir.path)
        options.lcoreMask = "0x100"   // a core this 2-core host does not have: DPDK's EAL init fails
        let ovs = OVSDPDKBackend(session: LocalSession(), options: options, cleanup: .resources(resources))
        let start = ContinuousClock.now
        let error = await #expect(throws: BackendError.self) { try await ovs.start() }
        #expect(error?.step == "start ovs-vswitchd")
        #expect(error?.detail.contains("dpdk") == true || error?.detail.contains("EAL") == true, "log tail in the error: \(String(describing: error))")
        #expect(ContinuousClock.now - start < .seconds(40))
        await resources.cleanupAll()
        #expect(processes(mentioning: ovs.runDirectory).isEmpty)
        #expect(!isMounted(ovs.hugepageDirectory))
        #expect(!FileManager.default.fileExists(atPath: ovs.runDirectory))
        #expect(nrHugepages() == hugepagesBefore)
    }
}
}
