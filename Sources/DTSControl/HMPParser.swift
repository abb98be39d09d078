import Foundation

/// A host forward of QEMU user networking (`hostfwd=`), as listed by HMP `info usernet`.
public struct UsernetForward: Sendable, Hashable {
    /// `TCP` or `UDP`.
    public var transport: String
    /// The netdev id the forward belongs to (`n0` in `Hub -1 (n0):`), when printed.
    public var netdev: String?
    /// Host listening address as printed (`127.0.0.1`; `*` for any).
    public var hostAddress: String
    /// Host port: the one QEMU chose when the config said port 0.
    public var hostPort: Int
    /// Guest address (`10.0.2.15`).
    public var guestAddress: String
    /// Guest port.
    public var guestPort: Int

    /// Creates a forward record.
    public init(
        transport: String, netdev: String?, hostAddress: String, hostPort: Int, guestAddress: String, guestPort: Int
    ) {
        self.transport = transport
        self.netdev = netdev
        self.hostAddress = hostAddress
        self.hostPort = hostPort
        self.guestAddress = guestAddress
        self.guestPort = guestPort
    }
}

/// A vCPU line of HMP `info cpus`.
public struct HMPCPU: Sendable, Hashable {
    /// CPU index (`#0`).
    public var index: Int
    /// Host thread id running the vCPU.
    public var threadID: Int
    /// Whether this is the monitor's current CPU (the `*` mark).
    public var isCurrent: Bool

    /// Creates a record.
    public init(index: Int, threadID: Int, isCurrent: Bool) {
        self.index = index
        self.threadID = threadID
        self.isCurrent = isCurrent
    }
}

/// Parsers for the text that HMP commands (sent with `human-monitor-command`) return.
public enum HMPParser {
    /// Parses `info pci`: one ``PCIDevice`` per `Bus N, device N, function N:` block, with the class
    /// description, `vendor:device`, subsystem and `id "..."`. BARs, IRQs and bridge ranges are skipped.
    public static func infoPCI(_ text: String) -> [PCIDevice] {
        var devices: [PCIDevice] = []
        var current: PCIDevice?
        for rawLine in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.hasPrefix("Bus "), line.hasSuffix(":"), let address = parseBusLine(line) {
                if let current { devices.append(current) }
                current = PCIDevice(address: address, vendorID: 0, deviceID: 0)
                continue
            }
            guard var device = current else { continue }
            if line.hasPrefix("PCI subsystem "), let ids = parseIDPair(String(line.dropFirst("PCI subsystem ".count))) {
                device.subsystemVendorID = ids.0
                device.subsystemID = ids.1
            } else if line.hasPrefix("id \""), line.hasSuffix("\""), line.count >= 5 {
                let id = String(line.dropFirst(4).dropLast())
                device.qdevID = id.isEmpty ? nil : id
            } else if let marker = line.range(of: ": PCI device ", options: .backwards),
                let ids = parseIDPair(String(line[marker.upperBound...]))
            {
                let description = String(line[..<marker.lowerBound])
                device.vendorID = ids.0
                device.deviceID = ids.1
                if description.hasPrefix("Class "), let code = Int(description.dropFirst("Class ".count)) {
                    // QEMU prints unnamed classes as "Class %04d" (decimal).
                    device.classCode = code
                } else {
                    device.classDescription = description
                }
            }
            current = device
        }
        if let current { devices.append(current) }
        return devices
    }

    /// Parses `info usernet`: every `TCP[HOST_FORWARD]` / `UDP[HOST_FORWARD]` row, with the netdev of its hub.
    public static func infoUsernet(_ text: String) -> [UsernetForward] {
        var forwards: [UsernetForward] = []
        var netdev: String?
        for rawLine in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if (line.hasPrefix("Hub ") || line.hasPrefix("VLAN ")), line.hasSuffix(":") {
                if let open = line.firstIndex(of: "("), let close = line.lastIndex(of: ")"), open < close {
                    netdev = String(line[line.index(after: open)..<close])
                } else {
                    netdev = nil
                }
                continue
            }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let first = fields.first, first.hasSuffix("[HOST_FORWARD]") else { continue }
            let transport = String(first.dropLast("[HOST_FORWARD]".count))
            // Protocol[State] FD SourceAddress Port DestAddress Port RecvQ SendQ
            guard fields.count >= 6, let hostPort = Int(fields[3]), let guestPort = Int(fields[5]) else { continue }
            forwards.append(UsernetForward(
                transport: transport, netdev: netdev, hostAddress: fields[2], hostPort: hostPort,
                guestAddress: fields[4], guestPort: guestPort))
        }
        return forwards
    }

    /// Parses `info cpus` (`* CPU #0: thread_id=9779`).
    public static func infoCPUs(_ text: String) -> [HMPCPU] {
        var cpus: [HMPCPU] = []
        for rawLine in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            var line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            let isCurrent = line.hasPrefix("*")
            if isCurrent { line = line.dropFirst().trimmingCharacters(in: .whitespaces) }
            guard line.hasPrefix("CPU #"), let colon = line.firstIndex(of: ":"),
                let index = Int(line[line.index(line.startIndex, offsetBy: 5)..<colon]),
                let threadRange = line.range(of: "thread_id=")
            else { continue }
            let digits = line[threadRange.upperBound...].prefix(while: { $0.isNumber })
            guard let thread = Int(digits) else { continue }
            cpus.append(HMPCPU(index: index, threadID: thread, isCurrent: isCurrent))
        }
        return cpus
    }

    /// `Bus  0, device  31, function 0:` → address (decimal fields).
    private static func parseBusLine(_ line: String) -> PCIAddress? {
        let body = line.dropLast()  // the ':'
        let parts = body.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 3,
            parts[0].hasPrefix("Bus "), parts[1].hasPrefix("device "), parts[2].hasPrefix("function "),
            let bus = Int(parts[0].dropFirst(4).trimmingCharacters(in: .whitespaces)),
            let slot = Int(parts[1].dropFirst(7).trimmingCharacters(in: .whitespaces)),
            let function = Int(parts[2].dropFirst(9).trimmingCharacters(in: .whitespaces))
        else { return nil }
        return PCIAddress(bus: bus, slot: slot, function: function)
    }

    /// `8086:100e` → (0x8086, 0x100e).
    private static func parseIDPair(_ text: String) -> (Int, Int)? {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: ":")
        guard parts.count == 2, let a = Int(parts[0], radix: 16), let b = Int(parts[1], radix: 16) else { return nil }
        return (a, b)
    }
}
