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
