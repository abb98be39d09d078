@testable import DTS
import DTSProcess
import DTSTestSupport
import Foundation
import Testing

extension HostBackendTests {
@Suite struct OVSDPDKTests {
    /// OVS-DPDK `name` in its own network namespace `switchNamespace` (it runs beside any other
    /// userspace-datapath OVS on this host), and a tester in `namespace` whose veth's host end is there.
    static func switchAndTester(ovs name: String, in switchNamespace: String, tester namespace: String, dir: String,
                                dut: Dut) -> (OVSDPDKBackend, Tester) {
        var options = OVSDPDKOptions(name: name, parentDirectory: dir)
        options.networkNamespace = switchNamespace
        let tester = Tester(session: dut.session, namespace: namespace, workDirectory: dir, cleanup: .run(dut.run),
                            hostNamespace: switchNamespace)
        return (OVSDPDKBackend(session: dut.session, options: options, cleanup: .run(dut.run)), tester)
    }

    /// The VTEP of NOTES.md: bridge `phy` with the veth's host end as af_packet port `phyPort` and the
    /// VTEP address `local`/24, and bridge `integration` with VXLAN port `vxlanPort` (VNI 1000) to `remote`.
    static func addVTEP(_ ovs: OVSDPDKBackend, phy: String, phyPort: String, hostEnd: String, integration: String,
                        vxlanPort: String, local: String, remote: String) async throws {
        try await ovs.addBridge(phy)
        try await ovs.addAfPacketPort(bridge: phy, port: phyPort, interface: hostEnd)
        try await ovs.setInternalAddress(local + "/24", bridge: phy)
        try await ovs.addBridge(integration)
        try await ovs.addVXLANPort(bridge: integration, port: vxlanPort, remoteIP: remote, localIP: local, key: 1000)
    }

    /// The NOTES.md topology: tester namespace with a kernel VXLAN (VNI 1000) over a veth whose host end
    /// is an af_packet DPDK port of OVS bridge br-phy (VTEP 172.31.77.1); br-int holds the VXLAN port and
    /// an internal port 10.77.0.1 that the namespace pings through the tunnel.
    @Test func privateOVSTerminatesVXLANAndTearsDownClean() async throws {
        try requirePrograms(["ovsdb-tool", "ovsdb-server", "ovs-vsctl", "ovs-appctl",
                             "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk", "ip", "ethtool", "busybox", "/usr/bin/python3"])
        let names = BackendNames()
        let dir = try TemporaryDirectory("dts-ovs")
        let dut = Dut(run: testRun())   // the local host DUT: its session is a LocalSession
        let run = dut.run
        let hugepagesBefore = nrHugepages()
        let namespace = names.name("dtso"), hostEnd = names.name("dtoh"), nsEnd = names.name("dton")
        let phy = names.name("dbp"), integration = names.name("dbi"), vxlanPort = names.name("dbx")
        let switchNamespace = names.name("dtow")
        let (ovs, tester) = Self.switchAndTester(ovs: names.name("t"), in: switchNamespace, tester: namespace, dir: dir.path, dut: dut)
        let othersBefore = otherDPDKSwitches()
        try await withTearDown(run) {
            try await ovs.start()
            #expect(namespaceExists(switchNamespace))
            try await tester.setUp(veth: VethSpec(hostName: hostEnd, namespaceName: nsEnd, namespaceAddress: "172.31.77.2/24"))
            try await tester.addKernelVXLAN(KernelVXLANSpec(name: names.name("dtov"), vni: 1000, remote: "172.31.77.1",
                                                            local: "172.31.77.2", underlay: nsEnd, address: "10.77.0.2/24"))
            #expect(try await ovs.dpdkInitialized())
            let vswitchd = try #require(await ovs.vswitchdPID())
            #expect(ProcessTable.commandLine(of: vswitchd).contains { $0.contains(ovs.runDirectory) })
            #expect(isMounted(ovs.hugepageDirectory))
            #expect(await ovs.reservedHugepages == ovs.options.hugepages)

            try await Self.addVTEP(ovs, phy: phy, phyPort: names.name("dbd"), hostEnd: hostEnd, integration: integration,
                                   vxlanPort: vxlanPort, local: "172.31.77.1", remote: "172.31.77.2")
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
        #expect(await ovs.reservedHugepages == 0)
        if othersBefore.isEmpty, otherDPDKSwitches().isEmpty { #expect(nrHugepages() == hugepagesBefore, "hugepages not given back") }
        #expect(!namespaceExists(namespace) && !namespaceExists(switchNamespace) && !linkExists(hostEnd))
    }

    /// The vxlan_sample data path with a real guest: the guest's virtio NIC is a vhost-user device
    /// (QEMU listens, `opt_server=yes`) on a `dpdkvhostuserclient` port of br-int; the tester reaches it
    /// through its kernel VXLAN (VNI 1000) and with scapy-built VXLAN frames: VNI 1000 arrives, VNI 2000 does not.
    @Test func guestOnVhostUserClientPortThroughVXLAN() async throws {
        try requirePrograms(["ovs-vsctl", "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk", "qemu-system-x86_64", "busybox", "/usr/bin/python3"])
        try VMFixture.requireGuestImage()
        let names = BackendNames()
        let dir = try TemporaryDirectory("dts-ovsg")
        let dut = Dut(run: testRun())   // the local host DUT: its session is a LocalSession
        let run = dut.run
        let hugepagesBefore = nrHugepages()
        let namespace = names.name("dtsg"), hostEnd = names.name("dtgh"), nsEnd = names.name("dtgn"), kernelVXLAN = names.name("dtgv")
        let phy = names.name("dgp"), integration = names.name("dgi"), vxlanPort = names.name("dgx"), vhostPort = names.name("dgu")
        let socket = dir.path + "/vhost-net"
        let guestMAC = "00:00:20:00:00:20"
        let switchNamespace = names.name("dtgw")
        let (ovs, tester) = Self.switchAndTester(ovs: names.name("g"), in: switchNamespace, tester: namespace, dir: dir.path, dut: dut)
        let othersBefore = otherDPDKSwitches()
        let fixture = try VMFixture(["vm0": VMFixture.guest + "\ndevice = driver=vhost-user,opt_path=\(socket),opt_server=yes,opt_mac=\(guestMAC);"])
        let vm = try fixture.vm(run: run)
        try await withTearDown(run) {
          do {
            try await ovs.start()
            try await tester.setUp(veth: VethSpec(hostName: hostEnd, namespaceName: nsEnd, namespaceAddress: "172.31.78.2/24"))
            try await tester.addKernelVXLAN(KernelVXLANSpec(name: kernelVXLAN, vni: 1000, remote: "172.31.78.1", local: "172.31.78.2",
                                                            underlay: nsEnd, address: "10.78.0.2/24"))
            try await Self.addVTEP(ovs, phy: phy, phyPort: names.name("dgd"), hostEnd: hostEnd, integration: integration,
                                   vxlanPort: vxlanPort, local: "172.31.78.1", remote: "172.31.78.2")
            try await ovs.addVhostUserClientPort(bridge: integration, port: vhostPort, serverPath: socket)

            let guest = try await vm.start()
            let nic = try #require(try await guestInterface(guest, mac: guestMAC))
            for argv in [["ip", "link", "set", "dev", nic, "mtu", "1450"], ["ip", "addr", "add", "10.78.0.3/24", "dev", nic],
                         ["ip", "link", "set", "dev", nic, "up"]] {
                let result = try await guest.exec(argv: argv, timeout: .seconds(10))
                #expect(result.succeeded, "guest \(argv): \(result.errorOutput)")
            }
            // Kernel VXLAN in the namespace <-> OVS VTEP <-> vhost-user <-> guest, both ways.
            let ping = try await tester.exec(["busybox", "ping", "-c", "3", "-W", "5", "10.78.0.3"], timeout: .seconds(40))
            #expect(ping.succeeded, "tester -> guest through VXLAN: \(ping.output) \(ping.errorOutput)")
            let vhostStats = try await ovs.liveStatistics(bridge: integration, port: vhostPort)
            #expect(vhostStats.txPackets >= 3 && vhostStats.rxPackets >= 3, "vhost port: \(vhostStats)")

            // scapy-built VXLAN frames to the VTEP: VNI 1000 reaches the guest, VNI 2000 does not.
            let vtepMAC = try await tester.macAddress(phy, on: .host)
            func frames(vni: UInt32) -> FrameSpec {
                FrameSpec(ether: EthernetSpec(src: "00:00:20:00:00:99", dst: guestMAC),
                          ip: IPv4Spec(src: "10.78.0.2", dst: "10.78.0.3"), l4: .udp(sport: 5000, dport: 5001), payload: Array("vxlan".utf8),
                          vxlan: VXLANEncapsulation(vni: vni, outerEther: EthernetSpec(dst: vtepMAC),
                                                    outerIP: IPv4Spec(src: "172.31.78.2", dst: "172.31.78.1"), sport: 4790))
            }
            let rx0 = try await guestRxPackets(guest, nic)
            try await tester.send(frames(vni: 1000), count: 50, on: nsEnd)
            let rx1 = try await waitForGuestRx(guest, nic, atLeast: rx0 + 50)
            try await tester.send(frames(vni: 2000), count: 50, on: nsEnd)
            try await Task.sleep(for: .seconds(2))   // give wrongly delivered frames time to show up
            let rx2 = try await guestRxPackets(guest, nic)
            #expect(rx1 - rx0 >= 50, "VNI 1000: guest rx \(rx0) -> \(rx1)")
            #expect(rx2 - rx1 < 5, "VNI 2000 must not reach the guest: rx \(rx1) -> \(rx2)")
            await vm.stop()
          } catch {
            await vm.stop()
            throw error
          }
        }
        #expect(processes(mentioning: ovs.runDirectory).isEmpty)
        #expect(qemuProcesses(matching: dir.path).isEmpty)
        #expect(!isMounted(ovs.hugepageDirectory))
        #expect(await ovs.reservedHugepages == 0)
        if othersBefore.isEmpty, otherDPDKSwitches().isEmpty { #expect(nrHugepages() == hugepagesBefore, "hugepages not given back") }
        #expect(!namespaceExists(namespace) && !namespaceExists(switchNamespace) && !linkExists(hostEnd))
    }

    /// A vswitchd that cannot initialize DPDK fails the start at once with its log, and leaves nothing.
    @Test func startFailsFastWithLogAndCleansUp() async throws {
        try requirePrograms(["ovsdb-tool", "ovsdb-server", "ovs-vsctl", "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"])
        let names = BackendNames()
        let dir = try TemporaryDirectory("dts-ovsf")
        let dut = Dut(run: testRun())   // the local host DUT: its session is a LocalSession
        let run = dut.run
        let hugepagesBefore = nrHugepages()
        let othersBefore = otherDPDKSwitches()
        var options = OVSDPDKOptions(name: names.name("f"), parentDirectory: dir.path)
        options.networkNamespace = names.name("dtfw")
        options.lcoreMask = "0x100"   // a core this 2-core host does not have: DPDK's EAL init fails
        let ovs = OVSDPDKBackend(session: dut.session, options: options, cleanup: .run(run))
        let start = ContinuousClock.now
        let error = await #expect(throws: BackendError.self) { try await ovs.start() }
        #expect(error?.step == "start ovs-vswitchd")
        #expect(error?.detail.contains("dpdk") == true || error?.detail.contains("EAL") == true, "log tail in the error: \(String(describing: error))")
        #expect(ContinuousClock.now - start < .seconds(40))
        await run.tearDown()
        #expect(processes(mentioning: ovs.runDirectory).isEmpty)
        #expect(!isMounted(ovs.hugepageDirectory))
        #expect(!FileManager.default.fileExists(atPath: ovs.runDirectory))
        #expect(await ovs.reservedHugepages == 0)
        #expect(!namespaceExists(names.name("dtfw")))
        if othersBefore.isEmpty, otherDPDKSwitches().isEmpty { #expect(nrHugepages() == hugepagesBefore, "hugepages not given back") }
    }
}
}

/// Polls a guest's rx counter until it reaches `target` (up to 10 s); returns the last value.
func waitForGuestRx(_ guest: VirtDut, _ nic: String, atLeast target: UInt64) async throws -> UInt64 {
    let deadline = ContinuousClock.now + .seconds(10)
    var value = try await guestRxPackets(guest, nic)
    while value < target, ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(300))
        value = try await guestRxPackets(guest, nic)
    }
    return value
}

/// ovs-vswitchd-dpdk processes of other instances (other tests or helpers change the hugepage count too).
func otherDPDKSwitches() -> [Int32] {
    processes(mentioning: "ovs-vswitchd-dpdk").filter { ProcessTable.commandLine(of: $0).first?.hasSuffix("ovs-vswitchd-dpdk") == true }
}
