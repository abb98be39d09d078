// Generator benchmark: on one host loopback (a veth pair inside a tester namespace), the scapy
// sender's rate against the DPDK generator's, and their ratio. Prints `generator_ratio=<x>`.
// scripts/bench-perf.sh (`make bench-perf`) runs it and adds the suites' 64-byte figures.
import DTS
import Foundation

@main
struct PerfBench {
    static func main() async throws {
        let run = Run()
        let dut = Dut(run: run)
        let suffix = String(getpid() % 100_000)
        let namespace = "dtsbench" + suffix, a = "dtbA" + suffix, b = "dtbB" + suffix
        let dir = try run.directory.path
        let tester = Tester(session: dut.session, namespace: namespace, workDirectory: dir, cleanup: .run(run))
        var failure: (any Error)?
        do {
            try await tester.setUp(veth: VethSpec(hostName: "dtbH" + suffix, namespaceName: "dtbN" + suffix))
            try await tester.addLoopback(a, b)
            let frame = FrameSpec(ether: EthernetSpec(src: "02:00:00:00:00:01", dst: "02:00:00:00:00:02"),
                                  ip: IPv4Spec(src: "198.18.0.1", dst: "198.18.0.2"), l4: .udp(sport: 1024, dport: 1025))
            let count = 3000
            let before = try await tester.counters(b)
            let start = ContinuousClock.now
            try await tester.send(frame, count: count, on: a)
            let scapySeconds = (ContinuousClock.now - start).seconds
            let scapyReceived = try await tester.counters(b).rxPackets - before.rxPackets
            let scapyPPS = Double(count) / scapySeconds
            print(String(format: "scapy sender:    %9.0f pps (%d frames in %.2f s, %d received)", scapyPPS, count, scapySeconds, scapyReceived))

            let generator = TrafficGenerator(tester: tester, transmit: a, receive: b, cleanup: .run(run))
            try await generator.load(frame, frameSize: 64)
            var rates: [Double] = []
            for round in 1...3 {
                let trial = try await generator.trial(duration: .seconds(3), ratePPS: nil)
                rates.append(trial.sentPPS)
                print(String(format: "DPDK generator:  %9.0f pps (round %d: %d sent, %d received, testpmd counted %d)",
                             trial.sentPPS, round, trial.sent, trial.received, trial.receivedByGenerator ?? 0))
            }
            await generator.stop()
            let dpdk = rates.sorted()[rates.count / 2]
            print(String(format: "generator_ratio=%.1f dpdk_pps=%.0f scapy_pps=%.0f", dpdk / scapyPPS, dpdk, scapyPPS))
        } catch {
            failure = error
        }
        await run.tearDown()
        if let failure { throw failure }
    }
}
