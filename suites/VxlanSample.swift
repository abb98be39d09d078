import DTS
import DTSSession
import Foundation

/// `vxlan_sample`: DTS's VXLAN tunnel-endpoint suite, for real packets.
///
/// DTS ran DPDK's `tep_termination` example (since removed from DPDK) as the tunnel endpoint.
/// Here Open vSwitch with DPDK does that job on the host: a netdev bridge `br-phy` holds the
/// underlay (an af_packet DPDK port on the host end of a veth, endpoint address 172.31.1.1) and
/// `br-int` holds the VXLAN port and the VM's two vhost-user ports. OpenFlow rules on `br-int`
/// make it behave like `tep_termination`: what arrives through the tunnel goes to the VM's port 0,
/// what the VM sends on port 1 goes into the tunnel. The VM runs `dpdk-testpmd` on both ports.
/// The tester is a network namespace at the other end of the veth (172.31.1.2, with a kernel
/// `vxlan` device) that sends frames with scapy and captures what comes back.
/// See docs/suites/vxlan_sample.md.
final class VxlanSample: TestSuite {
    static let name = "vxlan_sample"
    static let cases: [TestCase<VxlanSample>] = [
        .functional("test_vxlan_sample_decap") { try await $0.testDecap() },
        .functional("test_vxlan_sample_encap") { try await $0.testEncap() },
        .functional("test_vxlan_sample_encap_decap") { try await $0.testEncapDecap() },
        .functional("test_vxlan_sample_chksum") { try await $0.testChecksum() },
        .functional("test_vxlan_sample_tso") { try await $0.testTSO() },
        .performance("test_perf_vxlan_sample", timeout: .seconds(900)) { try await $0.testPerf() },
    ]
    static var defaultCaseTimeout: Duration { .seconds(300) }

    /// The suite's `[suite]` settings.
    struct Settings {
        var vni: UInt32
        var foreignVNI: UInt32
        var vxlanPort: UInt16
        var namespace: String
        var ovsNamespace: String?
        var hostVeth: String
        var testerVeth: String
        var vtepIP: String
        var testerIP: String
        var testerVXLAN: String
        var overlayTesterIP: String
        var overlayGuestIP: String
        var overlayMTU: Int
        var guestMACs: [String]
        var guestHugepages: Int
        var packetCount: Int
        var frameSizes: [Int]
        var perfPacketCount: Int

        init(_ config: SuiteConfig) throws {
            func int<T: FixedWidthInteger>(_ key: String, _ range: ClosedRange<Int>) throws -> T {
                let value = try config.int(key)
                guard range.contains(value) else {
                    throw ConfigError(SourceLocation(file: config.path, line: 0, section: "suite"), key: key, "\(value) is outside \(range)")
                }
                return T(value)
            }
            vni = try int("vni", 0...0xFF_FFFF)
            foreignVNI = try int("foreign_vni", 0...0xFF_FFFF)
            vxlanPort = try int("vxlan_port", 1...65535)
            namespace = try config.string("tester_namespace")
            let ovsNamespace = config.string("ovs_namespace", default: "").trimmingCharacters(in: .whitespaces)
            self.ovsNamespace = ovsNamespace.isEmpty ? nil : ovsNamespace
            hostVeth = try config.string("host_veth")
            testerVeth = try config.string("tester_veth")
            vtepIP = try config.string("vtep_ip")
            testerIP = try config.string("tester_ip")
            testerVXLAN = try config.string("tester_vxlan")
            overlayTesterIP = try config.string("overlay_tester_ip")
            overlayGuestIP = try config.string("overlay_guest_ip")
            overlayMTU = try int("overlay_mtu", 576...1450)
            guestMACs = try config.list("guest_macs")
            guestHugepages = try int("guest_hugepages", 16...1024)
            packetCount = try int("packet_count", 1...100_000)
            perfPacketCount = try int("perf_packet_count", 1...1_000_000)
            let maxFrame = overlayMTU + 18
            frameSizes = try config.list("frame_sizes").map { text in
                guard let size = Int(text), (64...maxFrame).contains(size) else {
                    throw ConfigError(SourceLocation(file: config.path, line: 0, section: "suite"), key: "frame_sizes",
                                      "'\(text)' is not a frame size between 64 and overlay_mtu + 18")
                }
                return size
            }
            guard guestMACs.count == 2 else {
                throw ConfigError(SourceLocation(file: config.path, line: 0, section: "suite"), key: "guest_macs", "needs two MAC addresses, has \(guestMACs.count)")
            }
            guard foreignVNI != vni else {
                throw ConfigError(SourceLocation(file: config.path, line: 0, section: "suite"), key: "foreign_vni", "must differ from vni")
            }
        }
    }

    let context: TestContext
    private var settings: Settings?
    private var workDirectory: String?
    private var tester: Tester?
    private var ovs: OVSDPDKBackend?
    private var kvm: QEMUKvm?
    private var vm: VirtDut?
    private lazy var hugepages = HugepageHold(session: context.dut.session)
    /// testpmd's port ids of the guest NIC that receives from the tunnel and of the one that sends into it.
    private var rxPort = 0, txPort = 1
    /// The guest's testpmd.
    private var guestPmd: PmdOutput?
    private var testerMAC = "", vtepMAC = ""

    private static let bridgePhy = "br-phy", bridgeInt = "br-int"
    private static let phyPort = "phy0", vxlanPort = "vxlan0", vhostPorts = ["vhost0", "vhost1"]

    init(context: TestContext) { self.context = context }

    // MARK: Set-up and tear-down

    func setUpAll() async throws {
        let s = try Settings(context.config)
        settings = s
        let dut = context.dut

        let mktemp = try await dut.exec(argv: ["mktemp", "-d", "/tmp/dts-vxlan-XXXXXX"], timeout: .seconds(10))
        try verifySetup(mktemp.succeeded, "mktemp -d: \(mktemp.errorOutput)")
        let dir = mktemp.output.trimmingCharacters(in: .whitespacesAndNewlines)
        workDirectory = dir
        await context.run.register("vxlan_sample work directory \(dir)") { [dut] in
            _ = try? await dut.exec(argv: ["rm", "-rf", dir], timeout: .seconds(20))
        }

        // The VM's memory: 2 MB pages on the host's hugetlbfs, added to the reservation and given back at the end.
        let kvm = try QEMUKvm(dut: dut, vmName: "vm0", suite: Self.name)
        for (index, mac) in s.guestMACs.enumerated() {
            try kvm.setVMDevice(["driver": "vhost-user", "opt_path": "\(dir)/vhost\(index).sock",
                                 "opt_server": "yes", "opt_mac": mac])
        }
        self.kvm = kvm
        try await reserveHugepages((kvm.memoryMiB ?? 0) / 2)

        // The tunnel endpoint: OVS-DPDK, in the host's network namespace or, with `ovs_namespace`,
        // in a private one (a second userspace-datapath OVS on the same host needs that).
        var options = OVSDPDKOptions(name: "vxlan", parentDirectory: dir)
        // Four DPDK ports with per-port mempools (af_packet, two vhost-user, and the tunnel's) need more than the default 128 MB.
        options.socketMemoryMB = 256
        options.hugepages = 128
        options.networkNamespace = s.ovsNamespace
        let ovs = OVSDPDKBackend(session: dut.session, options: options, cleanup: .run(context.run))
        self.ovs = ovs
        try await ovs.start()

        // Tester: namespace, veth (its host end where OVS runs), kernel vxlan device. No IPv6 in the
        // namespace: its router and neighbour solicitations would otherwise travel through the
        // tunnel and spoil exact counts.
        let tester = Tester(session: dut.session, namespace: s.namespace, workDirectory: dir, cleanup: .run(context.run),
                            hostNamespace: s.ovsNamespace)
        self.tester = tester
        try await tester.setUp(veth: VethSpec(hostName: s.hostVeth, namespaceName: s.testerVeth, namespaceAddress: "\(s.testerIP)/24"))
        try await tester.check(["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
        _ = try await tester.exec(["sysctl", "-q", "-w", "net.ipv6.conf.\(s.hostVeth).disable_ipv6=1"], on: .host)
        try await tester.addKernelVXLAN(KernelVXLANSpec(name: s.testerVXLAN, vni: s.vni, remote: s.vtepIP, local: s.testerIP,
                                                        destinationPort: s.vxlanPort, underlay: s.testerVeth,
                                                        address: "\(s.overlayTesterIP)/24", mtu: s.overlayMTU))

        // br-phy holds the underlay and the endpoint address, br-int the tunnel and the VM's ports.
        try await ovs.addBridge(Self.bridgePhy)
        try await ovs.addAfPacketPort(bridge: Self.bridgePhy, port: Self.phyPort, interface: s.hostVeth)
        try await ovs.setInternalAddress("\(s.vtepIP)/24", bridge: Self.bridgePhy)
        try await ovs.addBridge(Self.bridgeInt)
        try await ovs.addVXLANPort(bridge: Self.bridgeInt, port: Self.vxlanPort, remoteIP: s.testerIP, localIP: s.vtepIP,
                                   key: s.vni, destinationPort: s.vxlanPort)

        // The underlay works both ways before anything rides on it; OVS learns the tester's MAC.
        let ping = try await tester.exec(["busybox", "ping", "-c", "2", "-W", "5", s.vtepIP], timeout: .seconds(30))
        try verifySetup(ping.succeeded, "the tester cannot ping the tunnel endpoint \(s.vtepIP): \(ping.output) \(ping.errorOutput)")
        testerMAC = try await tester.macAddress(s.testerVeth)
        vtepMAC = try await tester.macAddress(Self.bridgePhy, on: .host)
        try await ovs.appctl(["tnl/neigh/set", Self.bridgePhy, s.testerIP, testerMAC])

        // The VM: QEMU listens on the vhost-user sockets and OVS connects to them. QEMU does not
        // start (not even its QMP monitor) until a backend has connected to each vhost-user netdev,
        // so the ports go in first: OVS's vhost-user client retries until QEMU's sockets appear.
        for (index, port) in Self.vhostPorts.enumerated() {
            try await ovs.addVhostUserClientPort(bridge: Self.bridgeInt, port: port, serverPath: "\(dir)/vhost\(index).sock")
        }
        vm = try await kvm.start()
        // tep_termination's forwarding: tunnel -> VM port 0, VM port 1 -> tunnel, nothing else.
        let tunnel = try await ofport(Self.vxlanPort), toGuest = try await ofport(Self.vhostPorts[0])
        let fromGuest = try await ofport(Self.vhostPorts[1])
        try await ofctl(["del-flows", Self.bridgeInt])
        try await ofctl(["add-flow", Self.bridgeInt, "priority=100,in_port=\(tunnel),actions=output:\(toGuest)"])
        try await ofctl(["add-flow", Self.bridgeInt, "priority=100,in_port=\(fromGuest),actions=output:\(tunnel)"])

        try await startGuestTestpmd()
    }

    func tearDownAll() async throws {
        await guestPmd?.quit()
        guestPmd = nil
        await kvm?.stop()
        vm = nil
        await ovs?.stop()
        await tester?.tearDown()
        if let workDirectory {
            _ = try? await context.dut.exec(argv: ["rm", "-rf", workDirectory], timeout: .seconds(20))
        }
        await hugepages.release()
    }

    /// Every case starts with io forwarding running and counters at zero.
    func setUp() async throws {
        let vm = try guest()
        try await testpmd("stop", in: vm)
        try await testpmd("set fwd io", in: vm)
        try await testpmd("clear port stats all", in: vm)
        try await testpmd("start", in: vm)
    }

    /// Every case leaves the guest forwarding in io mode with software checksums off.
    func tearDown() async throws {
        guard let vm, guestPmd != nil else { return }
        try await testpmd("stop", in: vm)
        try await testpmd("set fwd io", in: vm)
    }

    // MARK: Cases

    /// Frames with the suite's VNI are decapsulated into the guest's port 0, exactly as many as
    /// were sent; frames with another VNI never reach the guest.
    func testDecap() async throws {
        let s = try config(), vm = try guest(), tester = try testerOrFail()
        let before = try await portStats(vm)
        try await tester.send(frame(vni: s.vni, payload: Self.pattern(64, seed: 1)), count: s.packetCount, on: s.testerVeth)
        let after = try await waitForRX(vm, atLeast: before[rxPort, default: PortCounters()].rxPackets + UInt64(s.packetCount))
        let received = after[rxPort, default: PortCounters()].rxPackets - before[rxPort, default: PortCounters()].rxPackets
        try verify(received == UInt64(s.packetCount), "guest port \(rxPort) received \(received) frames for \(s.packetCount) sent with VNI \(s.vni)")

        let ovs = try ovsOrFail()
        let phyBefore = try await ovs.liveStatistics(bridge: Self.bridgePhy, port: Self.phyPort)
        try await tester.send(frame(vni: s.foreignVNI, payload: Self.pattern(64, seed: 2)), count: s.packetCount, on: s.testerVeth)
        try await Task.sleep(for: .seconds(3))
        let foreign = try await portStats(vm)
        let leaked = foreign[rxPort, default: PortCounters()].rxPackets - after[rxPort, default: PortCounters()].rxPackets
        try verify(leaked == 0, "guest port \(rxPort) received \(leaked) of \(s.packetCount) frames sent with foreign VNI \(s.foreignVNI)")
        // The foreign frames did reach the endpoint: they were refused, not lost on the way.
        let phyAfter = try await ovs.liveStatistics(bridge: Self.bridgePhy, port: Self.phyPort)
        try verify(phyAfter.rxPackets - phyBefore.rxPackets >= UInt64(s.packetCount),
                   "the endpoint's underlay port saw \(phyAfter.rxPackets - phyBefore.rxPackets) of the \(s.packetCount) foreign-VNI frames")
    }

    /// What the guest sends on port 1 leaves the endpoint VXLAN-encapsulated: the suite's VNI,
    /// outer addresses endpoint -> tester, UDP destination port 4789, the guest's frame inside.
    func testEncap() async throws {
        let s = try config(), vm = try guest(), tester = try testerOrFail()
        try await testpmd("stop", in: vm)
        try await testpmd("clear port stats all", in: vm)
        let capture = try await tester.startCapture(on: s.testerVeth, filter: "udp and src host \(s.vtepIP)", duration: .seconds(20), count: 32)
        // testpmd's tx_first: one burst of 32 frames from each port, made in the guest.
        try await testpmd("start tx_first", in: vm)
        let frames = try await capture.frames()
        try await testpmd("stop", in: vm)
        let stats = try await portStats(vm)
        let sent = stats[txPort, default: PortCounters()].txPackets
        try verify(sent >= 32, "guest port \(txPort) sent \(sent) frames, expected a burst of 32")
        try verify(frames.count == 32, "the tester captured \(frames.count) frames from \(s.vtepIP), expected 32")
        let guestMAC = s.guestMACs[1]   // the sending NIC (testpmd port txPort)
        for frame in frames {
            try verify(frame.ip?.src == s.vtepIP && frame.ip?.dst == s.testerIP,
                       "outer addresses \(frame.ip?.src ?? "-") -> \(frame.ip?.dst ?? "-"), expected \(s.vtepIP) -> \(s.testerIP)")
            try verify(frame.udp?.dport == Int(s.vxlanPort), "outer UDP destination port \(frame.udp?.dport ?? -1), expected \(s.vxlanPort)")
            try verify(frame.vxlan?.vni == s.vni, "VNI \(frame.vxlan.map { String($0.vni) } ?? "none"), expected \(s.vni)")
            try verify(frame.inner?.ether?.src.lowercased() == guestMAC.lowercased(),
                       "inner source MAC \(frame.inner?.ether?.src ?? "-"), expected the guest's \(guestMAC)")
        }
    }

    /// Tester -> tunnel -> guest port 0 -> guest port 1 -> tunnel -> tester: every frame comes back,
    /// inner headers and payload unchanged byte for byte.
    func testEncapDecap() async throws {
        let s = try config(), vm = try guest(), tester = try testerOrFail()
        let kinds = 4, perKind = max(1, s.packetCount / kinds)
        let capture = try await tester.startCapture(on: s.testerVeth, filter: "udp and src host \(s.vtepIP)",
                                                    duration: .seconds(60), count: kinds * perKind)
        var sent: [[UInt8]] = []
        for kind in 0..<kinds {
            let payload = Self.pattern(100 + 200 * kind, seed: UInt8(10 + kind))
            sent.append(payload)
            try await tester.send(frame(vni: s.vni, payload: payload, tcp: kind % 2 == 1), count: perKind, on: s.testerVeth)
        }
        let frames = try await capture.frames()
        try verify(frames.count == kinds * perKind, "\(frames.count) of \(kinds * perKind) frames came back through the guest")
        var seen = [Int](repeating: 0, count: kinds)
        for frame in frames {
            try verify(frame.vxlan?.vni == s.vni && frame.ip?.dst == s.testerIP, "a returned frame is not VXLAN \(s.vni) to \(s.testerIP)")
            let inner = try frame.inner.orFail("a returned frame has no inner frame")
            try verify(inner.ip?.src == s.overlayTesterIP && inner.ip?.dst == s.overlayGuestIP,
                       "inner addresses changed: \(inner.ip?.src ?? "-") -> \(inner.ip?.dst ?? "-")")
            guard let kind = sent.firstIndex(of: inner.payload) else {
                throw TestFailure(message: "a returned payload (\(inner.payload.count) bytes) matches nothing that was sent")
            }
            try verify((kind % 2 == 1) == (inner.tcp != nil), "frame kind \(kind) came back with the wrong transport")
            seen[kind] += 1
        }
        try verify(seen.allSatisfy { $0 == perKind }, "returned frames per payload: \(seen), expected \(perKind) each")
        // And the guest forwarded each exactly once.
        let stats = try await portStats(vm)
        try verify(stats[rxPort, default: PortCounters()].rxPackets == UInt64(kinds * perKind)
                   && stats[txPort, default: PortCounters()].txPackets == UInt64(kinds * perKind),
                   "guest ports: \(stats[rxPort, default: PortCounters()].rxPackets) received, \(stats[txPort, default: PortCounters()].txPackets) sent, expected \(kinds * perKind)")
    }

    /// Inner IPv4, UDP and TCP checksums on what the tester receives are right whether the frames
    /// went in with good or deliberately bad ones: testpmd's csum engine recomputes them in software.
    /// A control pass in io mode first shows the bad checksums survive plain forwarding.
    func testChecksum() async throws {
        let s = try config(), vm = try guest(), tester = try testerOrFail()
        let count = min(s.packetCount, 10)
        // Control: io forwarding leaves a bad inner checksum bad.
        let control = try await roundTrip(tester, s, frames: [frame(vni: s.vni, payload: Self.pattern(80, seed: 30), ipChecksum: 0x1234, l4Checksum: 0x4321)], count: count)
        try verify(control.allSatisfy { $0.inner?.ip?.checksumOK == false && $0.inner?.udp?.checksumOK == false },
                   "io forwarding changed bad checksums: \(control.map { "\($0.inner?.ip?.checksumOK.map(String.init) ?? "?")/\($0.inner?.udp?.checksumOK.map(String.init) ?? "?")" })")

        // csum engine, software IP/UDP/TCP checksums on the transmitting port.
        try await testpmd("stop", in: vm)
        try await testpmd("port stop all", in: vm, timeout: .seconds(60))
        do {
            for layer in ["ip", "udp", "tcp"] { try await testpmd("csum set \(layer) sw \(txPort)", in: vm) }
            try await testpmd("port start all", in: vm, timeout: .seconds(60))
            try await testpmd("set fwd csum", in: vm)
            try await testpmd("start", in: vm)
            let variants: [(String, FrameSpec)] = try [
                ("udp good", frame(vni: s.vni, payload: Self.pattern(80, seed: 31))),
                ("udp bad", frame(vni: s.vni, payload: Self.pattern(81, seed: 32), ipChecksum: 0x1234, l4Checksum: 0x4321)),
                ("tcp good", frame(vni: s.vni, payload: Self.pattern(82, seed: 33), tcp: true)),
                ("tcp bad", frame(vni: s.vni, payload: Self.pattern(83, seed: 34), tcp: true, ipChecksum: 0x1234, l4Checksum: 0x4321)),
            ]
            let frames = try await roundTrip(tester, s, frames: variants.map(\.1), count: count)
            try verify(frames.count == variants.count * count, "\(frames.count) of \(variants.count * count) frames came back")
            var checked = [Int: Int]()
            for frame in frames {
                let inner = try frame.inner.orFail("a returned frame has no inner frame")
                let l4 = inner.udp ?? inner.tcp
                let name = inner.udp != nil ? "UDP" : "TCP"
                try verify(inner.ip?.checksumOK == true, "inner IPv4 checksum \(inner.ip?.checksum ?? -1) is wrong (\(inner.payload.count)-byte payload)")
                try verify(l4?.checksumOK == true, "inner \(name) checksum \(l4?.checksum ?? -1) is wrong (\(inner.payload.count)-byte payload)")
                checked[inner.payload.count, default: 0] += 1
            }
            try verify(checked.count == variants.count && checked.values.allSatisfy { $0 == count },
                       "returned frames by payload size: \(checked), expected \(count) of each of the \(variants.count) variants")
        } catch {
            await resetChecksumEngine()
            throw error
        }
        await resetChecksumEngine()
    }

    /// DTS's TSO case needs the endpoint to segment TCP inside VXLAN. Open vSwitch before 3.3 cannot
    /// do that in its userspace datapath; the case checks the version and says so.
    func testTSO() async throws {
        let ovs = try ovsOrFail()
        let versionText = try await ovs.appctl(["version"])
        guard let version = Self.ovsVersion(versionText) else {
            throw TestFailure(message: "cannot read the Open vSwitch version from '\(versionText)'")
        }
        if version.lexicographicallyPrecedes([3, 3]) {
            try skip("Open vSwitch \(version.map(String.init).joined(separator: ".")) cannot segment VXLAN-encapsulated TCP in its userspace (DPDK) datapath: its userspace TSO covers flat and VLAN networks only, and TSO over VXLAN/Geneve tunnels arrived in Open vSwitch 3.3")
        }
        throw TestFailure(message: "Open vSwitch \(versionText) may segment VXLAN TCP, but this suite has no TSO check for it yet")
    }

    /// Frames per second through the tunnel into the guest and back, per frame size. The rate is the
    /// guest's forwarding rate (testpmd's counters, sampled while the tester sends); the table also
    /// shows how many frames entered the guest and how many reached the tester's underlay again.
    func testPerf() async throws {
        let s = try config(), tester = try testerOrFail(), vm = try guest()
        var table = PerfTable(title: "VXLAN tunnel -> guest testpmd (io) -> tunnel, TCG guest",
                              columns: ["frame size", "sent", "into guest", "out of guest", "back to tester", "seconds", "pps", "loss %"])
        for size in s.frameSizes {
            try await testpmd("clear port stats all", in: vm)
            let testerBefore = try await tester.counters(s.testerVeth)
            let spec = try frame(vni: s.vni, payload: Self.pattern(size - 4 - 42, seed: UInt8(size % 251)))
            let sender = Task { try await tester.send(spec, count: s.perfPacketCount, on: s.testerVeth, timeout: .seconds(600)) }
            // Sample what the guest has forwarded; the rate spans the sample before its first rise to its last rise.
            var previous = (at: ContinuousClock.now, count: UInt64(0))
            var first: (at: ContinuousClock.Instant, count: UInt64)?, last: (at: ContinuousClock.Instant, count: UInt64)?
            var quietSince = ContinuousClock.now
            let deadline = ContinuousClock.now + .seconds(600)
            while ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                let forwarded = try await portStats(vm)[txPort, default: PortCounters()].txPackets
                let at = ContinuousClock.now
                if forwarded != previous.count {
                    if first == nil { first = previous }
                    last = (at, forwarded)
                    quietSince = at
                }
                previous = (at, forwarded)
                if forwarded >= UInt64(s.perfPacketCount) { break }
                // Stop once nothing has moved for 5 s after the first frames (or 60 s without any).
                if at - quietSince > (first == nil ? .seconds(60) : .seconds(5)) { break }
            }
            try await sender.value
            try await Task.sleep(for: .seconds(1))
            let stats = try await portStats(vm)
            let testerAfter = try await tester.counters(s.testerVeth)
            let into = stats[rxPort, default: PortCounters()].rxPackets
            let out = stats[txPort, default: PortCounters()].txPackets
            let back = testerAfter.rxPackets - testerBefore.rxPackets
            var seconds = 0.0, pps = 0.0
            if let first, let last, last.at > first.at {
                seconds = (last.at - first.at).seconds
                pps = Double(last.count - first.count) / seconds
            }
            let returned = min(back, out)
            let loss = 100 * Double(UInt64(s.perfPacketCount) - min(returned, UInt64(s.perfPacketCount))) / Double(s.perfPacketCount)
            table.add([size, s.perfPacketCount, into, out, back, String(format: "%.2f", seconds), String(format: "%.0f", pps), String(format: "%.1f", loss)])
            context.logger.info("vxlan perf \(size) bytes: \(into) into the guest, \(out) out, \(back) back at the tester; \(Int(pps)) pps over \(seconds) s")
            try verify(out > 0 && back > 0, "no \(size)-byte frame came back through the guest (into \(into), out \(out), back \(back))")
            try verify(out <= into, "the guest sent \(out) frames but received only \(into)")
        }
        context.recordPerformance(table)
    }

    // MARK: Guest testpmd

    private func startGuestTestpmd() async throws {
        let s = try config(), vm = try guest()
        // The vhost-user NICs by MAC: their PCI addresses, unbound from virtio-pci, bound to uio_pci_generic.
        var devices: [String] = []
        for mac in s.guestMACs { devices.append(try await vm.pciAddress(ofMAC: mac)) }
        try await vm.bindTestPorts(driver: .uioPCIGeneric, only: devices)
        try await vm.reserveHugepages(s.guestHugepages)
        var options = TestpmdOptions(filePrefix: "vxlan", cores: .list("0-1"), memory: .hugepages(megabytes: s.guestHugepages * 2))
        options.allowedDevices = devices
        options.arguments = ["--total-num-mbufs=2048", "--nb-cores=1"]
        options.startTimeout = .seconds(180)
        let pmd = PmdOutput(session: vm, options: options, cleanup: .run(context.run))
        guestPmd = pmd
        let banner = try await pmd.start()
        context.logger.info("vm0 # \(ShellQuoting.join(options.argv))\n\(banner)")
        // Which testpmd port is which NIC.
        for port in 0..<2 {
            let info = try await testpmd("show port info \(port)", in: vm)
            if info.lowercased().contains(s.guestMACs[0].lowercased()) { rxPort = port; txPort = 1 - port }
        }
        context.logger.info("guest testpmd: port \(rxPort) receives from the tunnel, port \(txPort) sends into it")
    }

    @discardableResult
    private func testpmd(_ command: String, in vm: VirtDut, timeout: Duration = .seconds(30)) async throws -> String {
        guard let pmd = guestPmd else { throw TestFailure(message: "testpmd is not running in \(vm.vmName)") }
        let output = try await pmd.execute(command, timeout: timeout)
        // The VM DUT's shell does not log itself: the guest's testpmd dialogue goes to the case log here.
        context.logger.info("vm0 testpmd> \(command)\n\(output)")
        if output.contains("Bad arguments") || output.contains("Invalid") {
            throw TestFailure(message: "testpmd refused '\(command)': \(output)")
        }
        return output
    }

    private func portStats(_ vm: VirtDut) async throws -> [Int: PortCounters] {
        let stats = TestpmdParser.portStats(try await testpmd("show port stats all", in: vm)).mapValues(\.counters)
        guard stats[rxPort] != nil, stats[txPort] != nil else {
            throw TestFailure(message: "testpmd's port statistics lack port \(rxPort) or \(txPort)")
        }
        return stats
    }

    /// Polls until guest port `rxPort` has received `count` frames (or 30 s pass), then waits a
    /// little more so that late frames would be counted too.
    private func waitForRX(_ vm: VirtDut, atLeast count: UInt64) async throws -> [Int: PortCounters] {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if try await portStats(vm)[rxPort, default: PortCounters()].rxPackets >= count { break }
            try await Task.sleep(for: .milliseconds(300))
        }
        try await Task.sleep(for: .seconds(1))
        return try await portStats(vm)
    }

    private func resetChecksumEngine() async {
        guard let pmd = guestPmd else { return }
        _ = try? await pmd.execute("stop")
        _ = try? await pmd.execute("port stop all", timeout: .seconds(60))
        for layer in ["ip", "udp", "tcp"] { _ = try? await pmd.execute("csum set \(layer) hw \(txPort)") }
        _ = try? await pmd.execute("port start all", timeout: .seconds(60))
        _ = try? await pmd.execute("set fwd io")
    }

    // MARK: Frames

    /// A frame from the tester into the tunnel: outer tester -> endpoint, VNI `vni`, inner UDP (or TCP)
    /// overlay tester -> guest, addressed to the guest's port 0.
    private func frame(vni: UInt32, payload: [UInt8], tcp: Bool = false, ipChecksum: Int? = nil, l4Checksum: Int? = nil) throws -> FrameSpec {
        let s = try config()
        let l4: L4Spec = tcp ? .tcp(sport: 5001, dport: 5002, checksum: l4Checksum) : .udp(sport: 5001, dport: 5002, checksum: l4Checksum)
        return FrameSpec(ether: EthernetSpec(src: "00:00:10:00:00:02", dst: s.guestMACs[0]),
                         ip: IPv4Spec(src: s.overlayTesterIP, dst: s.overlayGuestIP, checksum: ipChecksum),
                         l4: l4, payload: payload,
                         vxlan: VXLANEncapsulation(vni: vni, outerEther: EthernetSpec(src: testerMAC, dst: vtepMAC),
                                                   outerIP: IPv4Spec(src: s.testerIP, dst: s.vtepIP),
                                                   sport: 4790, dport: Int(s.vxlanPort)))
    }

    /// Sends each frame `count` times and captures what comes back from the endpoint.
    private func roundTrip(_ tester: Tester, _ s: Settings, frames: [FrameSpec], count: Int) async throws -> [CapturedFrame] {
        let capture = try await tester.startCapture(on: s.testerVeth, filter: "udp and src host \(s.vtepIP)",
                                                    duration: .seconds(30), count: frames.count * count)
        for frame in frames { try await tester.send(frame, count: count, on: s.testerVeth) }
        return try await capture.frames()
    }

    /// `count` bytes of a recognisable pattern.
    nonisolated static func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<max(0, count)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &* 7) }
    }

    /// The version from `ovs-appctl version` (`ovs-vswitchd (Open vSwitch) 3.1.0`).
    nonisolated static func ovsVersion(_ text: String) -> [Int]? {
        guard let range = text.range(of: #"\(Open vSwitch\) [0-9]+(\.[0-9]+)+"#, options: .regularExpression) else { return nil }
        let numbers = text[range].split(separator: " ").last.map { $0.split(separator: ".").compactMap { Int($0) } }
        return numbers.flatMap { $0.count >= 2 ? $0 : nil }
    }

    // MARK: Host helpers

    /// Runs `ovs-ofctl` against this suite's private OVS (its bridges' management sockets live in its run directory).
    private func ofctl(_ arguments: [String]) async throws {
        let ovs = try ovsOrFail()
        let result = try await context.dut.exec(argv: ["env", "OVS_RUNDIR=\(ovs.runDirectory)", "ovs-ofctl"] + arguments, timeout: .seconds(20))
        guard result.succeeded else {
            throw BackendError(component: "ovs-dpdk vxlan", step: "ovs-ofctl " + arguments.joined(separator: " "),
                               detail: "exit status \(result.status): \(result.errorOutput)")
        }
    }

    /// The OpenFlow port number of `interface`, once OVS has given it one and the interface has no error.
    private func ofport(_ interface: String) async throws -> Int {
        let ovs = try ovsOrFail()
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            let value = try await ovs.vsctl(["get", "Interface", interface, "ofport"])
            if let port = Int(value), port > 0 { return port }
            if ContinuousClock.now >= deadline {
                let error = try await ovs.interfaceError(interface) ?? "none"
                throw BackendError(component: "ovs-dpdk vxlan", step: "ofport of \(interface)",
                                   detail: "ofport is \(value), error column: \(error); log:\n\(await ovs.logTail())")
            }
            try await Task.sleep(for: .milliseconds(300))
        }
    }

    private func reserveHugepages(_ pages: Int) async throws {
        guard pages > 0 else { return }
        let hold = hugepages
        await context.run.register("vxlan_sample guest hugepages") { await hold.release() }
        let (before, after) = try await hold.reserve(pages)
        try verifySetup(after >= before + pages,
                        "reserving \(pages) 2 MB hugepages for the VM: the kernel has \(after), wanted \(before + pages)")
    }

    private func verifySetup(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw BackendError(component: "vxlan_sample", step: "set up", detail: message()) }
    }

    private func config() throws -> Settings { try settings.orFail("the suite's settings were not read") }
    private func guest() throws -> VirtDut { try vm.orFail("no VM DUT") }
    private func testerOrFail() throws -> Tester { try tester.orFail("no tester") }
    private func ovsOrFail() throws -> OVSDPDKBackend { try ovs.orFail("no tunnel endpoint") }
}
