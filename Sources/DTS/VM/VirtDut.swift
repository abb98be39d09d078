import DTSControl
import DTSSSH
import Foundation
import Synchronization

/// A VM as a DUT (DTS's `VirtDut`): the same API as the host DUT (`exec`, `sendExpect`, file
/// copy), over SSH through the VM's forwarded port, plus the VM's control channels.
public final class VirtDut: DUTSession, Sendable {
    /// The VM's name.
    public let vmName: String
    /// The SSH connection to the guest.
    public let ssh: SSHConnection
    /// The VM's QMP client.
    public let qmp: QMPClient
    /// The guest agent, when configured.
    public let guestAgent: GuestAgentClient?
    /// Passthrough ids (`pt_0`, ...) to guest PCI addresses.
    public let pciMap: PCIMap
    /// The command line the VM was started with.
    public let command: QEMUCommandLine
    /// What ``portsInfo()`` learnt about the test NICs (their MACs while the kernel owned them).
    let portCache = GuestPortCache()

    /// Commands and shells go through the same wrapper as a remote host DUT's: shells return
    /// output without the prompt's head, and commands that time out are killed in the guest.
    private let session: any DUTSession
    private let mainShell = Mutex<(any InteractiveSession)?>(nil)

    init(vmName: String, ssh: SSHConnection, qmp: QMPClient, guestAgent: GuestAgentClient?, pciMap: PCIMap, command: QEMUCommandLine,
         log: (any SessionLogSink)? = nil) {
        self.vmName = vmName
        self.ssh = ssh
        // Commands, shells and copies go to the case logs like the host DUT's, passwords redacted.
        let wrapped = RemoteHostSession(ssh)
        self.session = log.map { LoggingSession(wrapping: wrapped, log: $0) } ?? wrapped
        self.qmp = qmp
        self.guestAgent = guestAgent
        self.pciMap = pciMap
        self.command = command
    }

    public var endpoint: String { ssh.endpoint }
    public var location: SessionLocation { session.location }
    public var sessionLog: (any SessionLogSink)? { session.sessionLog }

    public func exec(_ command: String, timeout: Duration = .seconds(60)) async throws -> ExecResult {
        try await session.exec(command, timeout: timeout)
    }

    public func openShell() async throws -> any InteractiveSession { try await session.openShell() }

    public func upload(localPath: String, remotePath: String, mode: Int32?, progress: CopyProgress?) async throws {
        try await ssh.upload(localPath: localPath, remotePath: remotePath, mode: mode, progress: progress)
    }

    public func download(remotePath: String, localPath: String, progress: CopyProgress?) async throws {
        try await ssh.download(remotePath: remotePath, localPath: localPath, progress: progress)
    }

    /// DTS's `send_expect` on the VM's main shell (opened on first use).
    public func sendExpect(_ command: String, _ expected: Expectation, timeout: Duration = .seconds(15)) async throws -> String {
        try await shell().sendExpect(command, expected, timeout: timeout)
    }

    /// DTS's `send_command` on the main shell.
    public func sendCommand(_ command: String, timeout: Duration = .seconds(5)) async throws -> String {
        try await shell().sendCommand(command, timeout: timeout)
    }

    private func shell() async throws -> any InteractiveSession {
        if let existing = mainShell.withLock({ $0 }) { return existing }
        let opened = try await session.openShell()
        return mainShell.withLock { mainShell in
            if let existing = mainShell { Task { await opened.close() }; return existing }
            mainShell = opened
            return opened
        }
    }

    /// DTS's `def_driver`: the driver DPDK binds this VM's test NICs to (name, and mode for
    /// vfio-pci), from the VM's config; `nil` when the config names none.
    public var defaultDriver: QEMUCommandLine.DefaultDriver? { command.defaultDriver }

    /// The guest PCI address of a passthrough device (`pt_0`).
    public func guestPCIAddress(of id: String) throws -> PCIAddress { try pciMap.address(of: id) }

    /// DTS's `kill_all`: stops DPDK applications in the guest and closes the main shell.
    public func killAll() async {
        // Debian's busybox has no pkill: killall by name.
        _ = try? await ssh.exec("killall -9 dpdk-testpmd dpdk-pdump dpdk-proc-info 2>/dev/null; true", timeout: .seconds(10))
        let shell = mainShell.withLock { mainShell in defer { mainShell = nil }; return mainShell }
        await shell?.close()
    }

    public func close() async {
        let shell = mainShell.withLock { mainShell in defer { mainShell = nil }; return mainShell }
        await shell?.close()
        await session.close()
    }
}
