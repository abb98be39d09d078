@testable import DTS
import DTSProcess
import DTSTestSupport
import Foundation
import Testing

extension RealGuestTests {
/// vhost-user devices under TCG against a real `net_vhost` testpmd: QEMU as client and as server,
/// the `opt_settings` features as the guest sees them, multi-queue with MSI-X off, and the
/// reconnects (backend restarted; QEMU killed and started again on the same sockets).
@Suite struct VhostUserDeviceTests {
    static let macs = ["52:54:00:00:01:01", "52:54:00:00:01:02", "52:54:00:00:01:03"]

    /// Bit `bit` of a virtio device's negotiated features (`/sys/bus/virtio/devices/*/features`,
    /// one '0'/'1' character per bit, bit 0 first).
    static func feature(_ bits: String, _ bit: Int) -> Bool {
        let scalars = Array(bits.unicodeScalars)
        return bit < scalars.count && scalars[bit] == "1"
    }

    @Test func featuresMultiqueueAndReconnects() async throws {
        try VMFixture.requireGuestImage()
        try requirePrograms(["dpdk-testpmd", "qemu-system-x86_64"])
        let names = BackendNames()
        let dir = try TemporaryDirectory("dts-vud")
        let sockets = (0..<3).map { dir.path + "/net\($0)" }
        let fixture = try VMFixture(["vm0": VMFixture.guest + "\ncpu = model=host,number=2;\nmem = size=512;\ndevice =\n" + """
                driver=vhost-user,opt_path=\(sockets[0]),opt_queue=2,opt_mac=\(Self.macs[0]),opt_settings="mrg_rxbuf=off,rx_queue_size=1024,tx_queue_size=1024";
                driver=vhost-user,opt_path=\(sockets[1]),opt_server=yes,opt_mac=\(Self.macs[1]),opt_settings="packed=on,host_mtu=9000";
                driver=vhost-user,opt_path=\(sockets[2]),opt_mac=\(Self.macs[2]),opt_settings="disable-modern=true,csum=off";
            """])
        let run = testRun()
        var options = TestpmdOptions(filePrefix: names.name("vud"), cores: .list("0,1"), memory: .noHuge(megabytes: 1024))
        options.noPCI = true
        options.vdevs = [.vhost(0, iface: sockets[0], queues: 2), .vhost(1, iface: sockets[1], queues: 2, client: true),
                         .vhost(2, iface: sockets[2], queues: 2)]
        options.arguments = ["--rxq=2", "--txq=2", "--nb-cores=1", "--total-num-mbufs=8192"]
        options.workDirectory = dir.path
        let pmd = PmdOutput(session: Dut(run: run).session, options: options, cleanup: .run(run))
        try await withTearDown(run) {
            // testpmd first: QEMU as a server waits for its client, and QEMU as a client needs the sockets.
            try await pmd.start()
            let kvm = try fixture.vm(run: run)
            let guest = try await kvm.start()
            for port in 0..<3 { try await pmd.waitForLink(port, timeout: .seconds(60)) }

            let ports = try await guest.portsInfo()
            #expect(ports.map(\.mac) == Self.macs, "\(ports)")
            let intf = try ports.map { try #require($0.interface) }
            for name in intf { _ = try await guest.exec(argv: ["ip", "link", "set", name, "up"], timeout: .seconds(10)) }
            var features: [String] = []
            for port in ports {
                let path = "/sys/bus/pci/devices/\(port.pci)/virtio*/features"
                features.append(try await guest.exec("cat \(path)", timeout: .seconds(10)).output.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            // Bits: 0 CSUM, 3 MTU, 15 MRG_RXBUF, 22 MQ, 32 VERSION_1, 34 RING_PACKED.
            #expect(!Self.feature(features[0], 15) && Self.feature(features[0], 22) && Self.feature(features[0], 32), "dev0 \(features[0])")
            #expect(Self.feature(features[1], 34) && Self.feature(features[1], 3), "dev1 \(features[1])")
            #expect(!Self.feature(features[2], 32) && !Self.feature(features[2], 0), "dev2 \(features[2])")
            let mtu = try await guest.exec(argv: ["cat", "/sys/class/net/\(intf[1])/mtu"], timeout: .seconds(10)).output
            #expect(mtu.trimmingCharacters(in: .whitespacesAndNewlines) == "9000")
            let rings = try await guest.exec(argv: ["ethtool", "-g", intf[0]], timeout: .seconds(10)).output
            #expect(rings.contains("RX:\t\t1024") || rings.contains("RX:\t1024"), "\(rings)")
            let channels = try await guest.exec(argv: ["ethtool", "-l", intf[0]], timeout: .seconds(10)).output
            #expect(channels.contains("Combined:\t2"), "\(channels)")

            // Multi-queue with MSI-X off (vectors=0): both RX queues of dev0 receive.
            _ = try await guest.exec(argv: ["ethtool", "-L", intf[0], "combined", "2"], timeout: .seconds(10))
            try await pmd.setForwardMode(.txonly)
            try await pmd.startForwarding()
            try await Task.sleep(for: .seconds(2))
            let sent = try await pmd.stopForwarding()
            let queues = try await guest.exec(argv: ["ethtool", "-S", intf[0]], timeout: .seconds(10)).output
            let perQueue = (0..<2).map { queue in
                TestpmdParser.lines(queues).first { $0.contains("rx_queue_\(queue)_packets:") }
                    .flatMap { UInt64(TestpmdParser.words($0).last ?? "") } ?? 0
            }
            #expect(perQueue.allSatisfy { $0 > 0 }, "per-queue RX in the guest: \(perQueue); testpmd sent \(sent.streams)")

            // The backend restarts: QEMU, the server of dev1, takes it back; the guest's carrier follows.
            await pmd.interrupt()
            try await waitForCarrier(guest, intf[1], false)
            try await pmd.start()
            try await pmd.waitForLink(1, timeout: .seconds(60))
            try await waitForCarrier(guest, intf[1], true)

            // QEMU killed and started again on the same sockets: every port comes back.
            await kvm.kill()
            try await pmd.waitForLink(1, .down, timeout: .seconds(30))
            let again = try await kvm.start()
            for port in 0..<3 { try await pmd.waitForLink(port, timeout: .seconds(60)) }
            #expect(try await again.portsInfo().map(\.mac) == Self.macs)
            await kvm.stop()
            await pmd.quit()
        }
        #expect(processes(mentioning: options.filePrefix).isEmpty)
        #expect(qemuProcesses(matching: dir.path).isEmpty)
    }

    /// Waits until the guest interface's carrier is `up` (polls sysfs; fails after 60 s).
    func waitForCarrier(_ guest: VirtDut, _ interface: String, _ up: Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        var last = ""
        while ContinuousClock.now < deadline {
            // carrier reads fail (EINVAL) while the interface is down: operstate tells both.
            last = try await guest.exec(argv: ["cat", "/sys/class/net/\(interface)/carrier"], timeout: .seconds(10)).output
            if last.trimmingCharacters(in: .whitespacesAndNewlines) == (up ? "1" : "0") { return }
            try await Task.sleep(for: .milliseconds(300))
        }
        Issue.record("carrier of \(interface) never became \(up ? 1 : 0) (last read '\(last)')")
    }
}
}
