import Foundation

/// A traffic source at DPDK speed in the tester: scapy builds the frame once into a pcap, and
/// `dpdk-testpmd` in the tester's namespace replays it in a loop (`net_pcap`, `infinite_rx=1`)
/// out of an `af_packet` port on the tester's interface, forwarding (`io`) whatever comes back on
/// the receive port to the pcap port, which drops it.
///
/// Counting: *sent* is the kernel's transmit counter of the transmit interface (what really left,
/// after any rate limit); *received* is the kernel's receive counter of the receive interface
/// (exact at any rate), and testpmd's count of the receive port is reported beside it (its
/// af_packet ring can miss a few frames under a paced, bursty load, which are not the path's loss). A trial ends by closing the transmit interface's egress (a `blackhole` qdisc) and
/// letting frames in flight arrive for a moment before forwarding stops, so nothing in flight
/// counts as lost. A fixed rate is a `tbf` qdisc on the transmit interface (the af_packet port
/// then goes through the qdisc: `qdisc_bypass=0`); line rate is no qdisc.
///
/// ```swift
/// let generator = TrafficGenerator(tester: tester, transmit: "vu1", cleanup: .run(context.run))
/// try await generator.load(frame, frameSize: 64)          // pcap + testpmd
/// let trial = try await generator.trial(duration: .seconds(2), ratePPS: nil)
/// let search = try await ZeroLossSearch(tolerancePercent: 0).run { try await generator.trial(duration: .seconds(2), ratePPS: $0) }
/// await generator.stop()
/// ```
public actor TrafficGenerator {
    /// The tester whose namespace it runs in.
    public nonisolated let tester: Tester
    /// The interface frames leave from, in the namespace.
    public nonisolated let transmit: String
    /// The interface frames come back on (the transmit one when `nil` was given).
    public nonisolated let receive: String
    /// testpmd's lcores (main + one forwarding lcore).
    public nonisolated let cores: TestpmdCores
    private let cleanup: CleanupHook
    private var pmd: PmdOutput?
    private var loaded: (frameSize: Int, length: Int)?
    private var shaped = false
    private var registered = false

    /// How long frames in flight get to arrive after the source closes.
    public static let drain: Duration = .milliseconds(500)

    /// A generator on `transmit` (and `receive`, when frames come back elsewhere) in `tester`'s
    /// namespace. Nothing runs until ``load(_:frameSize:)``; `cleanup` gets ``stop()``.
    public init(tester: Tester, transmit: String, receive: String? = nil, cores: TestpmdCores = .list("0,1"), cleanup: CleanupHook) {
        self.tester = tester
        self.transmit = transmit
        self.receive = receive ?? transmit
        self.cores = cores
        self.cleanup = cleanup
    }

    /// The frame length in the pcap (without CRC) and the frame size loaded, if any.
    public var frame: (frameSize: Int, length: Int)? { loaded }

    /// testpmd's port of the receive interface (1, or 2 when it differs from the transmit one).
    var receivePort: Int { receive == transmit ? 1 : 2 }

    /// Writes the pcap of `frame` at `frameSize` bytes and (re)starts testpmd on it.
    public func load(_ frame: FrameSpec, frameSize: Int) async throws {
        if !registered {
            registered = true
            await cleanup.register("traffic generator on \(tester.namespace)/\(transmit)") { [self] in await self.stop() }
        }
        await stopPMD()
        let pcap = tester.directory + "/generator-\(frameSize).pcap"
        let length = try await tester.writePcap(frame, frameSize: frameSize, to: pcap)
        var options = TestpmdOptions(filePrefix: "dtsgen-\(tester.namespace)", cores: cores, memory: .noHuge(megabytes: 1024))
        options.launcher = tester.argv([], on: .namespace)
        options.noPCI = true
        options.workDirectory = tester.directory
        // Frames the kernel itself sends (IPv6 neighbour discovery, MLD) would count as sent and received.
        for link in Set([transmit, receive]) {
            _ = try await tester.exec(["sysctl", "-q", "-w", "net.ipv6.conf.\(link).disable_ipv6=1"])
        }
        // Rings of 4096 frames (DPDK's default is 512), so the receiver keeps up with bursts.
        let ring: [Vdev.Argument] = [.init("blocksz", "4096"), .init("framesz", "2048"), .init("framecnt", "4096")]
        options.vdevs = [Vdev("net_pcap0", [.init("rx_pcap", pcap), .init("infinite_rx", "1")]),
                         Vdev("net_af_packet1", [.init("iface", transmit), .init("qdisc_bypass", "0")] + ring)]
        if receive != transmit { options.vdevs.append(Vdev("net_af_packet2", [.init("iface", receive)] + ring)) }
        options.arguments = ["--port-topology=chained", "--nb-cores=1", "--forward-mode=io", "--no-lsc-interrupt",
                             "--max-pkt-len=\(max(frameSize, 1518))"]
        let pmd = PmdOutput(session: tester.session, options: options, cleanup: cleanup)
        self.pmd = pmd
        try await pmd.start()
        loaded = (frameSize, length)
    }

    /// Sends for `duration` at `ratePPS` packets per second (`nil`: line rate) and counts.
    public func trial(duration: Duration, ratePPS: Double?) async throws -> GeneratorTrial {
        guard let pmd, let loaded else { throw BackendError(component: "traffic generator", step: "trial", detail: "no frame loaded") }
        if let rate = ratePPS {
            // tbf counts the frame as the kernel sees it (no CRC); the bucket holds 32 frames.
            let bits = max(Int((rate * Double(loaded.length) * 8).rounded()), 8)
            try await shape(["tbf", "rate", "\(bits)bit", "burst", String(max(loaded.length * 32, 3200)), "latency", "20ms"])
        } else {
            try await shape(nil)
        }
        try await pmd.clearStatistics()
        let before = try await tester.counters(transmit), receivedBefore = try await tester.counters(receive)
        let start = ContinuousClock.now
        try await pmd.startForwarding()
        try await Task.sleep(for: duration)
        try await shape(["blackhole"])
        let seconds = (ContinuousClock.now - start).seconds
        try await Task.sleep(for: Self.drain)
        _ = try await pmd.stopForwarding()
        let after = try await tester.counters(transmit), receivedAfter = try await tester.counters(receive)
        let stats = try await pmd.portStats(receivePort)
        try await shape(nil)
        return GeneratorTrial(requestedPPS: ratePPS, sent: after.txPackets &- before.txPackets,
                              received: receivedAfter.rxPackets &- receivedBefore.rxPackets, seconds: seconds,
                              receivedByGenerator: stats.counters.rxPackets)
    }

    /// RFC 2544 zero-loss throughput of the loaded frame: ``ZeroLossSearch`` with one trial of
    /// `duration` per step.
    public func zeroLossThroughput(duration: Duration, search: ZeroLossSearch = ZeroLossSearch()) async throws -> ZeroLossSearch.Result {
        try await search.run { rate in try await self.trial(duration: duration, ratePPS: rate) }
    }

    /// Replaces the transmit interface's root qdisc (`nil`: removes it, back to the default).
    private func shape(_ qdisc: [String]?) async throws {
        if let qdisc {
            try await tester.check(["tc", "qdisc", "replace", "dev", transmit, "root"] + qdisc)
            shaped = true
        } else if shaped {
            _ = try await tester.exec(["tc", "qdisc", "del", "dev", transmit, "root"])
            shaped = false
        }
    }

    private func stopPMD() async {
        await pmd?.quit()
        pmd = nil
        loaded = nil
    }

    /// Stops testpmd and removes any qdisc it left. Idempotent.
    public func stop() async {
        await stopPMD()
        if shaped {
            _ = try? await tester.exec(["tc", "qdisc", "del", "dev", transmit, "root"])
            shaped = false
        }
    }
}
