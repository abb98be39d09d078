@testable import DTS
import DTSProcess
import DTSTestSupport
import Foundation
import Testing

extension RealGuestTests {
/// DTS's VM options on a real guest (issue #12): one VM with two virtio-crypto devices served by
/// DPDK's vhost_crypto, a human monitor on an allocated TCP port, two vCPUs pinned round robin
/// to one host CPU, and two emulators listed of which one exists.
@Suite struct DTSLegacyGuestTests {
    @Test func cryptoMonitorPinningAndEmulatorChoiceOnABootedGuest() async throws {
        try VMFixture.requireGuestImage()
        let cpu = HostFacts.onlineCPUs().last ?? 0
        let fixture = try VMFixture(["vm0": VMFixture.guest + """

            mem = size=256;
            cpu = model=host,number=2,cpupin=\(cpu);
            crypto = enable=yes,opt_num=2;
            monitor = port=;
            qemu =
                path=/usr/bin/qemu-system-x86_64;
                path=/opt/no-such-qemu/bin/qemu-system-x86_64;
            """])
        let run = testRun()
        try await withTearDown(run) {
            let vm = try fixture.vm(run: run)
            #expect(vm.qemuPaths == ["/usr/bin/qemu-system-x86_64", "/opt/no-such-qemu/bin/qemu-system-x86_64"])
            #expect(try await vm.resolvedEmulator() == "/usr/bin/qemu-system-x86_64")

            // The backend listens on DTS's socket names before the VM starts.
            let sockets = try await vm.cryptoSocketPaths()
            let directory = try run.directory.vmPath("vm0")
            #expect(sockets == [directory + "/vm0_crypto0.sock", directory + "/vm0_crypto1.sock"])
            let backend = try await VhostCryptoBackend.start(sockets: sockets, log: fixture.dir.path + "/vhost-crypto.log")
            do {
                let guest = try await vm.start()
                let instance = try #require(vm.instance)
                let command = instance.command
                #expect(command.paths.cryptoSockets == sockets)

                // The guest sees both virtio-crypto devices (1af4:1054) on its PCI bus.
                let ids = try await guest.exec(#"for d in /sys/bus/pci/devices/*; do echo "$(cat $d/vendor):$(cat $d/device)"; done"#,
                                               timeout: .seconds(20))
                #expect(ids.output.split(separator: "\n").filter { $0 == "0x1af4:0x1054" }.count == 2, "guest PCI ids:\n\(ids.output)")
                for socket in sockets {
                    #expect(backend.output.contains("(\(socket)) read message VHOST_USER_SET_OWNER"), "no vhost-user session on \(socket)")
                }

                // The human monitor on its allocated loopback port.
                let port = try #require(command.ports.monitor)
                let status = try await HumanMonitor.command("info status", port: port)
                #expect(status.contains("VM status: running"), "monitor on \(port): \(status)")

                // Both vCPUs on the one listed CPU, and the whole QEMU under taskset on it.
                #expect(command.cpuPinning == [cpu, cpu])
                for thread in try await guest.qmp.queryCPUsFast() {
                    #expect(CPUAffinity.allowedList(pid: instance.pid, thread: Int32(thread.threadID)) == [cpu])
                }
                #expect(CPUAffinity.allowedList(pid: instance.pid, thread: instance.pid) == [cpu])

                // The existing emulator of the two runs, with warnings naming what dts did.
                let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(instance.pid)/exe")
                #expect(exe == "/usr/bin/qemu-system-x86_64")
                #expect(command.warnings.contains { $0.key == "qemu" && $0.message.contains("skipped: /opt/no-such-qemu/bin/qemu-system-x86_64") },
                        "\(command.warnings)")
                #expect(command.warnings.contains { $0.key == "cpu" && $0.message.contains("cpupin lists 1 host CPU for 2 vCPUs") },
                        "\(command.warnings)")
                await vm.stop()
            } catch {
                await backend.stop()
                throw error
            }
            await backend.stop()
        }
    }
}
}
