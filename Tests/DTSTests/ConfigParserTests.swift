@testable import DTS
import DTSTestSupport
import Foundation
import Testing

@Suite struct ConfFileTests {
    @Test func parsesSectionsContinuationsAndComments() throws {
        let text = """
            # comment
            [vm0]
            cpu =
                model=host,number=4,cpupin=24 25 26 27;
              ; indented comment inside a value
            mem: size=4096
            [suite]
            KEY = %(not)s interpolated
            """
        let file = try ConfFile(text: text, path: "t.cfg")
        #expect(file.sections.map(\.name) == ["vm0", "suite"])
        let cpu = try #require(file.section("vm0")?.item("cpu"))
        #expect(cpu.line == 3)
        #expect(cpu.value == "model=host,number=4,cpupin=24 25 26 27;")
        #expect(file.section("vm0")?.item("mem")?.value == "size=4096")
        #expect(file.section("suite")?.item("key")?.value == "%(not)s interpolated")
    }

    @Test func entriesSplitLikeDTS() throws {
        let entries = try VirtValueParser.parse(
            "driver=vhost-user,opt_path=./vhost-net,opt_mac=00:00:20:00:00:20;driver=vhost-user,opt_path=./vhost-net;",
            file: "x", key: "device")
        #expect(entries.count == 2)
        #expect(entries[0]["opt_mac"] == "00:00:20:00:00:20")
        #expect(entries[1].options.map(\.key) == ["driver", "opt_path"])
    }

    @Test func splitsAtFirstEqualsAndKeepsBareWords() throws {
        let entries = try VirtValueParser.parse("cmd=-global a=b,flag", file: "x", key: "usercmd")
        #expect(entries[0]["cmd"] == "-global a=b")
        #expect(entries[0]["flag"] == "")
    }

    @Test func quotedValuesHoldSeparators() throws {
        let entries = try VirtValueParser.parse(#"cmd="-device e1000,netdev=n0;x \"q\" \\", k=v"#, file: "x", key: "usercmd")
        #expect(entries[0]["cmd"] == #"-device e1000,netdev=n0;x "q" \"#)
        #expect(entries[0]["k"] == "v")
        #expect(entries[0].text == #"cmd="-device e1000,netdev=n0;x \"q\" \\",k=v"#)
    }

    @Test func optionsMaySpanLinesWhenCommaEnds() throws {
        let file = try ConfFile(text: "[vm0]\ncpu =\n    model=host,\n    number=2;\n", path: "t.cfg")
        let item = try #require(file.section("vm0")?.item("cpu"))
        let entries = try VirtValueParser.parse(item.lines, file: "t.cfg", section: "vm0", key: "cpu")
        #expect(entries.count == 1)
        #expect(entries[0]["number"] == "2")
        #expect(entries[0].option("number")?.location.line == 4)
    }
}

@Suite struct ValueKindTests {
    @Test func sizes() {
        #expect(ValueKind.parseSizeMiB("2048") == 2048)
        #expect(ValueKind.parseSizeMiB("2G") == 2048)
        #expect(ValueKind.parseSizeMiB("512M") == 512)
        #expect(ValueKind.parseSizeMiB("512k") == nil)
        #expect(ValueKind.parseSizeMiB("0") == nil)
        #expect(ValueKind.parseSizeMiB("1.5G") == nil)
    }

    @Test func cpuLists() {
        #expect(ValueKind.parseCPUList("24 25 26 27") == [24, 25, 26, 27])
        #expect(ValueKind.parseCPUList("0-3") == [0, 1, 2, 3])
        #expect(ValueKind.parseCPUList("0,2 4-5") == [0, 2, 4, 5])
        #expect(ValueKind.parseCPUList("1 1") == nil)
        #expect(ValueKind.parseCPUList("3-1") == nil)
        #expect(ValueKind.parseCPUList("") == nil)
    }

    @Test func pciAndSlots() {
        #expect(ValueKind.normalizedPCIAddress("08:00.0") == "0000:08:00.0")
        #expect(ValueKind.normalizedPCIAddress("0000:AF:1f.7") == "0000:af:1f.7")
        #expect(ValueKind.normalizedPCIAddress("08:20.0") == nil)
        #expect(ValueKind.normalizedSlot("1f") == "1f")
        #expect(ValueKind.normalizedSlot("0x4") == "04")
        #expect(ValueKind.normalizedSlot("04.1") == "04.1")
        #expect(ValueKind.normalizedSlot("20") == nil)
    }

    @Test func forwards() {
        let f = ValueKind.parseHostForward("tcp:127.0.0.1:6000-:22")
        #expect(f?.hostPort == 6000 && f?.guestPort == 22 && f?.hostAddress == "127.0.0.1")
        #expect(ValueKind.parseHostForward("::6000-:22")?.proto == "tcp")
        #expect(ValueKind.parseHostForward("sctp::1-:2") == nil)
        #expect(ValueKind.parseHostForward("tcp:host:1-:22") == nil)
    }

    @Test func wordsHaveNoExpansion() throws {
        let words = try ValueKind.splitWords(#"-a 'b c' "d\"e" $HOME `x` ;"#).get()
        #expect(words == ["-a", "b c", #"d"e"#, "$HOME", "`x`", ";"])
        if case .success = ValueKind.splitWords("'open") { Issue.record("unterminated quote accepted") }
    }

    @Test func misspellingsGetSuggestions() {
        #expect(Spelling.closest(to: "cpuu", in: VMParamSchema.names) == "cpu")
        #expect(Spelling.closest(to: "zzzzzz", in: VMParamSchema.names) == nil)
    }

    @Test func qemuOptsEscapeCommas() {
        #expect(QEMUOpts.join("file", [("path", "/a,b")]) == "file,path=/a,,b")
    }
}

@Suite struct MergeTests {
    @Test func suiteReplacesWholeParamInPlaceAndRuntimeAppends() throws {
        let scratch = try TempDir("dts-merge")
        let dir = scratch.path
        try "[KVM]\ncpu = model=host,number=4;\nmem = size=2048;\n".write(toFile: "\(dir)/virt_global.cfg", atomically: true, encoding: .utf8)
        try "[vm0]\nmem = size=1024,hugepage=yes;\nlogin = user=root;\n[vm1]\ncpu = number=1;\n".write(toFile: "\(dir)/s.cfg", atomically: true, encoding: .utf8)
        let vm = try QEMUKvm(dut: Dut(settings: RunSettings(confDirectory: dir), run: Run()), vmName: "vm0", suite: "s")
        #expect(vm.params.map(\.name) == ["name", "enable_kvm", "machine", "pid_file", "daemon", "monitor", "net", "cpu", "mem", "login"])
        #expect(vm.params.first { $0.name == "mem" }?.entries.first?["size"] == "1024")
        #expect(vm.params.first { $0.name == "mem" }?.location.file == "\(dir)/s.cfg")
        #expect(vm.params.first { $0.name == "cpu" }?.entries.first?["number"] == "4")
        try vm.setVMDevice(["driver": "vhost-user", "opt_path": "./a"])
        try vm.setVMDevice(["driver": "vhost-user", "opt_path": "./b"])
        #expect(vm.params.last?.name == "device")
        #expect(vm.params.last?.entries.map { $0["opt_path"] } == ["./a", "./b"])
        #expect(throws: ConfigErrors.self) { try vm.setVMDevice(["driver": "vhost-cuse"]) }
    }

    @Test func missingSuiteFileNamesThePath() {
        #expect {
            _ = try QEMUKvm(dut: Dut(settings: RunSettings(confDirectory: "/nonexistent"), run: Run()), vmName: "vm0", suite: "nope")
        } throws: { error in
            (error as? ConfigErrors)?.description == "/nonexistent/nope.cfg: cannot read file: No such file or directory"
        }
    }
}
