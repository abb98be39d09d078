/// The outcome of building a VM's command line: the emulator and its options, and everything
/// the framework needs to reach and manage the VM, so that nothing is parsed back out of argv.
public struct QEMUCommandLine: Sendable, Equatable {
    /// Paths the VM uses, all inside its private runtime directory unless configured otherwise.
    public struct Paths: Sendable, Equatable {
        public var runtimeDirectory: String
        public var qmpSocket: String
        public var monitorSocket: String?
        public var guestAgentSocket: String?
        public var serialSocket: String?
        public var pidFile: String?
        public var consoleLog: String
        /// The vhost-user crypto sockets QEMU connects to (`crypto`), in device order.
        public var cryptoSockets: [String] = []
    }

    /// Host ports and displays the VM listens on.
    public struct Ports: Sendable, Equatable {
        /// The host side of the forward to the guest's SSH port.
        public var ssh: Int?
        /// The address the SSH forward listens on.
        public var sshAddress: String?
        public var vncDisplay: Int?
        public var telnet: Int?
        public var migration: Int?
        /// The loopback TCP port of the human monitor (`monitor = port=N;`), if any.
        public var monitor: Int?
    }

    /// A host TCP port the config fixes (rather than leaving it to the allocator), and where.
    public struct FixedPort: Sendable, Equatable {
        /// The TCP port.
        public var port: Int
        /// What it is for (`a telnet port`, `the SSH forward`).
        public var what: String
        /// The parameter that fixes it.
        public var param: String
        /// Where the config fixes it.
        public var location: SourceLocation
    }

    /// Guest login credentials (`login` parameter).
    public struct Login: Sendable, Equatable {
        public var user: String
        public var password: String?
    }

    /// Deadlines and prompts from the `start` parameter.
    public struct StartSettings: Sendable, Equatable {
        public var waitSeconds: Int = 120
        public var loginTimeout: Int = 60
        public var loginPrompt: String = "login:"
        public var passwordPrompt: String = "Password:"
        /// `warm=`: whether starts may restore the VM from a snapshot (default yes).
        public var warm: Bool = true
        /// Where `warm=` was set, if a config set it.
        public var warmLocation: SourceLocation?
    }

    /// A file QEMU opens at start (`-kernel`, `-initrd`, a disk image), with what names it in messages.
    public struct InputFile: Sendable, Equatable {
        /// `-kernel`, `-initrd` or `disk file`.
        public var option: String
        /// The path on the VM's host.
        public var path: String
    }

    /// A throw-away qcow2 overlay over a disk image (`disk = ...,overlay=yes;`): dts makes it in
    /// the VM's runtime directory before QEMU starts (`qemu-img create -f qcow2 -b BASE -F FORMAT`,
    /// or a copy of the one saved with a snapshot), QEMU writes to it, and it is removed when the
    /// VM stops; the base image is only read.
    public struct DiskOverlay: Sendable, Equatable {
        /// The overlay file on the VM's host (in the runtime directory), the `-drive file=`.
        public var path: String
        /// The image it overlays.
        public var base: String
        /// The base image's format (`-F`).
        public var baseFormat: String

        /// The command that makes a fresh overlay: `qemu-img create -q -f qcow2 -b BASE -F FORMAT PATH`.
        public var createArgv: [String] { ["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", baseFormat, path] }
    }

    /// A host PCI device passed through to the guest, with the id used to find it in `info pci`.
    public struct Passthrough: Sendable, Equatable {
        public var id: String
        public var hostAddress: String
        public var driver: String
    }

    /// DTS's `def_driver`: the guest driver for the VM DUT's test NICs.
    public struct DefaultDriver: Sendable, Equatable, CustomStringConvertible {
        /// `vfio-pci`, `uio_pci_generic` or `igb_uio` (DTS's `driver_name`).
        public var name: String
        /// `noiommu` (vfio's `enable_unsafe_noiommu_mode=1`) or `iommu`, for vfio-pci (DTS's `driver_mode`).
        public var mode: String?

        public init(name: String, mode: String? = nil) {
            self.name = name
            self.mode = mode
        }

        /// `vfio-pci` or `vfio-pci (noiommu)`.
        public var description: String { name + (mode.map { " (\($0))" } ?? "") }
    }

    /// The VM's name.
    public var vmName: String
    /// The guest architecture.
    public var architecture: String
    /// The accelerator chosen.
    public var accelerator: Accelerator
    /// A command to run QEMU under, e.g. `taskset -c 2,3` when vCPUs are pinned.
    public var prefix: [String]
    /// The emulator binary.
    public var binary: String
    /// The options, in order, each with its value and note.
    public var options: [QEMUOption]
    public var paths: Paths
    public var ports: Ports
    public var login: Login?
    public var start: StartSettings
    /// The host CPU of each vCPU (vCPU i at index i), when pinned.
    public var cpuPinning: [Int]
    /// QEMU starts with `-S` (paused) so that vCPUs can be pinned before the guest runs.
    public var startsPaused: Bool
    /// QEMU daemonizes itself (`daemon = enable=yes`, or the build asked for it:
    /// ``QEMUBuildOptions/daemonize``).
    public var daemonize: Bool
    /// Guest memory in MiB (`mem size=`), if set.
    public var memoryMiB: Int?
    /// The hugetlbfs mount that backs guest memory (`mem hugepage=yes`), if any.
    public var hugepageMount: String?
    /// Files QEMU opens at start, in command-line order: they must exist on the VM's host.
    public var filesQEMUOpens: [InputFile]
    /// Whether a guest agent channel is configured.
    public var hasGuestAgent: Bool
    /// How the VM boots: restored from a snapshot where that is safe (``BootMode/warm``), or
    /// always from scratch (``BootMode/cold``).
    public var boot: BootMode
    /// What chose ``boot``: `the default`, `start warm=no at conf/x.cfg:12`, `the run's --boot (or DTS_BOOT)`.
    public var bootChoice: String
    /// Passthrough devices in order (`pt_0`, `pt_1`, ...).
    public var passthrough: [Passthrough]
    /// The driver the guest's test NICs are bound to for DPDK (`def_driver`), if set.
    public var defaultDriver: DefaultDriver?
    /// What the config says that dts accepts but does not follow to the letter, in parameter order.
    public var warnings: [ConfigWarning]
    /// Host ports the config fixes; the VM's host checks them before QEMU runs.
    public var fixedPorts: [FixedPort] = []
    /// The disk overlays dts makes before QEMU starts and removes when it stops, in `-drive` order.
    public var overlays: [DiskOverlay] = []

    /// The emulator and its arguments: ``binary``, then every option's ``QEMUOption/arguments``.
    public var argv: [String] { [binary] + options.flatMap(\.arguments) }

    /// The full command: ``prefix`` then ``argv``.
    public var command: [String] { prefix + argv }

    /// The command as one POSIX-shell line, each argument quoted as needed.
    public var shellLine: String { ShellQuoting.join(command) }
}
