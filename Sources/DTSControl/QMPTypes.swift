import Foundation

/// The QMP greeting QEMU sends on connect:
/// `{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 22}, "package": "..."}, "capabilities": ["oob"]}}`.
public struct QMPGreeting: Sendable, Hashable, Decodable {
    /// QEMU major version.
    public var major: Int
    /// QEMU minor version.
    public var minor: Int
    /// QEMU micro version.
    public var micro: Int
    /// Distribution package string (`Debian 1:7.2+dfsg-7+deb12u18+b3`), may be empty.
    public var package: String
    /// Capabilities offered (`oob`).
    public var capabilities: [String]

    /// `7.2.22`.
    public var version: String { "\(major).\(minor).\(micro)" }

    private enum CodingKeys: String, CodingKey { case qmp = "QMP" }
    private enum QMPKeys: String, CodingKey { case version, capabilities }
    private enum VersionKeys: String, CodingKey { case qemu, package }
    private enum QEMUKeys: String, CodingKey { case major, minor, micro }

    /// Decodes the greeting message.
    public init(from decoder: any Decoder) throws {
        let qmp = try decoder.container(keyedBy: CodingKeys.self).nestedContainer(keyedBy: QMPKeys.self, forKey: .qmp)
        let version = try qmp.nestedContainer(keyedBy: VersionKeys.self, forKey: .version)
        let qemu = try version.nestedContainer(keyedBy: QEMUKeys.self, forKey: .qemu)
        major = try qemu.decode(Int.self, forKey: .major)
        minor = try qemu.decode(Int.self, forKey: .minor)
        micro = try qemu.decode(Int.self, forKey: .micro)
        package = try version.decodeIfPresent(String.self, forKey: .package) ?? ""
        capabilities = try qmp.decodeIfPresent([String].self, forKey: .capabilities) ?? []
    }
}

/// An asynchronous QMP event (`SHUTDOWN`, `STOP`, `RESUME`, `POWERDOWN`, ...).
public struct QMPEvent: Sendable, Hashable {
    /// Event name.
    public var name: String
    /// The `data` member, or `.null` when absent.
    public var data: JSONValue
    /// QEMU's timestamp of the event, when present.
    public var timestamp: Date?
    /// Position in this client's event sequence (1, 2, ...); compare with a ``QMPEventCursor``.
    public var sequence: UInt64
    /// When this client received it.
    public var receivedAt: ContinuousClock.Instant
}

/// An event message as QEMU sends it: `{"event": "STOP", "data": {...}, "timestamp": {"seconds": ..., "microseconds": ...}}`.
/// `data` stays a generic ``JSONValue``: each event has its own members, and dts passes them on as they are.
struct QMPEventMessage: Decodable {
    struct Timestamp: Decodable {
        var seconds: Double
        var microseconds: Double?
    }

    var event: String
    var data: JSONValue?
    var timestamp: Timestamp?

    /// QEMU's timestamp as a date.
    var date: Date? {
        timestamp.map { Date(timeIntervalSince1970: $0.seconds + ($0.microseconds ?? 0) / 1e6) }
    }
}

/// A position in a client's event sequence: events after it are the ones received later.
public struct QMPEventCursor: Sendable, Hashable, Comparable {
    /// The sequence number of the last event received when the cursor was taken.
    public var sequence: UInt64

    /// Orders by sequence.
    public static func < (lhs: QMPEventCursor, rhs: QMPEventCursor) -> Bool { lhs.sequence < rhs.sequence }
}

/// `query-status` (QAPI `StatusInfo`).
public struct QMPStatus: Sendable, Hashable, Decodable {
    /// Whether the vCPUs run.
    public var running: Bool
    /// QEMU's run state: `prelaunch`, `running`, `paused`, `shutdown`, `inmigrate`, `guest-panicked`, ...
    public var status: String

    /// Whether the vCPUs are stopped (any state but running).
    public var isPaused: Bool { !running }
}

/// One vCPU of `query-cpus-fast` (QAPI `CpuInfoFast`).
public struct QMPCPU: Sendable, Hashable, Decodable {
    /// CPU index.
    public var cpuIndex: Int
    /// Host thread id of the vCPU thread (a task under `/proc/<qemu pid>/task`).
    public var threadID: Int
    /// QOM path of the CPU object.
    public var qomPath: String
    /// Target architecture (`x86_64`).
    public var target: String?
    /// Topology properties (`socket-id`, `core-id`, `thread-id`, `node-id`); empty when QEMU sends none.
    public var props: [String: Int]

    private enum CodingKeys: String, CodingKey {
        case cpuIndex = "cpu-index", threadID = "thread-id", qomPath = "qom-path", target, props
    }

    /// Decodes one entry of the `query-cpus-fast` reply.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        cpuIndex = try container.decode(Int.self, forKey: .cpuIndex)
        threadID = try container.decode(Int.self, forKey: .threadID)
        qomPath = try container.decode(String.self, forKey: .qomPath)
        target = try container.decodeIfPresent(String.self, forKey: .target)
        props = try container.decodeIfPresent([String: Int].self, forKey: .props) ?? [:]
    }
}

/// One character device of `query-chardev` (QAPI `ChardevInfo`).
public struct QMPChardev: Sendable, Hashable, Decodable {
    /// The chardev id (`label`).
    public var label: String
    /// QEMU's description of the backend, e.g. `unix:/run/vm0.qga,server=on`.
    public var filename: String
    /// Whether the frontend (device) has it open.
    public var frontendOpen: Bool

    private enum CodingKeys: String, CodingKey {
        case label, filename, frontendOpen = "frontend-open"
    }
}

/// One memory backend of `query-memdev` (QAPI `Memdev`).
public struct QMPMemdev: Sendable, Hashable, Decodable {
    /// The backend object id, when set.
    public var id: String?
    /// Size in bytes.
    public var size: UInt64
    /// Whether the memory is shared (`share=on`, needed for vhost-user).
    public var share: Bool
    /// Whether the memory is preallocated.
    public var prealloc: Bool
    /// Whether KSM merging is allowed.
    public var merge: Bool
    /// Whether it is included in core dumps.
    public var dump: Bool
    /// NUMA policy (`default`, `preferred`, `bind`, `interleave`).
    public var policy: String
    /// Host NUMA nodes of the policy.
    public var hostNodes: [Int]
    /// Whether swap space is reserved, when reported.
    public var reserve: Bool?

    private enum CodingKeys: String, CodingKey {
        case id, size, share, prealloc, merge, dump, policy, hostNodes = "host-nodes", reserve
    }
}

// MARK: - query-pci

/// One bus of `query-pci` (QAPI `PciInfo`).
struct QMPPCIBus: Decodable {
    var bus: Int
    var devices: [QMPPCIFunction]

    /// Every function of `buses`, those behind bridges included, in QEMU's order.
    static func devices(_ buses: [QMPPCIBus]) -> [PCIDevice] {
        buses.flatMap { $0.devices.flatMap(\.flattened) }
    }
}

/// One PCI function of `query-pci` (QAPI `PciDeviceInfo`).
struct QMPPCIFunction: Decodable {
    /// QAPI `PciDeviceClass`.
    struct ClassInfo: Decodable {
        var classCode: Int
        var desc: String?

        enum CodingKeys: String, CodingKey { case classCode = "class", desc }
    }

    /// QAPI `PciDeviceId`.
    struct IDs: Decodable {
        var vendor: Int
        var device: Int
        var subsystemVendor: Int?
        var subsystem: Int?

        enum CodingKeys: String, CodingKey { case vendor, device, subsystemVendor = "subsystem-vendor", subsystem }
    }

    /// QAPI `PciBridgeInfo`: the functions on the bus behind the bridge.
    struct Bridge: Decodable {
        var devices: [QMPPCIFunction]?
    }

    var bus: Int
    var slot: Int
    var function: Int
    var classInfo: ClassInfo
    var id: IDs
    var qdevID: String
    var pciBridge: Bridge?

    enum CodingKeys: String, CodingKey {
        case bus, slot, function, classInfo = "class_info", id, qdevID = "qdev_id", pciBridge = "pci_bridge"
    }

    /// This function, then those behind it when it is a bridge.
    var flattened: [PCIDevice] {
        let device = PCIDevice(
            address: PCIAddress(bus: bus, slot: slot, function: function), classCode: classInfo.classCode,
            classDescription: classInfo.desc, vendorID: id.vendor, deviceID: id.device,
            subsystemVendorID: id.subsystemVendor, subsystemID: id.subsystem, qdevID: qdevID.isEmpty ? nil : qdevID)
        return [device] + (pciBridge?.devices ?? []).flatMap(\.flattened)
    }
}
