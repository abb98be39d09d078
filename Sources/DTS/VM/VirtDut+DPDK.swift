import DTSSession
import Foundation

/// How to start `dpdk-testpmd` in a guest (``VirtDut/startTestpmd(_:)``).
public struct GuestTestpmdOptions: Sendable {
    /// The ports' guest PCI addresses (`-a`), in port-id order.
    public var devices: [String]
    /// EAL core list (`-l`): the main lcore and at least one forwarding lcore.
    public var cores: String = "0-1"
    /// EAL memory in MB (`-m`), out of the guest's hugepages.
    public var memoryMB: Int
    /// DPDK `--file-prefix`.
    public var filePrefix: String = "dts"
    /// testpmd's own arguments, after `-- -i`.
    public var arguments: [String] = ["--total-num-mbufs=2048", "--nb-cores=1"]
    /// The testpmd binary in the guest.
    public var binary: String = "dpdk-testpmd"
    /// How long to wait for the `testpmd> ` prompt.
    public var startTimeout: Duration = .seconds(180)

    /// Options for `devices` with `memoryMB` of EAL memory; the rest has defaults that work on a
    /// 2-vCPU guest.
    public init(devices: [String], memoryMB: Int) {
        self.devices = devices
        self.memoryMB = memoryMB
    }

    /// The command line.
    public var argv: [String] {
        [binary, "-l", cores, "-m", String(memoryMB), "--file-prefix=\(filePrefix)"]
            + devices.flatMap { ["-a", $0] } + ["--", "-i"] + arguments
    }
}

/// DPDK in the guest, as DTS's virtualization suites prepare it: NICs found by MAC address, bound
/// to a user-space I/O driver, hugepages reserved, and `dpdk-testpmd` started interactively on the
/// VM DUT's main shell (then driven with `sendExpect(..., "testpmd> ")`).
///
/// ```swift
/// var devices: [String] = []
/// for mac in macs { devices.append(try await vm.pciAddress(ofMAC: mac)) }
/// for device in devices { try await vm.bindToUIO(device) }
/// try await vm.reserveHugepages(256)
/// let banner = try await vm.startTestpmd(GuestTestpmdOptions(devices: devices, memoryMB: 512))
/// let stats = try await vm.sendExpect("show port stats all", "testpmd> ")
/// ```
///
/// Failures are ``BackendError``s naming the VM and the step.
extension VirtDut {
    /// The guest PCI address (`0000:00:04.0`) of the NIC whose MAC address is `mac` (any case).
    public func pciAddress(ofMAC mac: String) async throws -> String {
        let find = try await exec(argv: ["sh", "-c", Self.findPCIScript, "sh", mac.lowercased()], timeout: .seconds(20))
        let address = find.output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard find.succeeded, !address.isEmpty else {
            throw guestError("find the NIC with MAC \(mac)", "no such NIC: \(find.output) \(find.errorOutput)")
        }
        return address
    }

    /// Unbinds the guest PCI device `address` from its driver and binds it to `driver` (loaded
    /// first if it is a module), checking that it took.
    public func bindToUIO(_ address: String, driver: String = "uio_pci_generic") async throws {
        let bind = try await exec(argv: ["sh", "-c", Self.bindScript, "sh", address, driver], timeout: .seconds(30))
        guard bind.succeeded else {
            throw guestError("bind \(address) to \(driver)", "\(bind.output) \(bind.errorOutput)")
        }
    }

    /// Sets the guest's 2 MB hugepage reservation to `pages` and checks that the kernel reserved
    /// exactly that many.
    public func reserveHugepages(_ pages: Int) async throws {
        let counter = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
        let result = try await exec(argv: ["sh", "-c", "echo \"$1\" > \"$2\" && cat \"$2\"", "sh", String(pages), counter],
                                    timeout: .seconds(30))
        let reserved = Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines))
        guard result.succeeded, reserved == pages else {
            throw guestError("reserve \(pages) hugepages", "the guest reserved \(result.output) \(result.errorOutput)")
        }
    }

    /// Starts `dpdk-testpmd` interactively on the main shell and returns its start-up output, once
    /// it shows the `testpmd> ` prompt with its ports brought up.
    public func startTestpmd(_ options: GuestTestpmdOptions) async throws -> String {
        let banner = try await sendExpect(ShellQuoting.join(options.argv), "testpmd> ", timeout: options.startTimeout)
        guard banner.contains("Port 0") || banner.contains("Checking link statuses") else {
            throw guestError("start \(options.binary)", "testpmd did not bring up its ports:\n\(banner)")
        }
        return banner
    }

    private func guestError(_ step: String, _ detail: String) -> BackendError {
        BackendError(component: "VM \(vmName)", step: step, detail: detail)
    }

    /// Prints the PCI address of the NIC whose MAC is $1 (a virtio NIC's is its parent device's).
    static let findPCIScript = """
        for n in /sys/class/net/*; do
            [ "$(cat "$n/address")" = "$1" ] || continue
            d=$(readlink -f "$n/device")
            case "$(basename "$d")" in virtio*) d=$(dirname "$d") ;; esac
            basename "$d"; exit 0
        done
        exit 1
        """

    /// Unbinds PCI device $1 from its driver and binds it to driver $2.
    static let bindScript = """
        set -e
        dev=/sys/bus/pci/devices/$1
        modprobe "$2" 2>/dev/null || [ -d "/sys/bus/pci/drivers/$2" ]
        [ -e "$dev/driver" ] && echo "$1" > "$dev/driver/unbind"
        echo "$2" > "$dev/driver_override"
        echo "$1" > "/sys/bus/pci/drivers/$2/bind"
        [ "$(basename "$(readlink -f "$dev/driver")")" = "$2" ]
        """
}
