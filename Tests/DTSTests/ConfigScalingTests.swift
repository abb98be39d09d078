@testable import DTS
import DTSTestSupport
import Foundation
import Testing

/// Reading and checking a config takes time linear in its size. Duplicate checks were linear
/// scans (160,000 keys took 37.5 s).
///
/// A ratio of times of the same machine, not an absolute time: the CPU time of the checking
/// thread (not wall time, which other load stretches unevenly), the least of three runs. Eight
/// times the input takes about 8 times as long when linear and 64 times when quadratic; the
/// bound, 24, sits far from both, so a loaded machine does not make the test flaky.
@Suite(.serialized) struct ConfigScalingTests {
    /// The shapes of input that grew quadratically, each with a base count that takes some tens
    /// of milliseconds to check.
    static let shapes: [(String, Int, @Sendable (Int) -> String)] = [
        ("keys of one section", 4000, { n in "[suite]\n" + (0..<n).map { "k\($0) = v\n" }.joined() }),
        ("unknown parameters of a VM", 1000, { n in "[vm0]\n" + (0..<n).map { "k\($0) = v=1;\n" }.joined() }),
        ("sections", 250, { n in (0..<n).map { "[vm\($0)]\ncpu = number=1;\n" }.joined() }),
        ("options of one entry", 2000, { n in "[vm0]\ndevice = driver=vhost-user," + (0..<n).map { "o\($0)=1" }.joined(separator: ",") + "\n" }),
        ("entries of one parameter", 1000, { n in "[vm0]\ndevice =\n" + (0..<n).map { "    driver=vhost-user,opt_path=/s\($0);\n" }.joined() }),
        ("nics and backends", 500, { n in
            "[vm0]\nnet =\n" + (0..<n).map { "    type=nic,opt_vlan=\($0 + 1);\n    type=user,opt_vlan=\($0 + 1);\n" }.joined() }),
        ("properties of opt_settings", 2000, { n in
            "[vm0]\nmem = size=256;\ndevice = driver=vhost-user,opt_path=/s,opt_settings=\"" + (0..<n).map { "p\($0)=1" }.joined(separator: ",") + "\";\n" }),
    ]

    static func secondsToCheck(_ text: String, in dir: String) throws -> Double {
        let path = "\(dir)/s.cfg"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        var best = Double.infinity
        for _ in 0..<3 {
            let start = threadCPUSeconds()
            _ = ConfigChecker.check(path: path)
            best = min(best, threadCPUSeconds() - start)
        }
        return best
    }

    @Test(arguments: shapes.indices)
    func eightTimesTheInputTakesFarLessThanSixtyFourTimesTheTime(_ index: Int) async throws {
        let (name, base, make) = Self.shapes[index]
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dts-scaling-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sizes = [base, 8 * base]
        // Seconds of computing: on a thread of its own, not one of the cooperative pool's two.
        let times = try await offPool { try sizes.map { try Self.secondsToCheck(make($0), in: dir) } }
        let ratio = times[1] / times[0]
        #expect(ratio < 24, "\(name): \(zip(sizes, times).map { "\($0.0): \(String(format: "%.3f", $0.1)) s" }.joined(separator: ", ")); ×8 input took ×\(String(format: "%.1f", ratio)) time")
    }
}

/// The CPU time the calling thread has used, in seconds.
private func threadCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}
