import DTSSession
import Foundation
import Synchronization

/// One test NIC of a VM DUT (an entry of DTS's `vm_dut.ports_info`).
public struct GuestPort: Sendable, Equatable {
    /// The guest PCI address, `0000:00:04.0` (DTS's `pci`).
    public var pci: String
    /// `vendor:device` in hex, e.g. `1af4:1000` (virtio-net, transitional) or `1af4:1041` (modern only).
    public var pciID: String
    /// The kernel interface name while a kernel network driver owns the NIC (DTS's `intf`);
    /// `nil` while it is bound to a DPDK driver.
    public var interface: String?
    /// The MAC address, lower case (remembered from the kernel's view once it is bound to DPDK).
    public var mac: String?
    /// The PCI driver bound now (`virtio-pci`, `vfio-pci`, `uio_pci_generic`), `nil` if none.
    public var driver: String?

    public init(pci: String, pciID: String, interface: String?, mac: String?, driver: String?) {
        self.pci = pci
        self.pciID = pciID
        self.interface = interface
        self.mac = mac
        self.driver = driver
    }
}

/// The user-space I/O drivers a guest's test NICs can be bound to (DTS's `def_driver` values),
/// and the kernel's own.
public enum GuestPortDriver: Sendable, Equatable {
    /// `vfio-pci`; `noIOMMU` turns on vfio's unsafe no-IOMMU mode first (a guest has no vIOMMU).
    case vfioPCI(noIOMMU: Bool)
    /// `uio_pci_generic`.
    case uioPCIGeneric
    /// `igb_uio` (an out-of-tree module; only where the guest has it).
    case igbUIO
    /// Back to the kernel's network driver (`virtio-pci` for virtio-net).
    case kernel

    /// From DTS's `def_driver` values: `driver_name` (`vfio-pci`, `uio_pci_generic`, `igb_uio`,
    /// or `virtio-pci` for the kernel) and `driver_mode` (`noiommu`). For vfio-pci in a guest,
    /// no-IOMMU mode is on unless `driver_mode` names another mode.
    public init(name: String, mode: String? = nil) throws(BackendError) {
        switch name {
        case "vfio-pci":
            let mode = mode?.lowercased() ?? "noiommu"
            guard mode == "noiommu" || mode == "iommu" || mode.isEmpty else {
                throw BackendError(component: "def_driver", step: "driver_mode", detail: "unknown vfio-pci mode '\(mode)' (noiommu or iommu)")
            }
            self = .vfioPCI(noIOMMU: mode != "iommu")
        case "uio_pci_generic": self = .uioPCIGeneric
        case "igb_uio": self = .igbUIO
        case "virtio-pci", "kernel": self = .kernel
        default:
            throw BackendError(component: "def_driver", step: "driver_name",
                               detail: "unknown guest driver '\(name)' (vfio-pci, uio_pci_generic, igb_uio, or virtio-pci for the kernel)")
        }
    }

    /// The driver's name in sysfs (`/sys/bus/pci/drivers/<name>`); `nil` for ``kernel``, whose
    /// driver depends on the device.
    public var sysfsName: String? {
        switch self {
        case .vfioPCI: return "vfio-pci"
        case .uioPCIGeneric: return "uio_pci_generic"
        case .igbUIO: return "igb_uio"
        case .kernel: return nil
        }
    }
}

/// What a VM DUT remembers about its test NICs (their MACs, learnt while the kernel owned them).
final class GuestPortCache: Sendable {
    private let ports = Mutex<[String: GuestPort]>([:])

    /// Fills in what `scanned` lacks (MAC) from earlier scans and remembers what it has.
    func merge(_ scanned: [GuestPort]) -> [GuestPort] {
        ports.withLock { known in
            scanned.map { port in
                var port = port
                if port.mac == nil { port.mac = known[port.pci]?.mac }
                if port.mac != nil { known[port.pci] = port }
                return port
            }
        }
    }
}

/// The guest side of a VM DUT, as DTS's `VirtDut` had it: its test NICs (`ports_info`), bound to a
/// user-space driver and back.
///
/// ```swift
/// let ports = try await vm.portsInfo()                            // test NICs, management NIC excluded
/// try await vm.exec(argv: ["ip", "addr", "add", "1.1.1.2/24", "dev", ports[0].interface!])
/// try await vm.bindTestPorts(driver: .vfioPCI(noIOMMU: true))     // for DPDK (or: driver: .uioPCIGeneric)
/// ...                                                            // testpmd on ports.map(\.pci)
/// try await vm.bindTestPorts(driver: .kernel)                     // back to virtio-pci / virtio_net
/// ```
extension VirtDut {
    /// The VM's test NICs (DTS's `ports_info`): every PCI network device of the guest except the
    /// management NIC (the one named `host_connect`, or else the one holding the default route),
    /// in PCI address order, with kernel name, PCI address, MAC and driver.
    public func portsInfo() async throws -> [GuestPort] {
        let result = try await exec(argv: ["sh", "-c", Self.scanPortsScript], timeout: .seconds(30))
        guard result.succeeded else {
            throw guestError("list the guest's NICs", "exit status \(result.status): \(result.output) \(result.errorOutput)")
        }
        let (ports, management) = Self.parsePortScan(result.output)
        return portCache.merge(ports.filter { $0.pci != management }.sorted { $0.pci < $1.pci })
    }

    /// Binds every test NIC (``portsInfo()``), or those at `addresses`, to `driver`, and returns
    /// them as they are afterwards. Binding to ``GuestPortDriver/kernel`` gives them back to their
    /// kernel driver (the interface name may change; read it from the result).
    @discardableResult
    public func bindTestPorts(driver: GuestPortDriver, only addresses: [String]? = nil) async throws -> [GuestPort] {
        let ports = try await portsInfo()
        let chosen = addresses.map { wanted in ports.filter { wanted.contains($0.pci) } } ?? ports
        if let addresses, chosen.count != addresses.count {
            throw guestError("bind \(addresses)", "not test NICs of the guest: \(Set(addresses).subtracting(chosen.map(\.pci)).sorted()); NICs: \(ports.map(\.pci))")
        }
        for port in chosen { try await bindPort(port.pci, to: driver) }
        let after = try await portsInfo()
        for port in after where chosen.contains(where: { $0.pci == port.pci }) {
            let wanted = driver.sysfsName ?? "virtio-pci"
            guard port.driver == wanted || (driver == .kernel && port.interface != nil) else {
                throw guestError("bind \(port.pci) to \(wanted)", "the NIC is bound to \(port.driver ?? "no driver")")
            }
        }
        return after
    }

    /// ``bindTestPorts(driver:only:)`` with DTS's `def_driver` spelling (`driver_name`,
    /// `driver_mode`), e.g. `bindTestPorts(driver: "vfio-pci", mode: "noiommu")`.
    @discardableResult
    public func bindTestPorts(driver name: String, mode: String? = nil) async throws -> [GuestPort] {
        try await bindTestPorts(driver: try GuestPortDriver(name: name, mode: mode))
    }

    /// The driver of the VM's `def_driver` (``VirtDut/defaultDriver``) as a ``GuestPortDriver``,
    /// or `fallback` when the config names none; an unknown name or mode is an error.
    public func defaultPortDriver(fallback: GuestPortDriver = .uioPCIGeneric) throws(BackendError) -> GuestPortDriver {
        guard let configured = defaultDriver else { return fallback }
        return try GuestPortDriver(name: configured.name, mode: configured.mode)
    }

    /// Binds PCI device `address` to `driver`, checking that it took.
    public func bindPort(_ address: String, to driver: GuestPortDriver) async throws {
        let noIOMMU: String
        if case .vfioPCI(let on) = driver { noIOMMU = on ? "1" : "0" } else { noIOMMU = "0" }
        let bind = try await exec(argv: ["sh", "-c", Self.bindPortScript, "sh", address, driver.sysfsName ?? "", noIOMMU], timeout: .seconds(30))
        guard bind.succeeded else {
            throw guestError("bind \(address) to \(driver.sysfsName ?? "its kernel driver")", "\(bind.output) \(bind.errorOutput)")
        }
    }

    /// Parses ``scanPortsScript``'s output: the NICs and the management NIC's PCI address.
    static func parsePortScan(_ text: String) -> (ports: [GuestPort], management: String?) {
        var ports: [GuestPort] = [], management: String?
        for line in TestpmdParser.lines(text) {
            let fields = TestpmdParser.words(line)
            func value(_ index: Int) -> String? { fields.count > index && fields[index] != "-" ? fields[index] : nil }
            if fields.first == "port", fields.count == 6, let pci = value(1), let id = value(2) {
                ports.append(GuestPort(pci: pci, pciID: id, interface: value(4), mac: value(5)?.lowercased(), driver: value(3)))
            } else if fields.first == "mgmt" {
                management = value(1)
            }
        }
        return (ports, management)
    }

    /// Prints `port PCI VENDOR:DEVICE DRIVER IFACE MAC` per PCI network device (`-` for none) and
    /// `mgmt PCI` for the management NIC.
    static let scanPortsScript = """
        pci_of() { d=$(readlink -f "/sys/class/net/$1/device") || return 1
            case "${d##*/}" in virtio*) d=${d%/*} ;; esac; echo "${d##*/}"; }
        mgmt=-
        if [ -e /sys/class/net/host_connect ]; then mgmt=$(pci_of host_connect) || mgmt=-
        else
            route=$(awk '$2 == "00000000" {print $1; exit}' /proc/net/route)
            [ -n "$route" ] && { mgmt=$(pci_of "$route") || mgmt=-; }
        fi
        for d in /sys/bus/pci/devices/*; do
            case "$(cat "$d/class")" in 0x02*) ;; *) continue ;; esac
            drv=-; [ -e "$d/driver" ] && drv=$(basename "$(readlink -f "$d/driver")")
            ifc=-; mac=-
            for n in "$d"/net/* "$d"/virtio*/net/*; do
                [ -e "$n/address" ] || continue; ifc=${n##*/}; mac=$(cat "$n/address")
            done
            v=$(cat "$d/vendor"); p=$(cat "$d/device")
            echo "port ${d##*/} ${v#0x}:${p#0x} $drv $ifc $mac"
        done
        echo "mgmt $mgmt"
        """

    /// Binds PCI device $1 to driver $2 (empty: the kernel's own driver, found by the PCI bus);
    /// $3 = 1 turns on vfio's no-IOMMU mode first.
    static let bindPortScript = """
        set -e
        dev=/sys/bus/pci/devices/$1
        [ -e "$dev" ] || { echo "no PCI device $1"; exit 1; }
        if [ "$2" = vfio-pci ]; then
            [ -d /sys/module/vfio ] || modprobe vfio 2>/dev/null || true
            p=/sys/module/vfio/parameters/enable_unsafe_noiommu_mode
            if [ "$3" = 1 ]; then
                [ -e "$p" ] || { echo "the guest kernel has no vfio no-IOMMU mode (built without CONFIG_VFIO_NOIOMMU, as Debian's kernels are): use uio_pci_generic, or a guest with a vIOMMU and driver_mode=iommu"; exit 3; }
                [ "$(cat "$p")" = Y ] || echo 1 > "$p"
            elif [ ! -e "$dev/iommu_group" ]; then
                echo "$1 is in no IOMMU group (the guest has no vIOMMU): use driver_mode=noiommu or uio_pci_generic"; exit 3
            fi
        fi
        if [ -n "$2" ] && [ ! -d "/sys/bus/pci/drivers/$2" ]; then
            modprobe "$2" 2>/dev/null || { echo "driver $2 is not available in the guest"; exit 1; }
        fi
        cur=; [ -e "$dev/driver" ] && cur=$(basename "$(readlink -f "$dev/driver")")
        if [ -n "$2" ] && [ "$cur" = "$2" ]; then exit 0; fi
        [ -n "$cur" ] && echo "$1" > "$dev/driver/unbind"
        if [ -n "$2" ]; then
            echo "$2" > "$dev/driver_override"
            echo "$1" > "/sys/bus/pci/drivers/$2/bind"
            echo > "$dev/driver_override"
            [ "$(basename "$(readlink -f "$dev/driver")")" = "$2" ] || { echo "$1 did not bind to $2"; exit 1; }
        else
            echo > "$dev/driver_override"
            echo "$1" > /sys/bus/pci/drivers_probe
            [ -e "$dev/driver" ] || { echo "no kernel driver took $1"; exit 1; }
        fi
        """

    func guestError(_ step: String, _ detail: String) -> BackendError {
        BackendError(component: "VM \(vmName)", step: step, detail: detail)
    }
}
