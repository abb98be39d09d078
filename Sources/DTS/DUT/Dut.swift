/// Settings that apply to a whole run.
public struct RunSettings: Sendable {
    /// The directory holding `virt_global.cfg`, `<suite>.cfg`, `crbs.cfg`, `execution.cfg`.
    public var confDirectory: String
    /// Overrides every VM's `enable_kvm` (`--accel`, `DTS_ACCEL`).
    public var accelerator: Accelerator?
    /// Where VMs keep their logs after they stop (`<dir>/<vm>`); `dts run` sets `<output>/vms`.
    public var vmLogDirectory: String?
    /// Overrides every VM's `start warm=` (`--boot`, `DTS_BOOT`).
    public var boot: BootMode?
    /// This machine's snapshot cache (warm boot); a remote DUT's is in its home directory.
    public var snapshots: SnapshotCache
    /// Sees every start stage of the run's VMs (the live progress line), unless a start names its
    /// own ``VMStartOptions/onStage``.
    public var onVMStage: (@Sendable (VMStageEvent) -> Void)?
    /// The emulator for every VM, overriding `qemu path=` (`--qemu PATH`).
    public var qemuPath: String?
    /// Perf cases write measured throughput back into their suite's config where it says
    /// `update_expected = True` (`dts run --update-expected`, DTS's `--update-expected`).
    public var updateExpected: Bool

    public init(confDirectory: String = "conf", accelerator: Accelerator? = nil, vmLogDirectory: String? = nil,
                qemuPath: String? = nil, boot: BootMode? = nil, snapshots: SnapshotCache = SnapshotCache(),
                updateExpected: Bool = false) {
        self.confDirectory = confDirectory
        self.accelerator = accelerator
        self.vmLogDirectory = vmLogDirectory
        self.qemuPath = qemuPath
        self.boot = boot
        self.snapshots = snapshots
        self.updateExpected = updateExpected
    }

    /// What these settings ask of every VM's command line: the accelerator, the emulator and the boot.
    public var buildOptions: QEMUBuildOptions { QEMUBuildOptions(accelerator: accelerator, emulator: qemuPath, boot: boot) }
}

/// The host DUT (device under test): the machine QEMU runs on.
///
/// DTS's `Dut`. VMs are created on it with ``QEMUKvm``. Commands go through ``session``
/// (a ``LocalSession`` for this machine, SSH for a remote DUT); ``sendExpect(_:_:timeout:)`` uses
/// one main interactive shell opened on first use, as DTS's `dut.send_expect` does.
public final class Dut: Sendable {
    /// A name for logs (the DUT's address in DTS's crbs.cfg).
    public let name: String
    /// Run-wide settings.
    public let settings: RunSettings
    /// The connection to the DUT.
    public let session: any DUTSession
    /// The run the DUT belongs to: its VMs' directory and ports, the cleanups of what is started on
    /// this DUT, the boot timeline.
    public let run: Run
    private let mainShell = MainShell()
    /// The VM host made for this DUT when it is remote (one per DUT, its directory there per run).
    let vmHost = VMHostSlot()

    /// Creates a DUT of `run`. The default session is the local machine.
    public init(name: String = "localhost", settings: RunSettings = RunSettings(),
                session: (any DUTSession)? = nil, run: Run) {
        self.name = name
        self.settings = settings
        self.session = session ?? LocalSession(endpoint: name)
        self.run = run
    }

    /// Runs `command` through the DUT's shell (`/bin/sh -c` locally) and returns status and output.
    public func exec(_ command: String, timeout: Duration = .seconds(60)) async throws -> ExecResult {
        try await session.exec(command, timeout: timeout)
    }

    /// Runs an argument vector, each argument quoted.
    public func exec(argv: [String], timeout: Duration = .seconds(60)) async throws -> ExecResult {
        try await session.exec(argv: argv, timeout: timeout)
    }

    /// DTS `send_expect` on the DUT's main shell (opened on first use).
    public func sendExpect(_ command: String, _ expected: Expectation, timeout: Duration = .seconds(15)) async throws -> String {
        try await mainShell.shell(session).sendExpect(command, expected, timeout: timeout)
    }

    /// DTS `send_command` on the main shell.
    public func sendCommand(_ command: String, timeout: Duration = .seconds(1)) async throws -> String {
        try await mainShell.shell(session).sendCommand(command, timeout: timeout)
    }

    /// Ctrl-C on the main shell.
    public func sendControlC() async throws {
        try await mainShell.shell(session).sendControlC()
    }

    /// Copies a local file to the DUT (DTS `session.copy_file_to`).
    public func upload(_ localPath: String, to remotePath: String, mode: Int32? = nil, progress: CopyProgress? = nil) async throws {
        try await session.upload(localPath: localPath, remotePath: remotePath, mode: mode, progress: progress)
    }

    /// Copies a file from the DUT (DTS `session.copy_file_from`).
    public func download(_ remotePath: String, to localPath: String, progress: CopyProgress? = nil) async throws {
        try await session.download(remotePath: remotePath, localPath: localPath, progress: progress)
    }

    /// Closes the main shell and the session.
    public func close() async {
        await mainShell.close()
        await session.close()
    }
}

/// The DUT's main shell, opened once.
private actor MainShell {
    private var current: (any InteractiveSession)?

    func shell(_ session: any DUTSession) async throws -> any InteractiveSession {
        if let current { return current }
        let shell = try await session.openShell()
        current = shell
        return shell
    }

    func close() async {
        await current?.close()
        current = nil
    }
}
