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
    /// The machine families dts knows, and whether guest PCI slot 0x1f is free on them for the
    /// management NIC.
    public var machineFamilies: [MachineFamily]
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
    /// The device that gives the guest a new VM generation ID at every start (so that a guest
    /// restored from a snapshot reseeds its random number generator), if QEMU has one here.
    public var generationIDDevice: QEMUOption?

    /// Every architecture dts knows.
    public static let all: [Architecture] = [
        Architecture(
            name: "x86_64", binary: "qemu-system-x86_64", machine: "pc",
            machineFamilies: [
                MachineFamily(name: "i440fx", patterns: ["pc", "pc-i440fx-*", "pc-0.*", "pc-1.*"], slot1fOwner: nil),
                MachineFamily(name: "q35", patterns: ["q35", "pc-q35-*"], slot1fOwner: "the ICH9 LPC bridge"),
            ],
            diskInterface: "ide", consoleDevice: "ttyS0",
            displayDevice: QEMUOption("-vga", "std"), tcgCPUModel: "max", extraOptions: [],
            generationIDDevice: QEMUOption("-device", "vmgenid,guid=auto",
                                           note: "warm boot: a new VM generation ID at every start makes a guest restored from a snapshot reseed its RNG")),
        Architecture(
            name: "aarch64", binary: "qemu-system-aarch64", machine: "virt",
            machineFamilies: [MachineFamily(name: "virt", patterns: ["virt", "virt-*"], slot1fOwner: nil)],
            diskInterface: "virtio", consoleDevice: "ttyAMA0",
            displayDevice: QEMUOption("-device", "virtio-gpu-pci"), tcgCPUModel: "max", extraOptions: [],
            // QEMU 7.2 has vmgenid on x86 only.
            generationIDDevice: nil),
    ]

    /// The family of machine type `machine` (`pc-i440fx-7.2` is an i440fx), if dts knows it.
    public func family(of machine: String) -> MachineFamily? {
        machineFamilies.first { $0.matches(machine) }
    }

    /// The entry for `name`, if known.
    public static func named(_ name: String) -> Architecture? { all.first { $0.name == name } }

    /// The architecture a QEMU binary emulates, from its name (`qemu-system-aarch64` → aarch64).
    public static func forBinary(_ path: String) -> Architecture? {
        let base = path.scalarSplit("/").last ?? path
        return all.first { base == $0.binary }
    }
}

/// Machine types that share a chipset, named as QEMU names their versions (`pc` is the
/// latest `pc-i440fx-X.Y`, `q35` the latest `pc-q35-X.Y`).
public struct MachineFamily: Sendable, Equatable {
    /// The chipset's name (`i440fx`, `q35`, `virt`).
    public var name: String
    /// Machine type names: exact, or a prefix ending in `*`.
    public var patterns: [String]
    /// What sits at guest PCI slot 0x1f on these machines, or `nil` when the slot is free for
    /// the management NIC.
    public var slot1fOwner: String?

    /// Whether `machine` is of this family.
    public func matches(_ machine: String) -> Bool {
        patterns.contains { pattern in
            guard pattern.unicodeScalars.last == "*" else { return machine == pattern }
            return machine.unicodeScalars.starts(with: pattern.unicodeScalars.dropLast())
        }
    }
}

/// Which accelerator runs the guest.
public enum Accelerator: String, Sendable, CaseIterable {
    /// Hardware virtualization; the default in labs.
    case kvm
    /// QEMU's software emulation; needed where KVM is unavailable or broken (nested setups).
    case tcg
}
