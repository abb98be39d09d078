@testable import DTS
import DTSTestSupport
import Foundation
import Testing

/// The forms DTS's configs and suites write, read as DTS read them (issue #12); the command
/// lines they give are in the golden files, this checks the reading around them.
@Suite struct DTSLegacyFormsTests {
    static func conf(_ files: [String: String]) throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory("dts-legacy")
        for (name, text) in files { try text.write(toFile: dir.path + "/" + name, atomically: true, encoding: .utf8) }
        return dir
    }

    static func vm(_ dir: TemporaryDirectory, suite: String = "s", vm: String = "vm0") throws -> QEMUKvm {
        try QEMUKvm(dut: Dut(settings: RunSettings(confDirectory: dir.path, accelerator: .tcg), run: Run()), vmName: vm, suite: suite)
    }

    static let allocator = StaticAllocator(runtimeRoot: "/run/dts/t", executables: [])

    @Test func vmSectionsAreVMsAndNamedOnes() {
        #expect(VirtConfig.isVMSection("vm0", suite: "any"))
        #expect(VirtConfig.isVMSection("vm_backup", suite: "any"))
        #expect(!VirtConfig.isVMSection("suite", suite: "any"))
        #expect(!VirtConfig.isVMSection("test_fips_aes", suite: "any"))
        #expect(!VirtConfig.isVMSection("host", suite: "any"))
        #expect(VirtConfig.isVMSection("host", suite: "vhost_user_live_migration"))
        #expect(VirtConfig.isVMSection("backup", suite: "vhost_user_live_migration"))
        // By scalar, as Python's startswith: "v" + "m" + a combining mark still starts with "vm".
        #expect(VirtConfig.isVMSection("vm\u{301}0", suite: "any"))
    }

    @Test func problemsOfTheSuiteOwnSectionsDoNotStopAVM() throws {
        let dir = try Self.conf([
            "virt_global.cfg": "[LIBVIRT]\ncpu =\n    number=4\nbroken line\n[KVM]\nmem = size=256;\n[XEN]\nvif =\n    mac=random,bridge=br0\n",
            "s.cfg": "[suite]\nparams = {\n    'a': 1,\n}\n[vm0]\nlogin = user=root;\n",
        ])
        let kvm = try Self.vm(dir)
        #expect(kvm.memoryMiB == 256)
        // The same problem inside the VM's section is an error with its line.
        try "[vm0]\nlogin = user=root;\nparams = {\n}\n".write(toFile: dir.path + "/s.cfg", atomically: true, encoding: .utf8)
        #expect { _ = try Self.vm(dir) } throws: { error in "\(error)".contains("s.cfg:4: [vm0] expected 'key = value'") }
        // And in [KVM] of virt_global.cfg.
        try "[KVM]\nmem = size=256;\n}\n".write(toFile: dir.path + "/virt_global.cfg", atomically: true, encoding: .utf8)
        try "[vm0]\nlogin = user=root;\n".write(toFile: dir.path + "/s.cfg", atomically: true, encoding: .utf8)
        #expect { _ = try Self.vm(dir) } throws: { error in "\(error)".contains("virt_global.cfg:3: [KVM] expected 'key = value'") }
    }

    @Test func lenientReadingLocatesEachProblemInItsSection() throws {
        let dir = try Self.conf(["f.cfg": "no section here\n[suite]\nx = {\n}\n[vm0]\ncpu = number=1;\n"])
        let (file, errors) = ConfFile.lenient(contentsOf: dir.path + "/f.cfg")
        #expect(file?.sections.map(\.name) == ["suite", "vm0"])
        #expect(file?.section("vm0")?.item("cpu") != nil)
        #expect(errors.map(\.location.line) == [1, 4])
        #expect(errors.map(\.location.section) == [nil, "suite"])
        #expect(throws: ConfigErrors.self) { _ = try ConfFile(contentsOf: dir.path + "/f.cfg") }
    }

    /// DTS suites build `opt_path = base_dir + "/vhost-net0" + ",server"` and set
    /// `opt_server = "server"` in code: both mean QEMU listens.
    @Test func vhostUserServerModeAsSuitesWriteIt() throws {
        let dir = try Self.conf(["s.cfg": "[vm0]\nmem = size=256;\nlogin = user=root;\n"])
        let kvm = try Self.vm(dir)
        try kvm.setVMDevice(["driver": "vhost-user", "opt_path": "/root/dpdk/vhost-net0,server", "opt_mac": "00:00:20:00:00:20"])
        try kvm.setVMDevice(["driver": "vhost-user", "opt_path": "./vhost-net1", "opt_server": "server", "opt_queue": "2"])
        try kvm.setVMDevice(["driver": "vhost-user", "opt_path": "vhost-net2", "opt_server": "off"])
        #expect(throws: ConfigErrors.self) { try kvm.setVMDevice(["driver": "vhost-user", "opt_path": "x", "opt_server": "maybe"]) }
        let chardevs = try kvm.commandLine(allocator: Self.allocator).options.filter { $0.name == "-chardev" && $0.value?.contains("vhostchar") == true }
        #expect(chardevs.map(\.value) == [
            "socket,id=vhostchar0,path=/root/dpdk/vhost-net0,server=on,wait=off",
            "socket,id=vhostchar1,path=/run/dts/t/vhost-net1,server=on,wait=off",
            "socket,id=vhostchar2,path=/run/dts/t/vhost-net2",
        ])
        #expect(chardevs[0].note?.contains("ends in ',server'") == true)
        #expect(chardevs[1].note?.contains("relative") == true)
    }

    @Test func defDriverEntriesMergeKeyByKey() throws {
        let dir = try Self.conf([
            "virt_global.cfg": "[KVM]\ndef_driver =\n    driver_name=vfio-pci;\n    driver_mode=noiommu;\n",
            "s.cfg": "[vm0]\nlogin = user=root;\n[vm1]\nlogin = user=root;\ndef_driver = driver_name=uio_pci_generic;\n",
        ])
        #expect(try Self.vm(dir).commandLine(allocator: Self.allocator).defaultDriver == .init(name: "vfio-pci", mode: "noiommu"))
        // A section's def_driver replaces the global one whole, as every parameter does.
        #expect(try Self.vm(dir, vm: "vm1").commandLine(allocator: Self.allocator).defaultDriver == .init(name: "uio_pci_generic"))
        #expect(QEMUCommandLine.DefaultDriver(name: "vfio-pci", mode: "noiommu").description == "vfio-pci (noiommu)")
    }

    @Test func monitorPortValues() throws {
        let spec = VMParamSchema.monitor
        func check(_ text: String) throws -> [ConfigError] {
            let entries = try VirtValueParser.parse(text, file: "t", key: "monitor")
            return spec.validate(VirtParam(name: "monitor", entries: entries, location: .builtIn()))
        }
        #expect(try check("port=;").isEmpty)
        #expect(try check("port=4444;").isEmpty)
        #expect(try check("port=70000;").first?.message.contains("a port from 1 to 65535, or nothing to allocate one") == true)
        #expect(try check("port=x;").count == 1)
    }

    /// `-incoming` listens where the VM's host is reached: the DUT's own address for a remote DUT
    /// (its allocator), the loopback address on this machine (the run's allocator).
    @Test func incomingMigrationListensOnTheDUTAddress() async throws {
        let dir = try Self.conf(["s.cfg": "[vm0]\nlogin = user=root;\nmigration = enable=yes,port=4444;\n"])
        let remote = RemoteResourceAllocator(root: "/tmp/dts-vms.x", listenAddress: "192.0.2.10", hugepageMount: nil,
                                             imageDirectory: "/root/.cache/dts/images", hostArchitecture: "x86_64", salt: "t")
        let onDUT = try Self.vm(dir).commandLine(allocator: remote)
        #expect(onDUT.argv.contains("tcp:192.0.2.10:4444"))
        let run = testRun()
        try await withTearDown(run) {
            let here = try Self.vm(dir).commandLine(allocator: try run.allocator)
            #expect(here.argv.contains("tcp:127.0.0.1:4444"))
        }
    }

    /// cpupin with no CPU online on the VM's host fails the start at `prepare`, before QEMU runs,
    /// with the CPUs named; `vm cmdline` does not hold it to this host.
    @Test func aStartWithEveryPinnedCPUOfflineFailsAtPrepare() async throws {
        let dir = try Self.conf(["s.cfg": "[vm0]\nlogin = user=root;\ncpu = model=host,number=2,cpupin=4094 4095;\n"])
        #expect(try Self.vm(dir).commandLine(allocator: Self.allocator).cpuPinning == [4094, 4095])
        let run = testRun()
        try await withTearDown(run) {
            let kvm = try QEMUKvm(dut: Dut(settings: RunSettings(confDirectory: dir.path, accelerator: .tcg), run: run), vmName: "vm0", suite: "s")
            await #expect { try await kvm.start() } throws: { error in
                guard let error = error as? VMStartError else { return false }
                return error.stage == .prepare && "\(error.reason)".contains("none of the host CPUs of cpupin (4094,4095) is online on this host")
            }
            #expect(kvm.instance == nil)
        }
    }

    /// Every warning of the schema names an option DTS's configs or suites write.
    @Test func ignoredOptionsWarnOnce() throws {
        let entries = try VirtValueParser.parse("type=nic,opt_vlan=0,netdev=net1;type=user;", file: "t.cfg", line: 3, key: "net")
        let checked = VMParamSchema.check(VirtParam(name: "net", entries: entries, location: SourceLocation(file: "t.cfg", line: 3)))
        #expect(checked.errors.isEmpty)
        #expect(checked.warnings.map(\.description) == [
            "t.cfg:3: warning: net: option 'netdev' of type=nic is accepted for DTS configs and ignored: dts pairs each nic with a backend by opt_vlan and order; DTS ignored netdev= too",
        ])
    }
}
