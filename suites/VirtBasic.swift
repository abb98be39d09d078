import DTS
import DTSControl
import Foundation

/// `virt_basic`: one VM from `conf/virt_basic.cfg`, booted and checked end to end: its kernel over
/// SSH and through the guest agent, file copy in and out, the management NIC at 00:1f.0, and a
/// stop/start cycle.
final class VirtBasic: TestSuite {
    static let name = "virt_basic"
    static let cases: [TestCase<VirtBasic>] = [
        .functional("test_vm_kernel") { try await $0.testVMKernel() },
        .functional("test_vm_file_copy") { try await $0.testFileCopy() },
        .functional("test_vm_guest_agent") { try await $0.testGuestAgent() },
        .functional("test_vm_management_nic") { try await $0.testManagementNIC() },
        .functional("test_vm_restart", timeout: .seconds(600)) { try await $0.testRestart() },
    ]
    static var defaultCaseTimeout: Duration { .seconds(120) }

    let context: TestContext
    private var kvm: QEMUKvm?
    private var vm: VirtDut?

    init(context: TestContext) { self.context = context }

    func setUpAll() async throws {
        let kvm = try QEMUKvm(dut: context.dut, vmName: "vm0", suite: Self.name)
        self.kvm = kvm
        vm = try await kvm.start()
    }

    func tearDownAll() async throws {
        await kvm?.stop()
    }

    private func guest() throws -> VirtDut {
        guard let vm else { throw TestFailure(message: "no VM DUT") }
        return vm
    }

    /// The guest runs its own kernel: SSH and the guest agent see the same release, and its boot
    /// id is not the host's.
    func testVMKernel() async throws {
        let vm = try guest()
        let overSSH = try await vm.exec("uname -r", timeout: .seconds(20))
        try verify(overSSH.succeeded, "uname -r over SSH exited \(overSSH.status)")
        let agent = try vm.guestAgent.orFail("the VM has no guest agent")
        let overAgent = try await agent.run(path: "/bin/uname", args: ["-r"], timeout: .seconds(20))
        try verify(overAgent.exitCode == 0 && overAgent.stdoutText == overSSH.output,
                   "uname -r: SSH says '\(overSSH.output)', the guest agent '\(overAgent.stdoutText)'")
        let guestBoot = try await vm.exec("cat /proc/sys/kernel/random/boot_id", timeout: .seconds(20)).output
        let hostBoot = try await context.dut.exec("cat /proc/sys/kernel/random/boot_id", timeout: .seconds(20)).output
        try verify(!guestBoot.isEmpty && guestBoot != hostBoot, "the guest's boot id equals the host's: not a VM?")
    }

    /// A file copied in and back out is unchanged, and the guest computes the same checksum.
    func testFileCopy() async throws {
        let vm = try guest()
        let dir = try context.artifactDirectory()
        let local = dir + "/payload.bin", back = dir + "/payload.back"
        var bytes = [UInt8](repeating: 0, count: 2 << 20)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 7) }
        try Data(bytes).write(to: URL(fileURLWithPath: local))
        try await vm.upload(localPath: local, remotePath: "/tmp/payload.bin", mode: 0o640, progress: nil)
        let remoteSum = try await vm.exec("sha256sum /tmp/payload.bin", timeout: .seconds(30))
        let localSum = try await context.dut.exec(argv: ["sha256sum", local], timeout: .seconds(30))
        try verify(remoteSum.output.prefix(64) == localSum.output.prefix(64), "checksums differ: guest \(remoteSum.output), host \(localSum.output)")
        let mode = try await vm.exec("stat -c %a /tmp/payload.bin", timeout: .seconds(10)).output
        try verify(mode.hasPrefix("640"), "mode in the guest is \(mode)")
        try await vm.download(remotePath: "/tmp/payload.bin", localPath: back, progress: nil)
        try verify(FileManager.default.contentsEqual(atPath: local, andPath: back), "the file came back changed")
    }

    /// The guest agent answers and reports the management interface with QEMU's DHCP address.
    func testGuestAgent() async throws {
        let agent = try guest().guestAgent.orFail("the VM has no guest agent")
        try await agent.ping()
        let interfaces = try await agent.networkInterfaces()
        let management = try interfaces.first { $0.name == "host_connect" }.orFail("no host_connect in \(interfaces.map(\.name))")
        try verify(management.addresses.contains { $0.address == "10.0.2.15" },
                   "host_connect has \(management.addresses.map(\.address)), expected 10.0.2.15")
    }

    /// The management e1000 sits at guest PCI 00:1f.0 and is named host_connect in the guest.
    func testManagementNIC() async throws {
        let vm = try guest()
        let pci = try await vm.qmp.infoPCI()
        let nic = try pci.first { $0.address.slot == 0x1f }.orFail("nothing at guest PCI slot 0x1f")
        try verify(nic.vendorID == 0x8086 && nic.deviceID == 0x100e, "slot 0x1f holds \(nic.vendorDevice), not an e1000")
        let link = try await vm.exec("readlink -f /sys/class/net/host_connect/device", timeout: .seconds(10))
        try verify(link.output.trimmingCharacters(in: .whitespacesAndNewlines).hasSuffix("0000:00:1f.0"),
                   "host_connect is \(link.output)")
    }

    /// Stopping leaves no QEMU; starting again gives a working VM DUT.
    func testRestart() async throws {
        let kvm = try self.kvm.orFail("no VM")
        let pid = try kvm.instance.orFail("VM not running").pid
        await kvm.stop()
        vm = nil
        try verify(kill(pid, 0) != 0, "QEMU \(pid) still runs after stop()")
        vm = try await kvm.start()
        let result = try await guest().exec("true", timeout: .seconds(20))
        try verify(result.succeeded, "the restarted VM does not run commands")
    }
}

extension Optional {
    /// The value, or a test failure with `message`.
    func orFail(_ message: String) throws -> Wrapped {
        guard let self else { throw TestFailure(message: message) }
        return self
    }
}
