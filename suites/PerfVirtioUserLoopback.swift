import DTS
import Foundation

/// `perf_virtio_user_loopback`: vhost/virtio-user loopback throughput on the host, DTS's suite
/// of the same name. One `dpdk-testpmd` serves a `net_vhost` port, another drives a
/// `net_virtio_user` port on the same socket; no VM, so the figures are real DPDK vhost
/// throughput even where guests run under TCG. The vhost side sends (`set txpkts N`,
/// `start tx_first 32`), both sides forward in `mac` mode, and the vhost port's receive rate over
/// `test_duration` is the throughput of one virtio path (split or packed ring, mergeable, in-order,
/// vectorized).
///
/// Adapted to a 2-core host (DTS asked for 4 cores, `1S/4C/1T`, two per testpmd): the vhost
/// testpmd runs its main lcore on CPU 0 and forwards on CPU 1 (`-l 0,1`), the virtio-user one
/// the other way round (`--lcores 0@1,1@0`); both use `--no-huge -m 1024` (DPDK shares that
/// memory with the vhost side through memfd), so no hugepages are reserved. A vectorized path the
/// CPU or DPDK cannot run is SKIPPED with the reason.
///
/// Settings: `conf/perf_virtio_user_loopback.cfg`, DTS's performance keys
/// (see docs/writing-suites.md, "Performance cases").
final class PerfVirtioUserLoopback: TestSuite {
    static let name = "perf_virtio_user_loopback"

    /// One virtio path: its `expected_throughput` key, the virtio-user vdev arguments and testpmd
    /// arguments, as DTS's cases give them.
    struct Path: Sendable {
        var key: String
        var vdev: [(String, String)]
        var arguments: [String] = []
        /// The Rx path DPDK must report for a vectorized case, else it is skipped.
        var vectorized: String?
    }

    static let paths: [String: Path] = [
        "test_perf_loopback_packed_ring_inorder_mergeable":
            Path(key: "packed_ring_inorder_mergeable", vdev: [("in_order", "1"), ("packed_vq", "1"), ("mrg_rxbuf", "1")]),
        "test_perf_loopback_packed_ring_inorder_non_mergeable":
            Path(key: "packed_ring_inorder_non-mergeable", vdev: [("in_order", "1"), ("packed_vq", "1"), ("mrg_rxbuf", "0")]),
        "test_perf_loopback_packed_ring_mergeable":
            Path(key: "packed_ring_mergeable", vdev: [("in_order", "0"), ("packed_vq", "1"), ("mrg_rxbuf", "1")]),
        "test_perf_loopback_packed_ring_non_mergeable":
            Path(key: "packed_ring_non-mergeable", vdev: [("in_order", "0"), ("packed_vq", "1"), ("mrg_rxbuf", "0")]),
        "test_perf_loopback_split_ring_inorder_mergeable":
            Path(key: "split_ring_inorder_mergeable", vdev: [("packed_vq", "0"), ("in_order", "1"), ("mrg_rxbuf", "1")]),
        "test_perf_loopback_split_ring_inorder_non_mergeable":
            Path(key: "split_ring_inorder_non-mergeable", vdev: [("packed_vq", "0"), ("in_order", "1"), ("mrg_rxbuf", "0")]),
        "test_perf_loopback_split_ring_mergeable":
            Path(key: "split_ring_mergeable", vdev: [("packed_vq", "0"), ("in_order", "0"), ("mrg_rxbuf", "1")]),
        "test_perf_loopback_split_ring_non_mergeable":
            Path(key: "split_ring_non-mergeable", vdev: [("packed_vq", "0"), ("in_order", "0"), ("mrg_rxbuf", "0")],
                 arguments: ["--tx-offloads=0x0"]),
        "test_perf_loopback_split_ring_vector_rx":
            Path(key: "split_ring_vector_rx", vdev: [("packed_vq", "0"), ("in_order", "0"), ("mrg_rxbuf", "0"), ("vectorized", "1")],
                 vectorized: "using vectorized Rx path"),
        "test_perf_loopback_packed_ring_vectorized_path":
            Path(key: "packed_ring_vectorized_path", vdev: [("packed_vq", "1"), ("in_order", "1"), ("mrg_rxbuf", "0"), ("vectorized", "1")],
                 vectorized: "using packed ring vectorized Rx path"),
    ]

    // DTS's order.
    static let cases: [TestCase<PerfVirtioUserLoopback>] = [
        "test_perf_loopback_packed_ring_inorder_mergeable", "test_perf_loopback_packed_ring_inorder_non_mergeable",
        "test_perf_loopback_packed_ring_mergeable", "test_perf_loopback_packed_ring_non_mergeable",
        "test_perf_loopback_split_ring_inorder_mergeable", "test_perf_loopback_split_ring_inorder_non_mergeable",
        "test_perf_loopback_split_ring_mergeable", "test_perf_loopback_split_ring_non_mergeable",
        "test_perf_loopback_split_ring_vector_rx", "test_perf_loopback_packed_ring_vectorized_path",
    ].map { name in .performance(name) { try await $0.runLoopback(paths[name]!) } }

    static var defaultCaseTimeout: Duration { .seconds(900) }

    let context: TestContext
    private var workDirectory = ""
    private var vhost: PmdOutput?
    private var virtio: PmdOutput?

    init(context: TestContext) {
        self.context = context
    }

    func setUpAll() async throws {
        let dut = context.dut
        let made = try await dut.exec(argv: ["mktemp", "-d", "/tmp/dts-vul-XXXXXX"], timeout: .seconds(10))
        try verify(made.succeeded, "mktemp -d: \(made.errorOutput)")
        let dir = made.output.trimmingCharacters(in: .whitespacesAndNewlines)
        workDirectory = dir
        await context.run.register("perf_virtio_user_loopback directory \(dir)") { [dut] in
            _ = try? await dut.exec(argv: ["rm", "-rf", dir], timeout: .seconds(20))
        }
        let which = try await dut.exec(argv: ["sh", "-c", "command -v dpdk-testpmd"], timeout: .seconds(10))
        if !which.succeeded { try skip("dpdk-testpmd is not installed on the DUT (Debian: apt-get install dpdk-dev)") }
        _ = try context.perfConfig()   // a config error blocks every case before anything starts
    }

    func tearDown() async throws {
        await virtio?.quit()
        await vhost?.quit()
        virtio = nil
        vhost = nil
    }

    /// The CPU flags DPDK's AVX-512 virtio paths need, missing from the DUT's /proc/cpuinfo.
    private func missingAVX512() async throws -> [String] {
        let flags = try await context.dut.exec(argv: ["grep", "-m1", "^flags", "/proc/cpuinfo"], timeout: .seconds(10)).output
        let have = Set(flags.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init))
        return ["avx512f", "avx512bw", "avx512vl"].filter { !have.contains($0) }
    }

    func runLoopback(_ path: Path) async throws {
        let perf = try context.perfConfig()
        if path.key == "packed_ring_vectorized_path" {
            let missing = try await missingAVX512()
            if !missing.isEmpty {
                try skip("the packed ring vectorized path needs AVX-512; this CPU lacks \(missing.joined(separator: ", ")) (/proc/cpuinfo)")
            }
        }
        var measured: [ThroughputMeasurement] = []
        for (descriptors, sizes) in Dictionary(grouping: perf.cases, by: \.descriptors).sorted(by: { $0.key < $1.key }) {
            try await startTestpmds(path, descriptors: descriptors)
            for (frameSize, _) in sizes {
                let mpps = try await measure(frameSize: frameSize, seconds: perf.testDuration)
                try verify(mpps > 0, "\(path.key): the vhost port received nothing with \(frameSize)-byte frames")
                context.logger.info("\(path.key): \(frameSize) B, \(descriptors) descriptors: \(String(format: "%.3f", mpps)) Mpps")
                measured.append(ThroughputMeasurement(frameSize: frameSize, descriptors: descriptors, mpps: mpps))
            }
            try await tearDown()
        }
        // test_parameters order in the table.
        let order = perf.cases.map { "\($0.frameSize)/\($0.descriptors)" }
        measured.sort { order.firstIndex(of: "\($0.frameSize)/\($0.descriptors)")! < order.firstIndex(of: "\($1.frameSize)/\($1.descriptors)")! }
        try context.recordThroughput(path: path.key, measured)
    }

    private func startTestpmds(_ path: Path, descriptors: Int) async throws {
        let socket = workDirectory + "/vhost-net"
        let queues = ["--nb-cores=1", "--rxq=1", "--txq=1", "--txd=\(descriptors)", "--rxd=\(descriptors)"]
        var host = TestpmdOptions(filePrefix: "dtsvul-vhost", cores: .list("0,1"), memory: .noHuge(megabytes: 1024))
        host.noPCI = true
        host.workDirectory = workDirectory
        host.vdevs = [.vhost(0, iface: socket, queues: 1)]
        host.arguments = queues
        let vhost = PmdOutput(session: context.dut.session, options: host, cleanup: .run(context.run))
        self.vhost = vhost
        try await vhost.start()
        try await vhost.setForwardMode(.mac)

        var user = TestpmdOptions(filePrefix: "dtsvul-virtio", cores: .lcores("0@1,1@0"), memory: .noHuge(megabytes: 1024))
        user.noPCI = true
        user.workDirectory = workDirectory
        user.vdevs = [.virtioUser(0, path: socket, mac: "00:01:02:03:04:05", queues: 1, path.vdev.map { Vdev.Argument($0.0, $0.1) })]
        user.arguments = path.arguments + queues
        if path.vectorized != nil {
            user.extraEAL = ["--force-max-simd-bitwidth=512", "--log-level=pmd.net.virtio.init:debug"]
        }
        let virtio = PmdOutput(session: context.dut.session, options: user, cleanup: .run(context.run))
        self.virtio = virtio
        let startup = try await virtio.start()
        if let expected = path.vectorized, !startup.contains(expected) {
            let reason = startup.split(separator: "\n").first { $0.contains("disabled") && $0.contains("vectorized") }
                .map { String($0).trimmingCharacters(in: .whitespaces) } ?? "DPDK did not report '\(expected)'"
            try skip("\(path.key): DPDK cannot run the vectorized path here: \(reason)")
        }
        try await virtio.setForwardMode(.mac)
        try await virtio.startForwarding()
        try await vhost.waitForLink(0, timeout: .seconds(30))
    }

    /// The vhost port's receive rate with `frameSize`-byte frames in the loop, Mpps: one second
    /// to settle, then counters over `seconds`.
    private func measure(frameSize: Int, seconds: Double) async throws -> Double {
        guard let vhost else { return 0 }
        try await vhost.executeChecked("set txpkts \(frameSize)")
        try await vhost.startForwarding(txFirst: 32)
        try await Task.sleep(for: .seconds(1))
        let rates = try await vhost.measureRates([0], over: .milliseconds(Int(seconds * 1000)))
        _ = try await vhost.stopForwarding()
        return rates[0]?.rxMpps ?? 0
    }
}
