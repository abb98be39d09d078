/// What differs between guest architectures, as data (one entry per architecture).
///
/// Adding an architecture is adding an entry to ``Architecture/all``, not a new branch in a handler.
public struct Architecture: Sendable, Equatable {
    /// The name used by `uname -m` and QEMU's binary suffix (`x86_64`, `aarch64`).
    public var name: String
    /// The emulator binary.
    public var binary: String
    /// The default machine type.
    public var machine: String
    /// Machine types on which PCI slot 0x1f is free for the management NIC.
    public var managementSlotMachines: Set<String>
    /// The default `-drive if=` interface.
    public var diskInterface: String
    /// The guest's serial console device, for `console=` on the kernel command line.
    public var consoleDevice: String
    /// The display device added when VNC is enabled.
    public var displayDevice: QEMUOption
    /// The CPU model that stands for `host` under TCG (`-cpu host` needs KVM).
    public var tcgCPUModel: String
    /// Options every VM of this architecture needs.
    public var extraOptions: [QEMUOption]

    /// Every architecture dts knows.
    public static let all: [Architecture] = [
        Architecture(
            name: "x86_64", binary: "qemu-system-x86_64", machine: "pc",
            managementSlotMachines: ["pc"], diskInterface: "ide", consoleDevice: "ttyS0",
            displayDevice: QEMUOption("-vga", "std"), tcgCPUModel: "max", extraOptions: []),
        Architecture(
            name: "aarch64", binary: "qemu-system-aarch64", machine: "virt",
            managementSlotMachines: ["virt"], diskInterface: "virtio", consoleDevice: "ttyAMA0",
            displayDevice: QEMUOption("-device", "virtio-gpu-pci"), tcgCPUModel: "max", extraOptions: []),
    ]

    /// The entry for `name`, if known.
    public static func named(_ name: String) -> Architecture? { all.first { $0.name == name } }

    /// The architecture a QEMU binary emulates, from its name (`qemu-system-aarch64` → aarch64).
    public static func forBinary(_ path: String) -> Architecture? {
        let base = path.scalarSplit("/").last ?? path
        return all.first { base == $0.binary }
    }
}

/// Which accelerator runs the guest.
public enum Accelerator: String, Sendable, CaseIterable {
    /// Hardware virtualization; the default in labs.
    case kvm
    /// QEMU's software emulation; needed where KVM is unavailable or broken (nested setups).
    case tcg
}
