import Foundation

/// The QMP greeting QEMU sends on connect.
public struct QMPGreeting: Sendable, Hashable {
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

/// A position in a client's event sequence: events after it are the ones received later.
public struct QMPEventCursor: Sendable, Hashable, Comparable {
    /// The sequence number of the last event received when the cursor was taken.
    public var sequence: UInt64

    /// Orders by sequence.
    public static func < (lhs: QMPEventCursor, rhs: QMPEventCursor) -> Bool { lhs.sequence < rhs.sequence }
}

/// `query-status`.
public struct QMPStatus: Sendable, Hashable {
    /// Whether the vCPUs run.
    public var running: Bool
    /// QEMU's run state: `prelaunch`, `running`, `paused`, `shutdown`, `inmigrate`, `guest-panicked`, ...
    public var status: String

    /// Whether the vCPUs are stopped (any state but running).
    public var isPaused: Bool { !running }
}

/// One vCPU of `query-cpus-fast`.
public struct QMPCPU: Sendable, Hashable {
    /// CPU index.
    public var cpuIndex: Int
    /// Host thread id of the vCPU thread (a task under `/proc/<qemu pid>/task`).
    public var threadID: Int
    /// QOM path of the CPU object.
    public var qomPath: String
    /// Target architecture (`x86_64`).
    public var target: String?
    /// Topology properties (`socket-id`, `core-id`, `thread-id`, `node-id`).
    public var props: [String: Int]
}

/// One character device of `query-chardev`.
public struct QMPChardev: Sendable, Hashable {
    /// The chardev id (`label`).
    public var label: String
    /// QEMU's description of the backend, e.g. `unix:/run/vm0.qga,server=on`.
    public var filename: String
    /// Whether the frontend (device) has it open.
    public var frontendOpen: Bool
}

/// One memory backend of `query-memdev`.
public struct QMPMemdev: Sendable, Hashable {
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
}

// MARK: - Decoding from QMP return values

struct QMPDecoder {
    let endpoint: ControlEndpoint
    let command: String

    func fail(_ what: String) -> ControlError {
        .protocolViolation(endpoint, "\(command) reply: \(what)")
    }

    func object(_ value: JSONValue?, _ what: String) throws -> JSONValue {
        guard let value, case .object = value else { throw fail("\(what) is not an object") }
        return value
    }

    func array(_ value: JSONValue?, _ what: String) throws -> [JSONValue] {
        guard let array = value?.arrayValue else { throw fail("\(what) is not an array") }
        return array
    }

    func int(_ value: JSONValue?, _ what: String) throws -> Int {
        guard let number = value?.intValue else { throw fail("\(what) is missing or not an integer") }
        return number
    }

    func string(_ value: JSONValue?, _ what: String) throws -> String {
        guard let text = value?.stringValue else { throw fail("\(what) is missing or not a string") }
        return text
    }

    func bool(_ value: JSONValue?, _ what: String) throws -> Bool {
        guard let flag = value?.boolValue else { throw fail("\(what) is missing or not a Boolean") }
        return flag
    }

    func status(_ value: JSONValue) throws -> QMPStatus {
        QMPStatus(running: try bool(value["running"], "running"), status: try string(value["status"], "status"))
    }

    func pciDevices(_ value: JSONValue) throws -> [PCIDevice] {
        var devices: [PCIDevice] = []
        for bus in try array(value, "return") {
            try appendDevices(try array(bus["devices"], "devices"), to: &devices)
        }
        return devices
    }

    private func appendDevices(_ list: [JSONValue], to devices: inout [PCIDevice]) throws {
        for entry in list {
            let ids = try object(entry["id"], "id")
            let classInfo = entry["class_info"]
            let qdev = entry["qdev_id"]?.stringValue
            devices.append(PCIDevice(
                address: PCIAddress(
                    bus: try int(entry["bus"], "bus"), slot: try int(entry["slot"], "slot"),
                    function: try int(entry["function"], "function")),
                classCode: classInfo?["class"]?.intValue,
                classDescription: classInfo?["desc"]?.stringValue,
                vendorID: try int(ids["vendor"], "id.vendor"),
                deviceID: try int(ids["device"], "id.device"),
                subsystemVendorID: ids["subsystem-vendor"]?.intValue,
                subsystemID: ids["subsystem"]?.intValue,
                qdevID: (qdev?.isEmpty ?? true) ? nil : qdev))
            if let nested = entry["pci_bridge"]?["devices"]?.arrayValue {
                try appendDevices(nested, to: &devices)
            }
        }
    }

    func cpus(_ value: JSONValue) throws -> [QMPCPU] {
        try array(value, "return").map { entry in
            var props: [String: Int] = [:]
            for (key, item) in entry["props"]?.objectValue ?? [:] {
                if let number = item.intValue { props[key] = number }
            }
            return QMPCPU(
                cpuIndex: try int(entry["cpu-index"], "cpu-index"),
                threadID: try int(entry["thread-id"], "thread-id"),
                qomPath: try string(entry["qom-path"], "qom-path"),
                target: entry["target"]?.stringValue,
                props: props)
        }
    }

    func chardevs(_ value: JSONValue) throws -> [QMPChardev] {
        try array(value, "return").map { entry in
            QMPChardev(
                label: try string(entry["label"], "label"),
                filename: try string(entry["filename"], "filename"),
                frontendOpen: try bool(entry["frontend-open"], "frontend-open"))
        }
    }

    func memdevs(_ value: JSONValue) throws -> [QMPMemdev] {
        try array(value, "return").map { entry in
            let size: UInt64
            if let exact = entry["size"]?.intValue, exact >= 0 {
                size = UInt64(exact)
            } else if let approximate = entry["size"]?.doubleValue, approximate >= 0, approximate < 1.8e19 {
                size = UInt64(approximate)
            } else {
                throw fail("size is missing or not a byte count")
            }
            return QMPMemdev(
                id: entry["id"]?.stringValue,
                size: size,
                share: try bool(entry["share"], "share"),
                prealloc: try bool(entry["prealloc"], "prealloc"),
                merge: try bool(entry["merge"], "merge"),
                dump: try bool(entry["dump"], "dump"),
                policy: try string(entry["policy"], "policy"),
                hostNodes: (entry["host-nodes"]?.arrayValue ?? []).compactMap(\.intValue),
                reserve: entry["reserve"]?.boolValue)
        }
    }
}
