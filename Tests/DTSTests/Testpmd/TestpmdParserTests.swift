@testable import DTS
import DTSSession
import Foundation
import Testing

/// testpmd 22.11 output captured on this machine (a `net_vhost` testpmd and a `net_virtio_user`
/// testpmd in loopback, `Tests/DTSTests/Golden/testpmd/`), asynchronous `VHOST_CONFIG:` and
/// `Port 0: ... event` lines left where testpmd printed them.
enum TestpmdFixture {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Golden/testpmd")

    static func text(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
    }
}

@Suite struct TestpmdParserTests {
    @Test func portInfoOfAConnectedVhostPortAmidAsyncLines() throws {
        let text = try TestpmdFixture.text("vhost-port-info-up.txt")
        #expect(text.contains("VHOST_CONFIG"), "the fixture keeps testpmd's interleaved vhost log")
        let infos = TestpmdParser.portInfo(text)
        let info = try #require(infos.first)
        #expect(infos.count == 1)
        #expect(info.port == 0)
        #expect(info.mac == "56:48:4F:53:54:00")
        #expect(info.deviceName == "net_vhost0" && info.driverName == "net_vhost")
        #expect(info.devargs == "iface=/tmp/pmdcap/vhost-net,queues=1,tso=1")
        #expect(info.linkStatus == .up)
        #expect(info.linkSpeed == "10 Gbps")
        #expect(info.mtu == 1500)
        #expect(info.promiscuous == true)
        #expect(info.rxQueues == 1 && info.txQueues == 1)
        #expect(info.maxRxPacketLength == 4_294_967_295)
        // Indented lines (VLAN offload details) and async lines are not fields.
        #expect(info.fields.keys.allSatisfy { !$0.hasPrefix(" ") && !$0.hasPrefix("VHOST_CONFIG") && !$0.hasPrefix("Port ") })
    }

    @Test func portInfoOfADisconnectedMultiqueuePortAndOfVirtioUser() throws {
        let down = try #require(TestpmdParser.portInfo(try TestpmdFixture.text("vhost-port-info-down-mq.txt")).first)
        #expect(down.linkStatus == .down)
        #expect(down.rxQueues == 2 && down.txQueues == 2)
        let all = TestpmdParser.portInfo(try TestpmdFixture.text("vhost-port-info-all.txt"))
        #expect(all.map(\.port) == [0])
        let user = try #require(TestpmdParser.portInfo(try TestpmdFixture.text("virtio-user-port-info.txt")).first)
        #expect(user.driverName == "net_virtio_user" && user.mac == "00:01:02:03:04:05")
        #expect(user.linkStatus == .up && user.linkSpeed == "Unknown" && user.promiscuous == false)
        #expect(user.maxRxPacketLength == 9728)
    }

    @Test func portStatsWithThroughput() throws {
        let all = TestpmdParser.portStats(try TestpmdFixture.text("vhost-port-stats-all.txt"))
        let port = try #require(all[0])
        #expect(all.count == 1)
        #expect(port.counters.rxPackets == 13_726_822 && port.counters.rxBytes == 21_468_749_608)
        #expect(port.counters.txPackets == 0 && port.counters.rxDropped == 0 && port.counters.rxErrors == 0)
        #expect(port.counters.raw["RX-nombuf"] == 0)
        #expect(port.rxPPS == 1_994_147 && port.rxBPS == 24_950_775_800 && port.txPPS == 0 && port.txBPS == 0)
        let user = try #require(TestpmdParser.portStats(try TestpmdFixture.text("virtio-user-port-stats.txt"))[0])
        #expect(user.counters.txPackets == 13_726_907 && user.counters.txBytes == 21_468_882_548)
        #expect(TestpmdParser.portStats("testpmd> ").isEmpty)
    }

    @Test func xstatsOfBothEndsAndTheirDisconnectedError() throws {
        let vhost = try #require(TestpmdParser.xstats(try TestpmdFixture.text("vhost-xstats-tso.txt")))
        #expect(vhost.port == 0)
        #expect(vhost["rx_q0_size_1519_max_packets"] == 13_726_822)
        #expect(vhost["tx_q0_size_1519_max_packets"] == 0)
        #expect(vhost.names.first == "rx_good_packets" && vhost.names.count == vhost.values.count)
        #expect(vhost.sum("rx", "size_1519_max_packets") == 13_726_822)
        #expect(vhost.sum("rx", "good_packets") == 13_726_822, "rx_q0_good_packets only, not rx_good_packets")
        let user = try #require(TestpmdParser.xstats(try TestpmdFixture.text("virtio-user-xstats.txt")))
        #expect(user["tx_q0_size_1519_max_packets"] == 13_726_907)
        // After the peer left, testpmd cannot read the vhost port's xstats.
        #expect(TestpmdParser.xstats(try TestpmdFixture.text("vhost-xstats-disconnected.txt")) == nil)
    }

    @Test func forwardStatsPerPortAndPerStream() throws {
        let single = TestpmdParser.forwardStats(try TestpmdFixture.text("vhost-stop-rxonly.txt"))
        #expect(single.ports[0] == .init(rxPackets: 13_726_652, rxDropped: 0, txPackets: 0, txDropped: 0))
        #expect(single.streams.isEmpty)
        let mq = TestpmdParser.forwardStats(try TestpmdFixture.text("vhost-stop-mq.txt"))
        #expect(mq.ports[0] == .init(rxPackets: 68_422_176, rxDropped: 0, txPackets: 512, txDropped: 68_421_664))
        #expect(mq.streams.map { [$0.rxPort, $0.rxQueue, $0.txPort, $0.txQueue] } == [[0, 0, 0, 0], [0, 1, 0, 1]])
        #expect(mq.streams.map(\.rxPackets) == [34_211_008, 34_211_168])
        #expect(mq.streams.map(\.txDropped) == [34_210_752, 34_210_912])
    }

    @Test func startupPortsAndRefusals() throws {
        #expect(TestpmdParser.startupPorts(try TestpmdFixture.text("vhost-startup.txt")) == [0: "56:48:4F:53:54:00"])
        #expect(TestpmdParser.startupPorts(try TestpmdFixture.text("virtio-user-startup.txt")) == [0: "00:01:02:03:04:05"])
        #expect(TestpmdParser.refusal(try TestpmdFixture.text("refused-set-fwd.txt")) == "Bad arguments")
        #expect(TestpmdParser.refusal(try TestpmdFixture.text("refused-port-info.txt")) == "Invalid port 7")
        #expect(TestpmdParser.refusal(try TestpmdFixture.text("vhost-port-info-up.txt")) == nil)
    }

    @Test func argvAndOptionProblems() {
        var options = TestpmdOptions(filePrefix: "vhost-user", cores: .list("0,1"), memory: .noHuge(megabytes: 1024))
        options.noPCI = true
        options.vdevs = [.vhost(0, iface: "/run/x/vhost-net0", queues: 1, [.init("tso", "1")]),
                         .vhost(1, iface: "/run/x/vhost-net1", queues: 2, client: true)]
        options.arguments = ["--nb-cores=1", "--txd=1024"]
        #expect(options.argv == ["dpdk-testpmd", "-l", "0,1", "--no-huge", "-m", "1024", "--no-pci", "--file-prefix=vhost-user",
                                 "--vdev", "net_vhost0,iface=/run/x/vhost-net0,queues=1,tso=1",
                                 "--vdev", "net_vhost1,iface=/run/x/vhost-net1,queues=2,client=1",
                                 "--", "-i", "--nb-cores=1", "--txd=1024"])
        #expect(options.problem == nil)
        #expect(PmdOutput(session: LocalSession(), options: options, cleanup: .none).serverSockets == ["/run/x/vhost-net0"])

        var guest = TestpmdOptions(filePrefix: "virtio", cores: .lcores("0@0,1@0"), memory: .hugepages(megabytes: 128))
        guest.allowedDevices = ["0000:00:04.0,vectorized=1"]
        #expect(guest.argv == ["dpdk-testpmd", "--lcores", "0@0,1@0", "-m", "128", "--file-prefix=virtio",
                               "-a", "0000:00:04.0,vectorized=1", "--", "-i"])
        #expect(Vdev.virtioUser(1, path: "/s", mac: "00:01:02:03:04:05", server: true).description
                == "net_virtio_user1,mac=00:01:02:03:04:05,path=/s,queues=1,server=1")
        #expect(Vdev.null(0, size: 1518).description == "net_null0,size=1518")

        var bad = options
        bad.filePrefix = "a/b"
        #expect(bad.problem?.contains("file prefix") == true)
        bad = options
        bad.vdevs = [.vhost(0, iface: "/tmp/a,b")]
        #expect(bad.problem?.contains("holds ','") == true)
        bad = options
        bad.allowedDevices = ["0000:00:04.0"]
        #expect(bad.problem?.contains("--no-pci") == true)
    }

    @Test func rates() {
        let rate = TestpmdRate(seconds: 2, rxPackets: 3_000_000, txPackets: 1000, rxBytes: 192_000_000, txBytes: 0)
        #expect(rate.rxPPS == 1_500_000 && rate.rxMpps == 1.5 && rate.txPPS == 500)
        #expect(rate.rxBitsPerSecond == 768_000_000)
        #expect(TestpmdRate(seconds: 0, rxPackets: 5, txPackets: 0, rxBytes: 0, txBytes: 0).rxPPS == 0)
    }
}
