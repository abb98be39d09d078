@testable import DTS
import DTSTestSupport
import Foundation
import Testing

/// Which emulator a VM runs (`qemu = path=A; path=B;`, `--qemu`, `setQemuEmulator`) and its
/// version, as DTS suites that compare QEMU versions ask; on this machine's real files and QEMU.
@Suite struct QEMUEmulatorTests {
    static let qemu = "/usr/bin/qemu-system-x86_64"

    func vm(_ section: String, qemuPath: String? = nil) throws -> QEMUKvm {
        let dir = try TemporaryDirectory("dts-emulator")
        try "[KVM]\nmem = size=256;\n".write(toFile: dir.path + "/virt_global.cfg", atomically: true, encoding: .utf8)
        try "[vm0]\n\(section)\n".write(toFile: dir.path + "/s.cfg", atomically: true, encoding: .utf8)
        return try QEMUKvm(dut: Dut(settings: RunSettings(confDirectory: dir.path, accelerator: .tcg, qemuPath: qemuPath), run: Run()),
                           vmName: "vm0", suite: "s")
    }

    @Test func versionOutputIsRead() {
        let output = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022 Fabrice Bellard\n"
        let version = QEMUVersion(versionOutput: output)
        #expect(version == QEMUVersion(major: 7, minor: 2, micro: 22))
        #expect(version?.description == "7.2")
        #expect(QEMUVersion(versionOutput: "QEMU emulator version 2.12\n") == QEMUVersion(major: 2, minor: 12))
        #expect(QEMUVersion(versionOutput: "qemu-img version 7.2.22") == nil)
        #expect(QEMUVersion(major: 2, minor: 12) < QEMUVersion(major: 7, minor: 2))
    }

    @Test func theLastExecutableOfSeveralPathsRunsAndItsVersionIsProbed() async throws {
        let kvm = try vm("qemu =\n    path=/opt/none/a/qemu-system-x86_64;\n    path=\(Self.qemu);\n    path=/opt/none/b/qemu-system-x86_64;")
        #expect(kvm.qemuPaths.count == 3)
        #expect(try await kvm.resolvedEmulator() == Self.qemu)
        let version = try await kvm.qemuVersion()
        let local = try await runProgram(Self.qemu, ["--version"])
        #expect(version == QEMUVersion(versionOutput: local.stdout))
        #expect(version.description.split(separator: ".").count == 2)
        await #expect(throws: (any Error).self) { _ = try await kvm.qemuVersion(of: "/opt/none/a/qemu-system-x86_64") }
    }

    @Test func setQemuEmulatorChecksThePathOnTheDUT() async throws {
        let kvm = try vm("login = user=root;")
        await #expect(throws: ConfigErrors.self) { try await kvm.setQemuEmulator("/opt/none/qemu-system-x86_64") }
        #expect(kvm.emulator == nil)
        try await kvm.setQemuEmulator(Self.qemu)
        #expect(kvm.emulator == Self.qemu)
        #expect(try await kvm.resolvedEmulator() == Self.qemu)
        let command = try kvm.commandLine(allocator: StaticAllocator(runtimeRoot: "/run/dts/t"))
        #expect(command.binary == Self.qemu)
        #expect(command.warnings.isEmpty)
    }

    @Test func aRunWideEmulatorWinsAndMustExist() throws {
        let kvm = try vm("qemu = path=/opt/none/qemu-system-x86_64;", qemuPath: Self.qemu)
        #expect(try kvm.commandLine(allocator: StaticAllocator(runtimeRoot: "/run/dts/t")).binary == Self.qemu)
        let missing = try vm("login = user=root;", qemuPath: "/opt/none/qemu-system-x86_64")
        #expect { _ = try missing.commandLine(allocator: StaticAllocator(runtimeRoot: "/run/dts/t")) } throws: { error in
            "\(error)".contains("the emulator chosen for this run (--qemu or setQemuEmulator), /opt/none/qemu-system-x86_64, is not an executable file on this host")
        }
    }

    @Test func qemuOptionOnTheCommandLine() async throws {
        let base = ["vm", "cmdline", "--conf-dir", GoldenCase.directory, "--suite", "qemu_paths", "--accel", "tcg"]
        let chosen = try await DTSBinary.run(base + ["--qemu", Self.qemu])
        #expect(chosen.status == 0, "\(chosen.stderr)")
        #expect(chosen.stdout.hasPrefix(Self.qemu + "\n"))
        #expect(!chosen.stderr.contains("warning"), "the run-wide choice replaces the config's list: \(chosen.stderr)")
        let missing = try await DTSBinary.run(base + ["--qemu", "/opt/none/qemu-system-x86_64"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("is not an executable file on this host"), "\(missing.stderr)")
    }
}
