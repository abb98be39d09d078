import DTSSession
import Foundation

/// DPDK in the guest, as DTS's virtualization suites prepare it: test NICs bound to a user-space
/// driver (``bindTestPorts(driver:only:)``), hugepages reserved, and `dpdk-testpmd` run by a
/// ``PmdOutput`` on one of the VM DUT's shells.
///
/// ```swift
/// let ports = try await vm.bindTestPorts(driver: .uioPCIGeneric)
/// try await vm.reserveHugepages(64)
/// var options = TestpmdOptions(filePrefix: "vm0", cores: .list("0-1"), memory: .hugepages(megabytes: 128))
/// options.allowedDevices = ports.map(\.pci)
/// let pmd = PmdOutput(session: vm, options: options, cleanup: .run(context.run))
/// try await pmd.start()
/// ```
///
/// Failures are ``BackendError``s naming the VM and the step.
extension VirtDut {
    /// The guest PCI address (`0000:00:04.0`) of the test NIC whose MAC address is `mac` (any case).
    public func pciAddress(ofMAC mac: String) async throws -> String {
        let ports = try await portsInfo()
        guard let port = ports.first(where: { $0.mac == mac.lowercased() }) else {
            throw guestError("find the NIC with MAC \(mac)", "no such test NIC; the guest has \(ports.map { "\($0.pci) \($0.mac ?? "?")" })")
        }
        return port.pci
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
}
