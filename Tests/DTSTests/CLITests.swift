@testable import DTS
import DTSTestSupport
import Foundation
import Testing

/// Runs the built `dts` executable, as a user would.
enum DTSBinary {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    /// `dts` sits next to the test bundle in the build directory.
    static var path: String {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" {
            let candidate = url.deletingLastPathComponent().appendingPathComponent("dts").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            url.deleteLastPathComponent()
        }
        return packageRoot + "/.build/debug/dts"
    }

    static func run(_ arguments: [String], environment: [String: String] = [:], cwd: String = packageRoot) async throws -> ProgramResult {
        try await runProgram(path, arguments, environment: environment, directory: cwd)
    }
}

@Suite struct CLITests {
    /// The Tester's Python helper is a resource: the build puts its bundle next to `dts`.
    @Test func packetHelperResourceSitsNextToTheBinary() {
        let bundle = URL(fileURLWithPath: DTSBinary.path).deletingLastPathComponent().appendingPathComponent("dts_DTS.resources")
        #expect(FileManager.default.fileExists(atPath: bundle.appendingPathComponent(PacketHelper.fileName).path), "\(bundle.path)")
    }

    @Test func shippedConfigsAreValid() async throws {
        let result = try await DTSBinary.run(["config", "check", "--conf-dir", "conf"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("conf/vxlan_sample.cfg"))
    }

    @Test func configCheckPrintsEveryErrorAndFails() async throws {
        let bad = GoldenCase.directory + "/err_bad_values.cfg"
        let good = GoldenCase.directory + "/networks.cfg"
        let result = try await DTSBinary.run(["config", "check", good, bad])
        #expect(result.status == 2)
        let expected = try String(contentsOfFile: GoldenCase.directory + "/err_bad_values.err", encoding: .utf8)
        #expect(result.stderr == expected.replacingOccurrences(of: "err_bad_values.cfg:", with: bad + ":"))
    }

    @Test func listHidesInternalSuitesUnlessAskedFor() async throws {
        let list = try await DTSBinary.run(["list"])
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("host_basic\n  test_kernel_release"))
        #expect(list.stdout.contains("test_perf_vxlan_sample") && list.stdout.contains("performance"))
        // Long case names are shown whole, with their kind after a gap.
        #expect(list.stdout.contains("  test_vm2vm_vhost_user_virtio95_pmd_with_mergeable_path_with_payload_valid_check  functional"))
        #expect(!list.stdout.contains("runner_selftest"), "an internal suite is listed:\n\(list.stdout)")
        let all = try await DTSBinary.run(["list", "--all"])
        #expect(all.status == 0, "\(all.stderr)")
        #expect(all.stdout.contains("runner_selftest (internal)\n  test_verify"))
        #expect(all.stdout.contains("test_perf_exec_latency"))
        #expect(Set(list.stdout.split(separator: "\n")).isSubset(of: Set(all.stdout.split(separator: "\n"))),
                "--all drops part of the default list")
        // A suite named on the command line is shown, internal or not.
        let named = try await DTSBinary.run(["list", "runner_selftest"])
        #expect(named.status == 0, "\(named.stderr)")
        #expect(named.stdout.hasPrefix("runner_selftest (internal)\n  test_verify"))
        #expect(!named.stdout.contains("host_basic"))
    }

    @Test func cmdlineShellLineRoundTripsThroughSh() async throws {
        let args = ["vm", "cmdline", "--conf-dir", GoldenCase.directory, "--suite", "vhost_user_memfd_tcg", "--accel", "tcg", "--runtime-dir", "/tmp/dir with space",
                    "--device", "driver=vhost-user,opt_path=./vhost net,opt_mac=00:00:20:00:00:20"]
        let env = ["DTS_IMAGE_DIR": "/images"]
        let perLine = try await DTSBinary.run(args, environment: env)
        try #require(perLine.status == 0, "\(perLine.stderr)")
        let shell = try await DTSBinary.run(args + ["--shell"], environment: env)
        try #require(shell.status == 0, "\(shell.stderr)")
        let reparsed = try await runProgram("/bin/sh", ["-c", "printf '%s\\n' " + shell.stdout])
        #expect(reparsed.stdout == perLine.stdout)
        #expect(perLine.stdout.contains("\n-accel\ntcg\n"))
        // A relative opt_path is in the run's shared directory (here the runtime directory).
        #expect(perLine.stdout.contains("path=/tmp/dir with space/vhost net"))
    }

    /// `vm cmdline` only prints: nothing is made, not even the run root; paths name a placeholder run directory.
    @Test func cmdlineCreatesNothing() async throws {
        let scratch = try TempDir("dts-cmdline-nothing")
        let root = scratch.file("root")
        let result = try await DTSBinary.run(["vm", "cmdline", "--conf-dir", GoldenCase.directory, "--suite", "defaults", "--accel", "tcg"],
                                             environment: ["DTS_RUN_ROOT": root, "HOME": scratch.path, "TMPDIR": scratch.path],
                                             cwd: scratch.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("path=\(root)/run-XXXXXX/vm0/qmp.sock"), "\(result.stdout)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: scratch.path)) == [], "vm cmdline made something")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/dts-run"))
    }

    /// Options before `--` are dts's: an unknown one is an error (exit 2), never part of the guest command.
    @Test func vmRunRejectsUnknownOptionsBeforeTheTerminator() async throws {
        // A guest whose image does not exist: whatever goes wrong, no VM boots.
        let fixture = try VMFixture(["vm0": "enable_kvm = enable=no;\nkernel = guest_image=dts-no-such-image;\nlogin = user=root,password=x;"])
        let scratch = try TempDir("dts-vmrun-opts")
        let result = try await DTSBinary.run(["vm", "run", "--conf-dir", fixture.confDirectory, "--suite", fixture.suite, "--no-such-option", "warm", "--", "true"],
                                             environment: ["DTS_RUN_ROOT": scratch.file("root")])
        #expect(result.status == DTSExitCode.configError.rawValue, "\(result.output)")
        #expect(result.stderr.contains("--no-such-option"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch.file("root")), "a VM start was attempted")
        // What follows `--` is the guest's, options included.
        let help = try await DTSBinary.run(["vm", "run", "--help"])
        #expect(help.status == 0 && help.stdout.contains("--"), "\(help.output)")
    }

    /// Invalid options and arguments exit with 2 (invalid config or options), as documented, not
    /// the argument parser's 64.
    @Test func usageErrorsExitWith2() async throws {
        for arguments in [["run", "--no-such-option"], ["frobnicate"], ["vm", "cmdline"], ["run", "--re-run", "-1"]] {
            let result = try await DTSBinary.run(arguments)
            #expect(result.status == DTSExitCode.configError.rawValue, "\(arguments): \(result.output)")
            #expect(!result.stderr.isEmpty, "\(arguments): no message")
        }
        #expect(try await DTSBinary.run(["--help"]).status == 0)
        #expect(try await DTSBinary.run(["run", "--help"]).status == 0)
    }

    /// A `--dut` that names no DUT is the command line's error, not execution.cfg's.
    @Test func dutTypoIsBlamedOnTheCommandLine() async throws {
        let conf = try TempDir("dts-duttypo")
        try conf.write("execution.cfg", "[Execution1]\ncrbs = 127.0.0.1\ntest_suites = host_basic\n")
        try conf.write("crbs.cfg", "[127.0.0.1]\ndut_ip = 127.0.0.1\n")
        let result = try await DTSBinary.run(["run", "--conf-dir", conf.path, "--dut", "127.0.0.l", "--output", conf.file("out")])
        #expect(result.status == DTSExitCode.configError.rawValue, "\(result.output)")
        #expect(result.stderr.contains("<command line>") && result.stderr.contains("--dut"), "\(result.stderr)")
        #expect(!result.stderr.contains("execution.cfg:1"), "\(result.stderr)")
    }

    /// `dut_port` for this machine would be ignored (it is reached without SSH): refused, with its line.
    @Test func aLocalDUTWithAnSSHPortIsRefused() async throws {
        let conf = try TempDir("dts-localport")
        try conf.write("crbs.cfg", "[here]\ndut_ip = 127.0.0.1\ndut_port = 2222\n")
        let result = try await DTSBinary.run(["run", "--conf-dir", conf.path, "--suite", "host_basic", "--dut", "here", "--output", conf.file("out")])
        #expect(result.status == DTSExitCode.configError.rawValue, "\(result.output)")
        #expect(result.stderr.contains(conf.file("crbs.cfg") + ":3") && result.stderr.contains("dut_port"), "\(result.stderr)")
    }

    @Test func accelFromEnvironmentAndBadValues() async throws {
        let tcg = try await DTSBinary.run(["vm", "cmdline", "--conf-dir", GoldenCase.directory, "--suite", "defaults"], environment: ["DTS_ACCEL": "tcg"])
        #expect(tcg.stdout.contains("-accel\ntcg\n"), "\(tcg.stderr)")
        let bad = try await DTSBinary.run(["vm", "cmdline", "--conf-dir", GoldenCase.directory, "--suite", "defaults"], environment: ["DTS_ACCEL": "hvf"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("DTS_ACCEL=hvf"))
    }
}

@Suite struct DocsTests {
    @Test func configReferenceInDocsIsCurrent() throws {
        let doc = try String(contentsOfFile: DTSBinary.packageRoot + "/docs/config.md", encoding: .utf8)
        let begin = try #require(doc.range(of: "<!-- BEGIN GENERATED: dts config reference -->\n"))
        let end = try #require(doc.range(of: "<!-- END GENERATED -->"))
        let generated = String(doc[begin.upperBound..<end.lowerBound])
        #expect(generated == ParamReference.markdown(),
                "docs/config.md is stale: regenerate its reference section with `dts config reference`")
    }
}
