@testable import DTS
import Foundation
import Testing

/// `dts config check` and `dts vm cmdline` agree: a suite config is OK exactly when `vm cmdline`
/// accepts every VM section in it, and the errors are the same. They disagreed on rules that
/// span parameters (a NIC with no backend, opt_gic_version on x86, q35's slot 0x1f).
@Suite struct ConfigCheckAgreementTests {
    /// Every golden case and every shipped suite config, with the accelerator its case asks for.
    static var configs: [(path: String, accel: String?)] {
        let golden = GoldenCase.all.map { ($0.configPath, $0.directives.last { $0.0 == "accel" }?.1) }
        let special = ["virt_global.cfg", "crbs.cfg", "execution.cfg", "ports.cfg"]
        let shipped = [DTSBinary.packageRoot + "/conf", DTSConfDirectoryTests.fixture].flatMap { directory in
            ((try? ConfigChecker.configFiles(in: directory)) ?? [])
                .filter { !special.contains(($0 as NSString).lastPathComponent) }
                .map { ($0, nil as String?) }
        }
        return golden + shipped
    }

    static func lines(_ text: String) -> Set<String> { Set(text.split(separator: "\n").map(String.init)) }

    @Test func configCheckAcceptsExactlyWhatVMCmdlineAccepts() async throws {
        let configs = Self.configs
        #expect(configs.count > 20)
        for (path, accel) in configs {
            let directory = (path as NSString).deletingLastPathComponent
            let suite = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
            let accelArguments = accel.map { ["--accel", $0] } ?? []
            let check = try await DTSBinary.run(["config", "check", path] + accelArguments)
            var cmdlineStatus: Int32 = 0
            var cmdlineErrors = Set<String>()
            // A file that does not parse fails for any VM: vm0 stands for all. Only VM sections
            // are VMs ([vm*], and those a suite names); a file with none has nothing to compare.
            let read = ConfFile.lenient(contentsOf: path).file
            let vms = read.map { $0.sections.map(\.name).filter { VirtConfig.isVMSection($0, suite: suite) } } ?? ["vm0"]
            for vm in vms {
                let cmdline = try await DTSBinary.run(["vm", "cmdline", "--conf-dir", directory, "--suite", suite, "--vm", vm] + accelArguments)
                #expect([0, 2].contains(cmdline.status), "\(suite) [\(vm)]: \(cmdline.stderr)")
                cmdlineStatus = max(cmdlineStatus, cmdline.status)
                cmdlineErrors.formUnion(Self.lines(cmdline.stderr))
            }
            #expect(check.status == cmdlineStatus,
                    "\(suite): config check exits \(check.status), vm cmdline \(cmdlineStatus)\n\(check.stdout)\(check.stderr)---\n\(cmdlineErrors.sorted().joined(separator: "\n"))")
            #expect(Self.lines(check.stderr) == cmdlineErrors,
                    "\(suite): config check says\n\(check.stderr)---\nvm cmdline says\n\(cmdlineErrors.sorted().joined(separator: "\n"))")
        }
    }
}
