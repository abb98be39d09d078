/// Host resources and facts a VM's command line depends on.
///
/// The command-line builder is pure: everything it would otherwise take from the host (ports,
/// VNC displays, MAC addresses, directories) comes from this protocol. Tests inject a fixed
/// allocator; `dts` injects one that reserves real resources so that concurrent runs never collide.
public protocol VMResourceAllocator: AnyObject, Sendable {
    /// A private directory for this VM's sockets, pid file and logs.
    func runtimeDirectory(vm: String) -> String
    /// The run's directory on the VM's host, which suites and their backends share: a relative
    /// vhost-user `opt_path` is resolved against it (DTS used the DUT's base directory).
    var sharedDirectory: String { get }
    /// A free host port for a user-network forward to `guestPort`.
    func hostForwardPort(vm: String, guestPort: Int) throws -> Int
    /// The address forwarded ports and telnet consoles listen on (the DUT's address).
    var listenAddress: String { get }
    /// A free VNC display number.
    func vncDisplay(vm: String) throws -> Int
    /// A free TCP port for a telnet serial console.
    func serialPort(vm: String) throws -> Int
    /// A free TCP port for incoming migration.
    func migrationPort(vm: String) throws -> Int
    /// A unique MAC address for the VM's `index`-th NIC that has none configured.
    func macAddress(vm: String, index: Int) -> String
    /// The hugetlbfs mount to back guest memory with, if any.
    var hugepageMount: String? { get }
    /// Where built guest images live (`kernel = guest_image=NAME` looks there).
    var imageDirectory: String { get }
    /// The host's architecture, used when no `qemu path=` names another emulator.
    var hostArchitecture: String { get }
    /// A free TCP port for a human monitor on TCP (`monitor = port=;`). By default one from the
    /// telnet console range (``serialPort(vm:)``).
    func monitorPort(vm: String) throws -> Int
    /// The host's online CPUs, or `nil` when the allocator does not hold the config to this
    /// host's CPUs (printing a command line, checking a config): `cpu cpupin=` uses those listed
    /// that are online. Default `nil`.
    var onlineCPUs: [Int]? { get }
    /// Whether `path` is an executable file on the host (a name without `/` is looked up in
    /// `PATH`): `qemu = path=A; path=B;` runs the last that is. By default, this machine's files.
    func isExecutable(path: String) -> Bool
}

extension VMResourceAllocator {
    public func monitorPort(vm: String) throws -> Int { try serialPort(vm: vm) }
    public var onlineCPUs: [Int]? { nil }
    public func isExecutable(path: String) -> Bool { HostFacts.isExecutableFile(path) }
}

/// Why a resource could not be allocated.
public struct ResourceError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
