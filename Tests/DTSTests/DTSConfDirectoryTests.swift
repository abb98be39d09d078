@testable import DTS
import DTSTestSupport
import Foundation
import Testing

/// A DTS lab's `conf/` works unchanged (issue #12): `Fixtures/dts-conf` has DTS's stock
/// virt_global.cfg and suite configs of every kind DTS ships (written for these tests, in DTS's
/// shape). `dts config check` reads only what dts loads and passes with warnings and notes; a
/// typo inside a VM section still fails.
@Suite struct DTSConfDirectoryTests {
    static let fixture = GoldenCase.directory + "/../../Fixtures/dts-conf"

    /// A scratch copy of the fixture, with `changes` applied (file name → new text).
    static func copy(_ changes: [String: String] = [:]) throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory("dts-dtsconf")
        for name in try FileManager.default.contentsOfDirectory(atPath: fixture) {
            try FileManager.default.copyItem(atPath: fixture + "/" + name, toPath: dir.path + "/" + name)
        }
        for (name, text) in changes { try text.write(toFile: dir.path + "/" + name, atomically: true, encoding: .utf8) }
        return dir
    }

    @Test func configCheckPassesOnADTSConfDirectory() async throws {
        let result = try await DTSBinary.run(["config", "check", "--conf-dir", Self.fixture, "--accel", "tcg"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let stderr = result.stderr.split(separator: "\n").map(String.init)
        #expect(stderr.allSatisfy { $0.contains(": warning: ") }, "errors:\n\(result.stderr)")
        // Each legacy form warns once, at its line.
        for expected in [
            "port_control.cfg:12: warning: [vm0] net: option 'netdev' of type=nic is accepted for DTS configs and ignored",
            "pvp_diff_qemu_version.cfg:18: warning: [vm0] qemu: none of /home/QEMU/qemu-6.2.0/bin/qemu-system-x86_64, /home/QEMU/qemu-7.2.0/bin/qemu-system-x86_64 is an executable file",
            "vf_pf_reset.cfg:4: warning: [vm0] cpu: cpupin lists 7 host CPUs for 4 vCPUs",
            "sriov_kvm.cfg:11: warning: [vm0] net: no net forwards a host port to guest port 22",
        ] {
            #expect(stderr.contains { $0.contains(expected) }, "missing: \(expected)\n\(result.stderr)")
        }
        // The other hypervisors' sections are not read, and said so.
        #expect(result.stdout.contains("virt_global.cfg:2: note: [LIBVIRT] not used"), "\(result.stdout)")
        #expect(result.stdout.contains("virt_global.cfg:23: note: [XEN] not used"), "\(result.stdout)")
        #expect(result.stdout.contains("17 files OK (7 warnings)"), "\(result.stdout)")
    }

    @Test func aTypoInAVMSectionStillFails() async throws {
        let text = try String(contentsOfFile: Self.fixture + "/vhost_sample.cfg", encoding: .utf8)
            .replacingOccurrences(of: "size=4096,hugepage=yes", with: "size=4096,hugepages=yes")
        let dir = try Self.copy(["vhost_sample.cfg": text, "sriov_kvm.cfg": "[vm0]\ncpu = model=host,numbr=2;\n"])
        let result = try await DTSBinary.run(["config", "check", "--conf-dir", dir.path, "--accel", "tcg"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("vhost_sample.cfg:6: [vm0] mem: unknown option 'hugepages' (did you mean 'hugepage'?)"), "\(result.stderr)")
        #expect(result.stderr.contains("sriov_kvm.cfg:2: [vm0] cpu: unknown option 'numbr' (did you mean 'number'?)"), "\(result.stderr)")
        // And so does a typo in a VM section a suite names (vhost_user_live_migration's backup).
        let live = try String(contentsOfFile: Self.fixture + "/vhost_user_live_migration.cfg", encoding: .utf8)
            .replacingOccurrences(of: "enable=yes,port=4444", with: "enable=yes,portt=4444")
        let other = try Self.copy(["vhost_user_live_migration.cfg": live])
        let named = try await DTSBinary.run(["config", "check", other.path + "/vhost_user_live_migration.cfg", "--accel", "tcg"])
        #expect(named.status == 2)
        #expect(named.stderr.contains("[backup] migration: unknown option 'portt' (did you mean 'port'?)"), "\(named.stderr)")
    }

    @Test func sceneFilesAreNotRead() async throws {
        let result = try await DTSBinary.run(["config", "check", Self.fixture + "/scene/vf_passthrough.cfg"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("note: not used: a DTS scene file"), "\(result.stdout)")
    }

    /// The original DTS's stock virt_global.cfg beside dts's conf/vxlan_sample.cfg gives the same
    /// machine as dts's own virt_global.cfg: the suite's [vm0] sets cpu and mem, [KVM] the rest;
    /// only the guest driver's mode (a fact, not an argument) differs.
    @Test func stockVirtGlobalBesideVxlanSampleGivesTheSameMachine() throws {
        let dir = try TemporaryDirectory("dts-stockglobal")
        try FileManager.default.copyItem(atPath: Self.fixture + "/virt_global.cfg", toPath: dir.path + "/virt_global.cfg")
        try FileManager.default.copyItem(atPath: DTSBinary.packageRoot + "/conf/vxlan_sample.cfg", toPath: dir.path + "/vxlan_sample.cfg")
        func build(_ confDirectory: String) throws -> QEMUCommandLine {
            let kvm = try QEMUKvm(dut: Dut(settings: RunSettings(confDirectory: confDirectory, accelerator: .tcg), run: Run()),
                                  vmName: "vm0", suite: "vxlan_sample")
            for (index, mac) in ["00:00:20:00:00:20", "00:00:20:00:00:21"].enumerated() {
                try kvm.setVMDevice(["driver": "vhost-user", "opt_path": "/tmp/vhost\(index).sock", "opt_server": "yes", "opt_mac": mac])
            }
            return try kvm.commandLine(allocator: StaticAllocator(runtimeRoot: "/run/dts/golden", onlineCPUs: [0, 1], executables: []))
        }
        let stock = try build(dir.path)
        let own = try build(DTSBinary.packageRoot + "/conf")
        #expect(stock.command == own.command)
        #expect(stock.warnings.isEmpty, "\(stock.warnings)")
        #expect(own.defaultDriver == .init(name: "vfio-pci"))
        #expect(stock.defaultDriver == .init(name: "vfio-pci", mode: "noiommu"))
        var stockFacts = stock
        stockFacts.defaultDriver = own.defaultDriver
        #expect(stockFacts == own)
    }
}
