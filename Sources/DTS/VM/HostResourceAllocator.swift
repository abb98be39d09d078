import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Reserves real host resources for VMs so that concurrent dts processes never collide.
///
/// A TCP port (SSH forward, VNC display, telnet console, migration) is reserved by binding the
/// abstract Unix socket name `dts-port-<N>` and then checking that the port can be bound: the
/// name keeps other dts processes off it (any user's, in the same network namespace, like the
/// ports themselves), the bind check keeps off ports other programs hold. An abstract name lives
/// exactly as long as its socket: a killed run frees its ports, and nothing is ever left on disk.
/// Everything a VM reserved is freed by ``release(vm:)``.
public final class HostResourceAllocator: VMResourceAllocator, Sendable {
    /// Port ranges, as in DTS.
    public struct Ranges: Sendable {
        public var ssh = 6000...6999
        public var vncDisplay = 1...99
        public var serial = 7000...7999
        public var migration = 8000...8999
        public init() {}
    }

    public let listenAddress: String
    public let hugepageMount: String?
    public let imageDirectory: String
    public let hostArchitecture: String
    /// The run these resources belong to.
    public let run: RunDirectory

    private let ranges: Ranges
    /// The ports reserved per VM, with the sockets holding their names.
    private let held = Mutex<[String: [(port: Int, fd: Int32)]]>([:])

    public init(run: RunDirectory, listenAddress: String = "127.0.0.1", ranges: Ranges = Ranges(),
                hugepageMount: String? = HostFacts.hugetlbfsMount(), imageDirectory: String = HostFacts.imageDirectory,
                hostArchitecture: String = HostFacts.architecture) throws {
        self.run = run
        self.listenAddress = listenAddress
        self.ranges = ranges
        self.hugepageMount = hugepageMount
        self.imageDirectory = imageDirectory
        self.hostArchitecture = hostArchitecture
    }

    deinit {
        held.withLock { held in for reservations in held.values { for r in reservations { close(r.fd) } } }
    }

    public func runtimeDirectory(vm: String) -> String { run.vmPath(vm) }

    public var sharedDirectory: String { run.path }

    public func hostForwardPort(vm: String, guestPort: Int) throws -> Int { try reservePort(in: ranges.ssh, vm: vm, what: "SSH forward") }

    public func vncDisplay(vm: String) throws -> Int {
        let offset = 5900
        let port = try reservePort(in: (offset + ranges.vncDisplay.lowerBound)...(offset + ranges.vncDisplay.upperBound), vm: vm, what: "VNC display")
        return port - offset
    }

    public func serialPort(vm: String) throws -> Int { try reservePort(in: ranges.serial, vm: vm, what: "telnet console") }

    public func migrationPort(vm: String) throws -> Int { try reservePort(in: ranges.migration, vm: vm, what: "migration") }

    public func macAddress(vm: String, index: Int) -> String { MACAddress.derived(vm: vm, index: index, salt: run.id) }

    /// This machine's online CPUs now: `cpu cpupin=` uses those listed that are online.
    public var onlineCPUs: [Int]? { HostFacts.onlineCPUs() }

    /// Ports currently reserved for `vm`.
    public func ports(of vm: String) -> [Int] { held.withLock { $0[vm]?.map(\.port) ?? [] } }

    /// Frees everything reserved for `vm`. Idempotent.
    public func release(vm: String) {
        let reservations = held.withLock { $0.removeValue(forKey: vm) ?? [] }
        for r in reservations { close(r.fd) }
    }

    /// Frees a port that turned out to be unusable (QEMU could not bind it) and marks nothing.
    public func release(port: Int, vm: String) {
        held.withLock { held in
            guard let index = held[vm]?.firstIndex(where: { $0.port == port }) else { return }
            close(held[vm]![index].fd)
            held[vm]!.remove(at: index)
        }
    }

    private func reservePort(in range: ClosedRange<Int>, vm: String, what: String) throws -> Int {
        let count = range.count
        let start = Int.random(in: 0..<count)
        for step in 0..<count {
            let port = range.lowerBound + (start + step) % count
            guard let fd = Self.holdName(of: port) else { continue }
            guard Self.canBind(port: port, address: listenAddress) else { close(fd); continue }
            held.withLock { $0[vm, default: []].append((port, fd)) }
            return port
        }
        throw ResourceError("no free port for the \(what) of \(vm) in \(range.lowerBound)-\(range.upperBound)")
    }

    /// Binds the abstract Unix socket name that marks `port` as reserved by a dts process; returns
    /// the socket holding it, or `nil` if another process holds the name.
    static func holdName(of port: Int) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        // An abstract name: a NUL byte, then the name (no terminating NUL; the length ends it).
        let name = Array("dts-port-\(port)".utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            path[0] = 0
            for (index, byte) in name.enumerated() { path[index + 1] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + 1 + name.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 }
        }
        if !bound { close(fd); return nil }
        return fd
    }

    /// Whether a TCP port can be bound on `address` right now.
    public static func canBind(port: Int, address: String) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr(address == "" || address == "0.0.0.0" ? "0.0.0.0" : address)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
