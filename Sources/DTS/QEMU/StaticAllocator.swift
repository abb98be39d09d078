import Foundation
import Synchronization

/// A deterministic allocator: DTS's port bases (SSH forwards from 6000, VNC displays from 1,
/// telnet from 7000, migration from 8000), counted up per request, and MACs derived from the
/// VM name. It reserves nothing: it serves golden tests and `dts vm cmdline`, which only print.
public final class StaticAllocator: VMResourceAllocator, Sendable {
    private let next = Mutex((ssh: 6000, vnc: 1, serial: 7000, migration: 8000))
    private let runtimeRoot: String

    public let listenAddress: String
    public let hugepageMount: String?
    public let imageDirectory: String
    public let hostArchitecture: String
    public let onlineCPUs: [Int]?
    /// The files that count as executable (golden tests); `nil`: this machine's files.
    private let executables: Set<String>?

    /// - Parameters:
    ///   - runtimeRoot: VM runtime directories are `<runtimeRoot>/<vm>`.
    ///   - onlineCPUs: the host's online CPUs; `nil` (the default) does not hold `cpupin` to any host.
    ///   - executables: the paths that count as executable files; `nil` looks at this machine.
    public init(runtimeRoot: String, listenAddress: String = "127.0.0.1", hugepageMount: String? = "/dev/hugepages",
                imageDirectory: String = "/var/cache/dts/images", hostArchitecture: String = "x86_64",
                onlineCPUs: [Int]? = nil, executables: Set<String>? = nil) {
        self.runtimeRoot = runtimeRoot
        self.listenAddress = listenAddress
        self.hugepageMount = hugepageMount
        self.imageDirectory = imageDirectory
        self.hostArchitecture = hostArchitecture
        self.onlineCPUs = onlineCPUs
        self.executables = executables
    }

    public func isExecutable(path: String) -> Bool {
        executables.map { $0.contains(path) } ?? HostFacts.isExecutableFile(path)
    }

    /// The allocator of `dts vm cmdline` and `dts config check`: this host's hugetlbfs mount,
    /// image directory, architecture and files, so that both accept and refuse the same configs.
    /// `cpupin` is not held to this host's CPUs: a config written for a lab's DUT checks here.
    public static func forThisHost(runtimeRoot: String) -> StaticAllocator {
        StaticAllocator(runtimeRoot: runtimeRoot, hugepageMount: HostFacts.hugetlbfsMount(),
                        imageDirectory: HostFacts.imageDirectory, hostArchitecture: HostFacts.architecture)
    }

    public func runtimeDirectory(vm: String) -> String { "\(runtimeRoot)/\(vm)" }

    public var sharedDirectory: String { runtimeRoot }

    public func hostForwardPort(vm: String, guestPort: Int) throws -> Int {
        next.withLock { next in defer { next.ssh += 1 }; return next.ssh }
    }

    public func vncDisplay(vm: String) throws -> Int {
        next.withLock { next in defer { next.vnc += 1 }; return next.vnc }
    }

    public func serialPort(vm: String) throws -> Int {
        next.withLock { next in defer { next.serial += 1 }; return next.serial }
    }

    public func migrationPort(vm: String) throws -> Int {
        next.withLock { next in defer { next.migration += 1 }; return next.migration }
    }

    public func macAddress(vm: String, index: Int) -> String {
        MACAddress.derived(vm: vm, index: index)
    }
}

/// Locally administered MAC addresses derived from a VM name and NIC index.
public enum MACAddress {
    /// `52:54:00:xx:xx:xx` with the last three bytes from a hash of `vm` and `index` (stable
    /// across runs and hosts, distinct for distinct VMs with overwhelming likelihood).
    public static func derived(vm: String, index: Int, salt: String = "") -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in Array((salt + "/" + vm + "/" + String(index)).utf8) {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let bytes = [UInt8(truncatingIfNeeded: hash >> 16), UInt8(truncatingIfNeeded: hash >> 8), UInt8(truncatingIfNeeded: hash)]
        return "52:54:00:" + bytes.map { String(format: "%02x", $0) }.joined(separator: ":")
    }
}
