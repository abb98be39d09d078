import DTS
import Foundation
import Testing

/// Golden files for the command-line builder: every handler, option and error class.
/// Regenerate with `DTS_UPDATE_GOLDEN=1 swift test --filter GoldenCommandLine` and review the diff.
@Suite struct GoldenCommandLineTests {
    @Test(arguments: GoldenCase.all)
    func golden(_ golden: GoldenCase) throws {
        let result = try golden.build()
        switch result {
        case .success(let command):
            #expect(!golden.expectsError, "\(golden.name) should fail but built:\n\(command.goldenText)")
            try compare(command.goldenText, golden.argsPath)
            try compare(command.goldenFacts, golden.factsPath)
            try compareOptional(command.goldenWarnings, golden.warnPath)
        case .failure(let errors):
            #expect(golden.expectsError, "\(golden.name) failed:\n\(errors)")
            try compare(errors.description + "\n", golden.errPath)
        }
    }

    /// Every parameter is set by the config of at least one case that builds: defaults and
    /// virt_global.cfg do not count.
    @Test func everyParameterHasAGoldenCase() throws {
        var seen = Set<String>()
        for golden in GoldenCase.all where !golden.expectsError {
            guard case .success = try golden.build() else { continue }
            let vm = golden.directives.last { $0.0 == "vm" }?.1 ?? "vm0"
            seen.formUnion(try ConfFile(contentsOf: golden.configPath).section(vm)?.items.map(\.key) ?? [])
        }
        let missing = Set(VMParamSchema.names).subtracting(seen)
        #expect(missing.isEmpty, "parameters that no golden case sets: \(missing.sorted())")
    }

    @Test func everyParameterOfTheSchemaHasOneHandler() {
        #expect(VMParameters.handlers.map { $0.spec.name } == VMParamSchema.names)
    }

    @Test func usercmdWordsAreGroupedIntoOptionsWithoutChangingArgv() {
        let cases: [[String]] = [
            ["-device", "e1000,netdev=x", "-S", "-netdev", "user,id=x"],
            ["-S", "-nographic"],
            ["disk.img", "-snapshot", "-m", "512", "extra"],
            ["-append", "-x"],
            [],
        ]
        for words in cases {
            #expect(QEMUOption.grouping(words).flatMap(\.arguments) == words)
        }
        #expect(QEMUOption.grouping(cases[0]) == [QEMUOption("-device", "e1000,netdev=x"), QEMUOption("-S"), QEMUOption("-netdev", "user,id=x")])
        #expect(QEMUOption.grouping(cases[2]).map(\.value) == [nil, nil, "512", nil])
    }

    @Test func notesBelongToOptions() throws {
        guard case .success(let command) = try GoldenCase(name: "vxlan_sample_tcg").build() else {
            Issue.record("vxlan_sample_tcg does not build")
            return
        }
        let notes = Dictionary(command.options.compactMap { option in option.note.map { (option.name + " " + (option.value ?? ""), $0) } }) { a, _ in a }
        #expect(notes["-accel tcg"]?.contains("chosen for this run (the config says enable=yes)") == true)
        #expect(notes["-cpu max"]?.contains("model=host needs KVM") == true)
        #expect(notes.first { $0.key.hasPrefix("-device virtio-net-pci,netdev=vhostnet0") }?.value.contains("vectors=0") == true)
        #expect(notes["-S "]?.contains("pins each vCPU") == true)
    }

    @Test func memoryIsReadOnceFromTheMemParameter() throws {
        let here = SourceLocation(file: "t.cfg", line: 1)
        func mem(_ size: String) -> [VirtParam] {
            [VirtParam(name: "mem", entries: [VirtEntry([("size", size), ("hugepage", "yes")], location: here)], location: here)]
        }
        #expect(MemParameter.sizeMiB(of: mem("512")) == 512)
        #expect(MemParameter.sizeMiB(of: mem("2G")) == 2048)
        #expect(MemParameter.sizeMiB(of: []) == nil)
        let kvm = try QEMUKvm(dut: Dut(settings: RunSettings(confDirectory: GoldenCase.directory), run: Run()), vmName: "vm0", suite: "dts_original")
        #expect(kvm.memoryMiB == 4096)
        let command = try kvm.commandLine(allocator: StaticAllocator(runtimeRoot: "/run/dts/golden"))
        #expect(command.memoryMiB == 4096)
        #expect(command.hugepageMount == "/dev/hugepages")
    }

    @Test func daemonizeIsABuildInput() throws {
        let here = SourceLocation.builtIn("test", section: "vm0")
        let params = try VirtConfig.load(vm: "vm0", suite: "defaults", confDirectory: GoldenCase.directory)
        func build(_ params: [VirtParam], daemonize: Bool) throws -> QEMUCommandLine {
            try QEMUCommandLineBuilder.build(vmName: "vm0", params: params, options: QEMUBuildOptions(daemonize: daemonize),
                                             allocator: StaticAllocator(runtimeRoot: "/run/dts/golden"))
        }
        let plain = try build(params, daemonize: false)
        #expect(!plain.daemonize && !plain.argv.contains("-daemonize"))

        let forced = try build(params, daemonize: true)
        #expect(forced.daemonize)
        #expect(forced.argv.filter { $0 == "-daemonize" }.count == 1)
        // After the config's own options, before the framework's channels; with a note saying why.
        let index = try #require(forced.options.firstIndex { $0.name == "-daemonize" })
        #expect(forced.options[index + 1].name == "-nodefaults")
        #expect(forced.options[index].note?.contains("daemonized") == true)
        #expect(forced.argv.filter { $0 != "-daemonize" } == plain.argv)

        let configured = VirtConfig.merge(params, [VirtParam(name: "daemon", entries: [VirtEntry([("enable", "yes")], location: here)], location: here)])
        let both = try build(configured, daemonize: true)
        #expect(both.argv.filter { $0 == "-daemonize" }.count == 1)
        #expect(both.argv == (try build(configured, daemonize: false)).argv)
    }

    /// Two processes (each with its own random hash seed) print the same command lines, notes
    /// and errors for every case: no Set or Dictionary order leaks into the output.
    @Test func buildIsDeterministicAcrossProcesses() async throws {
        #expect(ProcessInfo.processInfo.environment["SWIFT_DETERMINISTIC_HASHING"] == nil,
                "hash seeds are fixed in this environment: the children cannot differ")
        for golden in GoldenCase.all {
            var arguments = ["vm", "cmdline", "--conf-dir", GoldenCase.directory, "--suite", golden.name,
                             "--runtime-dir", "/run/dts/golden", "--explain"]
            for (key, value) in golden.directives {
                switch key {
                case "accel": arguments += ["--accel", value]
                case "device": arguments += ["--device", value]
                case "vm": arguments += ["--vm", value]
                default: break
                }
            }
            let environment = ["DTS_IMAGE_DIR": "/var/cache/dts/images"]
            let first = try await DTSBinary.run(arguments, environment: environment)
            let second = try await DTSBinary.run(arguments, environment: environment)
            // The command reads this host's hugetlbfs mount and does not hold cpupin to this
            // host's CPUs: `#@ hugepages none` and `#@ online` cannot be reproduced.
            if !golden.directives.contains(where: { $0.0 == "hugepages" || $0.0 == "online" }) {
                #expect(first.status == (golden.expectsError ? 2 : 0), "\(golden.name): \(first.stderr)")
            }
            #expect(first.stdout == second.stdout && first.stderr == second.stderr && first.status == second.status,
                    "\(golden.name): two processes differ:\n\(first.stdout)\(first.stderr)---\n\(second.stdout)\(second.stderr)")
        }
    }

    /// Like ``compare(_:_:)`` for a file that exists only when `actual` is not empty.
    private func compareOptional(_ actual: String, _ path: String) throws {
        if actual.isEmpty {
            if GoldenCase.updating { try? FileManager.default.removeItem(atPath: path) }
            #expect(!FileManager.default.fileExists(atPath: path), "\(path) exists but the build gives no warnings")
            return
        }
        try compare(actual, path)
    }

    private func compare(_ actual: String, _ path: String) throws {
        if GoldenCase.updating {
            try actual.write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        guard let expected = try? String(contentsOfFile: path, encoding: .utf8) else {
            Issue.record("missing golden file \(path); run with DTS_UPDATE_GOLDEN=1 to create it. Actual:\n\(actual)")
            return
        }
        #expect(actual == expected, "\(path) differs:\n--- expected\n\(expected)--- actual\n\(actual)")
    }
}
