@testable import DTS
import DTSProcess
import DTSTestSupport
import Foundation
import Testing

/// Host-side backends on the real machine (namespaces, OVS-DPDK, testpmd, QEMU). Serialized with
/// every other test that uses host-wide resources (hugepages, cores, host interfaces).
typealias HostBackendTests = RealGuestTests

/// Names unique to this test process (interface names stay within 15 characters).
struct BackendNames {
    let suffix: String
    init() { suffix = String(getpid() % 100_000) }
    func name(_ prefix: String) -> String { prefix + suffix }
}

/// Runs `body`, then tears `run` down (every cleanup registered there, then its directory), whether `body` threw or not.
func withTearDown(_ run: Run, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch {
        await run.tearDown()
        throw error
    }
    await run.tearDown()
}

/// Programs whose command line mentions `text`.
func processes(mentioning text: String) -> [Int32] {
    processes { argv in argv.contains { $0.contains(text) } }
}

func nrHugepages() -> Int {
    let text = (try? String(contentsOfFile: "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", encoding: .utf8)) ?? ""
    return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
}

func isMounted(_ path: String) -> Bool {
    let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
    return mounts.split(separator: "\n").contains { $0.split(separator: " ").dropFirst().first.map(String.init) == path }
}

func namespaceExists(_ name: String) -> Bool {
    FileManager.default.fileExists(atPath: "/var/run/netns/" + name)
}

func linkExists(_ name: String) -> Bool {
    FileManager.default.fileExists(atPath: "/sys/class/net/" + name)
}

/// The receive packet counter of a guest interface.
func guestRxPackets(_ guest: VirtDut, _ nic: String) async throws -> UInt64 {
    let text = try await guest.exec(argv: ["cat", "/sys/class/net/\(nic)/statistics/rx_packets"], timeout: .seconds(10)).output
    return try #require(UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)), "rx_packets of \(nic): \(text)")
}

/// The kernel name of the guest's test NIC with `mac` (``VirtDut/portsInfo()``).
func guestInterface(_ guest: VirtDut, mac: String) async throws -> String? {
    try await guest.portsInfo().first { $0.mac == mac.lowercased() }?.interface
}
