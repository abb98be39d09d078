@testable import DTS
import Foundation
import Suites
import Testing

/// Names that become path components (VM, suite and case names) stay one component: a VM
/// section named `[../../../tmp/x/escaped]` once booted with its sockets and logs outside the
/// private run directory.
@Suite struct ConfigNamesTests {
    static let escaping = "../../../tmp/x/escaped"

    @Test(arguments: [
        ("", "it is empty"), (".", "names a directory"), ("..", "names a directory"), ("../x", "contains '/'"),
        ("a/b", "contains '/'"), ("/", "contains '/'"), ("a\u{0}b", "NUL"), ("a\u{1B}[2Jb", #"control character (\x1b)"#),
        ("a\nb", #"control character (\n)"#), ("a\u{85}", "control character"), (String(repeating: "v", count: 65), "65 bytes long; at most 64"),
        (String(repeating: "\u{e9}", count: 33), "66 bytes long"),
    ])
    func rejected(_ name: String, _ reason: String) {
        let problem = PathComponentName.problem(name)
        #expect(problem?.contains(reason) == true, "\(name.debugDescription): \(problem ?? "accepted")")
    }

    @Test func accepted() {
        for name in ["vm0", "vxlan_sample", "vm-1.2", "\u{e9}t\u{e9}", ".hidden", "a b", "127.0.0.1", String(repeating: "v", count: 64)] {
            #expect(PathComponentName.problem(name) == nil, "\(name)")
        }
    }

    static func scratch(_ files: [String: String]) throws -> String {
        try ConfigReaderTests.scratch(files.mapValues { Array($0.utf8) })
    }

    @Test func qemuKvmRefusesNamesThatLeaveTheirDirectory() throws {
        let dir = try Self.scratch(["s.cfg": "[vm0]\n[\(Self.escaping)]\ncpu = number=1;\n"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let dut = Dut(settings: RunSettings(confDirectory: dir), run: Run())
        #expect {
            _ = try QEMUKvm(dut: dut, vmName: Self.escaping, suite: "s")
        } throws: { error in
            (error as? ConfigErrors)?.description.contains("VM name '\(Self.escaping)' cannot name a file or directory: it contains '/'") == true
        }
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        let inner = Dut(settings: RunSettings(confDirectory: dir + "/sub"), run: Run())
        #expect {
            _ = try QEMUKvm(dut: inner, vmName: "vm0", suite: "../s")
        } throws: { error in
            (error as? ConfigErrors)?.description.contains("suite name '../s' cannot name a file or directory") == true
        }
    }

    @Test func configCheckRefusesVMSectionNames() throws {
        let long = "vm" + String(repeating: "x", count: 80)
        let dir = try Self.scratch(["s.cfg": "[vm0]\n[vm\(Self.escaping)]\ncpu = number=1;\n[vma\u{1B}b]\n[\(long)]\n[suite]\nk = v\n[../not-a-vm]\n"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let errors = ConfigChecker.check(path: "\(dir)/s.cfg")
        // VM sections ([vm*]) name files; [suite] and [../not-a-vm] are the suite's own.
        #expect(errors.map(\.location.line) == [2, 4, 5], "\(errors)")
        #expect(errors.first?.message.contains("VM name 'vm\(Self.escaping)' cannot name a file or directory: it contains '/'") == true, "\(errors)")
        #expect(errors.last?.message.contains("bytes") == true, "\(errors)")
    }

    @Test func executionConfigRefusesSuiteAndCaseNames() throws {
        let dir = try Self.scratch(["execution.cfg": "[Execution1]\ncrbs = 127.0.0.1\ntest_suites =\n    ../x,\n    ok:a\\..\\b/c\n"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect {
            _ = try ExecutionConfig(path: "\(dir)/execution.cfg")
        } throws: { error in
            guard let errors = (error as? ConfigErrors)?.errors else { return false }
            return errors.map(\.location.line) == [4, 5, 5] && errors.allSatisfy { $0.key == "test_suites" }
                && errors[0].message.contains("suite name '../x'") && errors[1].message.contains("case name '..'")
                && errors[2].message.contains("case name 'b/c'")
        }
    }

    /// The command line names the option; nothing is read or created.
    @Test func commandLineOptionsAreChecked() async throws {
        let dir = try Self.scratch(["s.cfg": "[vm0]\n[\(Self.escaping)]\n"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let runtime = dir + "/run/a/b/c"
        let cases: [([String], String)] = [
            (["vm", "cmdline", "--conf-dir", dir, "--suite", "s", "--vm", Self.escaping, "--runtime-dir", runtime], "--vm: VM name '\(Self.escaping)'"),
            (["vm", "cmdline", "--conf-dir", dir + "/run", "--suite", "../s"], "--suite: suite name '../s'"),
            (["config", "show", "--conf-dir", dir, "--suite", "s", "--vm", ".."], "--vm: VM name '..'"),
            (["run", "--suite", "../x", "--output", dir + "/out"], "--suite: suite name '../x'"),
            (["run", "--suite", "host_basic", "--test-cases", "ok,a/b", "--output", dir + "/out"], "--test-cases: case name 'a/b'"),
        ]
        for (arguments, message) in cases {
            let result = try await DTSBinary.run(arguments)
            #expect(result.status == 2, "\(arguments): \(result.stdout)\(result.stderr)")
            #expect(result.stderr.hasPrefix("<command line>: \(message) cannot name a file or directory"), "\(arguments): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/out"))
    }

    /// `vm start` and `vm run` refuse the name before anything boots.
    @Test func bootCommandsRefuseBeforeBooting() async throws {
        let dir = try Self.scratch(["s.cfg": "[vm0]\n[\(Self.escaping)]\n"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for command in [["vm", "start"], ["vm", "run"]] {
            let result = try await DTSBinary.run(command + ["--conf-dir", dir, "--suite", "s", "--vm", Self.escaping, "--accel", "tcg"]
                                           + (command[1] == "run" ? ["--", "true"] : []))
            #expect(result.status == 2, "\(command): \(result.stdout)\(result.stderr)")
            #expect(result.stderr.contains("--vm: VM name '\(Self.escaping)' cannot name a file or directory"), "\(command): \(result.stderr)")
        }
    }

    /// Suite and case names from the registry name output directories and log files.
    @Test func registeredSuiteAndCaseNamesAreValid() {
        for suite in SuiteRegistry.all {
            #expect(PathComponentName.problem(suite.name) == nil, "\(suite.name)")
            for testCase in SuiteInfo.cases(of: suite) {
                #expect(PathComponentName.error(testCase.name, "case name", at: PathComponentName.commandLine) == nil, "\(suite.name)/\(testCase.name)")
            }
        }
    }

    /// Case names may be longer than VM and suite names (DTS's reach 79 bytes), not unbounded.
    @Test func caseNamesHaveTheirOwnLimit() {
        let long = "test_" + String(repeating: "x", count: 90)
        #expect(PathComponentName.error(long, "case name", at: PathComponentName.commandLine) == nil)
        #expect(PathComponentName.error(long, "suite name", at: PathComponentName.commandLine) != nil)
        let tooLong = "test_" + String(repeating: "x", count: 200)
        #expect(PathComponentName.error(tooLong, "case name", at: PathComponentName.commandLine)?.description.contains("at most 200") == true)
    }
}
