@testable import DTS
import DTSTestSupport
import Foundation
import Testing

extension HostBackendTests {
/// The DPDK generator on a host loopback: a veth pair inside the tester's namespace, testpmd
/// sending on one end and counting on the other.
@Suite struct TrafficGeneratorTests {
    @Test func sendsAtDPDKSpeedAndCountsEveryFrameBack() async throws {
        try requirePrograms(["ip", "tc", "ethtool", "dpdk-testpmd", "/usr/bin/python3"])
        let names = BackendNames()
        let dir = try TemporaryDirectory("dts-gen")
        let dut = Dut(run: testRun())
        let run = dut.run
        let namespace = names.name("dtsg"), a = names.name("dtga"), b = names.name("dtgb")
        let tester = Tester(session: dut.session, namespace: namespace, workDirectory: dir.path, cleanup: .run(run))
        try await withTearDown(run) {
            try await tester.setUp(veth: VethSpec(hostName: names.name("dtgh"), namespaceName: names.name("dtgn")))
            try await tester.check(["ip", "link", "add", "name", a, "type", "veth", "peer", "name", b])
            for link in [a, b] {
                try await tester.check(["ip", "link", "set", link, "up"])
                _ = try await tester.exec(["ethtool", "-K", link, "tx", "off", "rx", "off"])
            }
            let frame = FrameSpec(ether: EthernetSpec(src: "02:00:00:00:00:01", dst: "02:00:00:00:00:02"),
                                  ip: IPv4Spec(src: "198.18.0.1", dst: "198.18.0.2"), l4: .udp(sport: 1024, dport: 1025))

            // The scapy sender's rate on the same link.
            let scapyCount = 2000
            let scapyStart = ContinuousClock.now
            try await tester.send(frame, count: scapyCount, on: a)
            let scapyPPS = Double(scapyCount) / (ContinuousClock.now - scapyStart).seconds

            let generator = TrafficGenerator(tester: tester, transmit: a, receive: b, cleanup: .run(run))
            try await generator.load(frame, frameSize: 64)
            let trial = try await generator.trial(duration: .seconds(2), ratePPS: nil)
            print("loopback: scapy \(Int(scapyPPS)) pps, DPDK generator \(Int(trial.sentPPS)) pps sent, \(trial.received) of \(trial.sent) frames back (testpmd counted \(trial.receivedByGenerator ?? 0)), ratio \(String(format: "%.1f", trial.sentPPS / scapyPPS))")
            #expect(trial.sent > 0)
            #expect(trial.received == trial.sent)
            #expect(trial.receivedByGenerator == trial.sent)   // testpmd's receiver, at line rate
            #expect(trial.sentPPS >= 10 * scapyPPS)

            // A fixed rate: tbf holds the generator near it (within 15 %), still without loss.
            let target = min(trial.sentPPS / 4, 50_000)
            let paced = try await generator.trial(duration: .seconds(2), ratePPS: target)
            print("loopback paced: asked \(Int(target)) pps, sent \(Int(paced.sentPPS)) pps, \(paced.received) of \(paced.sent) back (testpmd counted \(paced.receivedByGenerator ?? 0))")
            #expect(abs(paced.sentPPS - target) / target < 0.15)
            #expect(paced.received == paced.sent)
            #expect(Double(paced.receivedByGenerator ?? 0) >= 0.999 * Double(paced.sent))
            await generator.stop()
            #expect(processes(mentioning: "dtsgen-\(namespace)").isEmpty)
        }
        #expect(!namespaceExists(namespace))
    }
}
}
