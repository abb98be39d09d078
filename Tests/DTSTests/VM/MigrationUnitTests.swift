@testable import DTS
import DTSControl
import Foundation
import Testing

/// Live migration without guests: which machines may migrate into which.
@Suite struct MigrationUnitTests {
    typealias Machine = WarmBootUnitTests.Machine

    func command(_ machine: Machine, vm: String = "vm0", root: String, change: (QEMUKvm) throws -> Void = { _ in }) throws -> QEMUCommandLine {
        try machine.command(root: root, reserve: vm == "vm0" ? 0 : 1) { kvm in
            try kvm.setVMParam("migration", "enable=yes")
            try change(kvm)
        }
    }

    @Test func theSameMachineOnOtherPortsAndPathsMayMigrate() throws {
        let machine = try Machine()
        let source = try machine.command(root: "/run/dts/a")
        let destination = try command(machine, vm: "vm1", root: "/run/dts/b")
        #expect(destination.options.contains { $0.name == "-incoming" })
        #expect(MigrationCompatibility.differences(source: source, destination: destination) == [])
        // Another MAC on a NIC: it travels with the device's state.
        let otherMAC = try command(machine, root: "/run/dts/b") {
            try $0.setVMParam("net", "type=nic,opt_addr=1f,opt_macaddr=00:11:22:33:44:55;type=user")
        }
        #expect(MigrationCompatibility.differences(source: source, destination: otherMAC) == [])
    }

    @Test func differencesAreNamed() throws {
        let machine = try Machine()
        let source = try machine.command(root: "/run/dts/a")
        func differences(_ name: String, _ value: String) throws -> [String] {
            MigrationCompatibility.differences(source: source, destination: try command(machine, root: "/run/dts/b") { try $0.setVMParam(name, value) })
        }
        #expect(try differences("mem", "size=512") == ["memory (-m): source -m 256, destination -m 512"])
        let cpus = try differences("cpu", "model=host,number=2")
        #expect(cpus.count == 1 && cpus[0].hasPrefix("vCPUs (-smp): source -smp 1"), "\(cpus)")
        let device = try differences("device", "driver=virtio-net-pci,opt_netdev=hostnet0")
        #expect(device.count == 1 && device[0].hasPrefix("devices (-device): source has none of these, destination -device virtio-net-pci"), "\(device)")
        let kernel = try differences("kernel", "kernel_img=\(machine.kernel),initrd=\(machine.initrd),append=quiet")
        #expect(kernel.contains { $0.hasPrefix("kernel (-append)") }, "\(kernel)")
    }

    @Test func aSourceWithADiskOverlayIsRefused() throws {
        let machine = try Machine()
        let disk = try machine.dir.write("disk.img", "base")
        let withOverlay: (QEMUKvm) throws -> Void = { try $0.setVMParam("disk", "file=\(disk),opt_format=raw,opt_if=virtio,overlay=yes") }
        let source = try command(machine, root: "/run/dts/a", change: withOverlay)
        let destination = try command(machine, vm: "vm1", root: "/run/dts/b", change: withOverlay)
        #expect(MigrationCompatibility.differences(source: source, destination: destination)
                == ["disk \(disk): the source writes to a throw-away overlay (overlay=yes) that the destination cannot open; migrate VMs whose disks both ends share (without overlay=yes)"])
    }

    @Test func progressSummaryNamesWhatIsLeft() throws {
        let active = try JSONDecoder().decode(QMPMigrationInfo.self, from: Data("""
            {"status": "active", "total-time": 300, "ram": {"transferred": 41000000, "remaining": 227000000, "total": 268435456,
             "mbps": 1120.4, "dirty-pages-rate": 120}}
            """.utf8))
        #expect(active.progressSummary == "active, 41.0 MB of 268.4 MB sent, 1120 Mbit/s, 227.0 MB remaining, 120 dirty pages/s")
    }
}
