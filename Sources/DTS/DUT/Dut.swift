/// Settings that apply to a whole run.
public struct RunSettings: Sendable {
    /// The directory holding `virt_global.cfg`, `<suite>.cfg`, `crbs.cfg`, `execution.cfg`.
    public var confDirectory: String
    /// Overrides every VM's `enable_kvm` (`--accel`, `DTS_ACCEL`).
    public var accelerator: Accelerator?

    public init(confDirectory: String = "conf", accelerator: Accelerator? = nil) {
        self.confDirectory = confDirectory
        self.accelerator = accelerator
    }
}

/// The host DUT (device under test): the machine QEMU runs on.
///
/// DTS's `Dut`. VMs are created on it with ``QEMUKvm``.
public final class Dut: Sendable {
    /// A name for logs (the DUT's address in DTS's crbs.cfg).
    public let name: String
    /// Run-wide settings.
    public let settings: RunSettings

    public init(name: String = "localhost", settings: RunSettings = RunSettings()) {
        self.name = name
        self.settings = settings
    }
}
