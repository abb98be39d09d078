/// Host resources and facts a VM's command line depends on.
///
/// The command-line builder is pure: everything it would otherwise take from the host (ports,
/// VNC displays, MAC addresses, directories) comes from this protocol. Tests inject a fixed
/// allocator; `dts` injects one that reserves real resources so that concurrent runs never collide.
public protocol VMResourceAllocator: AnyObject, Sendable {
    /// A private directory for this VM's sockets, pid file and logs.
    func runtimeDirectory(vm: String) -> String
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
}

/// Why a resource could not be allocated.
public struct ResourceError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
