import Foundation

/// A guest PCI address, printed in the `0000:00:04.0` form (domain:bus:slot.function, hexadecimal).
public struct PCIAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// PCI domain (segment); QEMU's `pc` machine has only domain 0.
    public var domain: Int
    /// Bus number.
    public var bus: Int
    /// Slot (device) number, 0...31.
    public var slot: Int
    /// Function number, 0...7.
    public var function: Int

    /// Creates an address.
    public init(domain: Int = 0, bus: Int, slot: Int, function: Int) {
        self.domain = domain
        self.bus = bus
        self.slot = slot
        self.function = function
    }

    /// Parses `0000:00:1f.0` or `00:1f.0` (hexadecimal fields); `nil` if malformed.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3 else { return nil }
        let domainPart = parts.count == 3 ? parts[0] : "0"
        let busPart = parts[parts.count - 2]
        let slotFunction = parts[parts.count - 1].split(separator: ".", omittingEmptySubsequences: false)
        guard slotFunction.count == 2,
            let domain = Int(domainPart, radix: 16), let bus = Int(busPart, radix: 16),
            let slot = Int(slotFunction[0], radix: 16), let function = Int(slotFunction[1], radix: 16),
            (0...0xff).contains(bus), (0...31).contains(slot), (0...7).contains(function), domain >= 0
        else { return nil }
        self.init(domain: domain, bus: bus, slot: slot, function: function)
    }

    /// `0000:00:04.0`.
    public var description: String {
        String(format: "%04x:%02x:%02x.%x", domain, bus, slot, function)
    }

    /// Orders by domain, bus, slot, function.
    public static func < (lhs: PCIAddress, rhs: PCIAddress) -> Bool {
        (lhs.domain, lhs.bus, lhs.slot, lhs.function) < (rhs.domain, rhs.bus, rhs.slot, rhs.function)
    }
}

/// A PCI function of the guest, as reported by QMP `query-pci` or HMP `info pci`.
public struct PCIDevice: Sendable, Hashable {
    /// Where the guest sees it.
    public var address: PCIAddress
    /// The PCI class code (`0x0200` for an Ethernet controller) when known (`query-pci` always
    /// has it; `info pci` only prints it for classes without a name).
    public var classCode: Int?
    /// QEMU's class name, e.g. `Ethernet controller`.
    public var classDescription: String?
    /// Vendor id, e.g. `0x8086`.
    public var vendorID: Int
    /// Device id, e.g. `0x100e`.
    public var deviceID: Int
    /// Subsystem vendor id, when reported.
    public var subsystemVendorID: Int?
    /// Subsystem id, when reported.
    public var subsystemID: Int?
    /// The qdev id given with `-device ...,id=NAME`; `nil` when the device has none.
    public var qdevID: String?

    /// Creates a device record.
    public init(
        address: PCIAddress, classCode: Int? = nil, classDescription: String? = nil, vendorID: Int, deviceID: Int,
        subsystemVendorID: Int? = nil, subsystemID: Int? = nil, qdevID: String? = nil
    ) {
        self.address = address
        self.classCode = classCode
        self.classDescription = classDescription
        self.vendorID = vendorID
        self.deviceID = deviceID
        self.subsystemVendorID = subsystemVendorID
        self.subsystemID = subsystemID
        self.qdevID = qdevID
    }

    /// Bus number (shortcut for `address.bus`).
    public var bus: Int { address.bus }
    /// Slot number (shortcut for `address.slot`).
    public var slot: Int { address.slot }
    /// Function number (shortcut for `address.function`).
    public var function: Int { address.function }
    /// `8086:100e`.
    public var vendorDevice: String { String(format: "%04x:%04x", vendorID, deviceID) }
}

/// Maps qdev ids (`pt_0`, `pt_1`, `mgmt`) to the guest PCI addresses QEMU gave the devices.
///
/// Build it from `query-pci` (``QMPClient/pciMap(timeout:)``) or from HMP `info pci` text
/// (``init(infoPCI:)``). Devices without an id are left out.
public struct PCIMap: Sendable, Hashable {
    /// qdev id → address.
    public private(set) var addresses: [String: PCIAddress]

    /// Builds the map from parsed devices (later duplicates of an id are ignored).
    public init(devices: [PCIDevice]) {
        var addresses: [String: PCIAddress] = [:]
        for device in devices {
            guard let id = device.qdevID, !id.isEmpty, addresses[id] == nil else { continue }
            addresses[id] = device.address
        }
        self.addresses = addresses
    }

    /// Builds the map from the text of HMP `info pci`.
    public init(infoPCI text: String) {
        self.init(devices: HMPParser.infoPCI(text))
    }

    /// The address of the device with qdev id `id`, or `nil`.
    public subscript(id: String) -> PCIAddress? { addresses[id] }

    /// The address of the device with qdev id `id`, or an error naming the ids that exist.
    public func address(of id: String) throws -> PCIAddress {
        if let address = addresses[id] { return address }
        throw PCIMapError.unknownDevice(id: id, known: addresses.keys.sorted())
    }

    /// The qdev ids, sorted.
    public var ids: [String] { addresses.keys.sorted() }
}

/// Lookup failure in a ``PCIMap``.
public enum PCIMapError: Error, Sendable, Equatable, CustomStringConvertible, LocalizedError {
    /// No device with this qdev id in the guest.
    case unknownDevice(id: String, known: [String])

    /// `no PCI device with id "pt_3" in the guest (ids: mgmt, pt_0)`.
    public var description: String {
        switch self {
        case .unknownDevice(let id, let known):
            return "no PCI device with id \"\(id)\" in the guest (ids: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"
        }
    }

    /// Same as ``description``.
    public var errorDescription: String? { description }
}
