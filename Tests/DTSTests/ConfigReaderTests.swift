@testable import DTS
import DTSTestSupport
import Foundation
import Testing

/// The config reader on hostile or unusual input: line endings, byte-order marks, encodings.
@Suite struct ConfigReaderTests {
    /// A scratch directory with the given files, removed by the caller.
    static func scratch(_ files: [String: [UInt8]]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dts-reader-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (name, bytes) in files {
            #expect(FileManager.default.createFile(atPath: "\(dir)/\(name)", contents: Data(bytes)))
        }
        return dir
    }

    /// A suite config that starts with a comment and holds a typo (line 3) and a bad size (line 5).
    static let typoAndBadSize = ["# a suite config", "[vm0]", "cpuu = number=2;", "mem =", "    size=12X;", ""]

    /// Python reads `\r\n`, `\r` and `\n` alike (universal newlines); a UTF-8 byte-order mark is
    /// skipped. A CRLF file used to read as one comment line: "1 file OK".
    @Test(arguments: [("LF", "\n", false), ("CRLF", "\r\n", false), ("CR", "\r", false), ("BOM+CRLF", "\r\n", true), ("BOM+LF", "\n", true)])
    func lineEndingsAndBOM(_ name: String, _ newline: String, _ bom: Bool) throws {
        let bytes = (bom ? [0xEF, 0xBB, 0xBF] : []) + Array(Self.typoAndBadSize.joined(separator: newline).utf8)
        let dir = try Self.scratch(["s.cfg": bytes])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let errors = ConfigChecker.check(path: "\(dir)/s.cfg")
        #expect(errors.map(\.location.line) == [3, 5], "\(name): \(errors)")
        #expect(errors.first?.description.contains("unknown parameter 'cpuu'") == true, "\(name): \(errors)")
        #expect(errors.last?.description.contains("got '12X'") == true, "\(name): \(errors)")
    }

    /// Continuation lines and mixed endings in one file keep their line numbers.
    @Test func mixedLineEndingsKeepLineNumbers() throws {
        let text = "\u{FEFF}[vm0]\r\ncpu =\r    model=host,\n    number=2;\r\n\r\nmem = size=1;\r[suite]\rkey = a\r\n"
        let file = try ConfFile(text: text, path: "t.cfg")
        #expect(file.sections.map(\.name) == ["vm0", "suite"])
        let cpu = try #require(file.section("vm0")?.item("cpu"))
        #expect(cpu.lines.map(\.line) == [2, 3, 4])
        #expect(cpu.value == "model=host,\nnumber=2;")
        #expect(file.section("vm0")?.item("mem")?.line == 6)
        #expect(file.section("suite")?.line == 7)
        #expect(file.section("suite")?.item("key")?.value == "a")
    }

    /// `#`, `;` and `[` followed by a combining mark are one `Character`, but Python sees the
    /// comment or section mark.
    @Test func markupFollowedByCombiningMarks() throws {
        let file = try ConfFile(text: "#\u{301} comment = x\n;\u{301}=y\n[\u{301}vm0]\nkey\u{301} =\u{301} v\n", path: "t.cfg")
        #expect(file.sections.map(\.name) == ["\u{301}vm0"])
        #expect(file.sections.first?.items.map(\.key) == ["key\u{301}"])
        #expect(file.sections.first?.items.first?.value == "\u{301} v")
    }
}

/// Every scanner of config syntax reads Unicode scalars, as DTS's Python does: a separator
/// followed by a combining mark still separates, and a look-alike that Swift's `Character`
/// comparison calls equal (U+037E GREEK QUESTION MARK is canonically `;`) does not.
@Suite struct ScalarScanningTests {
    @Test func entriesAndOptionsSplitAtSeparatorsFollowedByCombiningMarks() throws {
        let entries = try VirtValueParser.parse("driver=vhost-user,\u{301}opt_path=./a;\u{301}driver=x", file: "x", key: "device")
        #expect(entries.count == 2)
        #expect(entries.first?.options.map(\.key) == ["driver", "\u{301}opt_path"])
        #expect(entries.first?["driver"] == "vhost-user")
        #expect(entries.last?.options.map(\.key) == ["\u{301}driver"])
    }

    @Test func lookAlikesDoNotSeparate() throws {
        let entries = try VirtValueParser.parse("cmd=a\u{37E}b=c", file: "x", key: "usercmd")
        #expect(entries.count == 1)
        #expect(entries.first?["cmd"] == "a\u{37E}b=c")
    }

    /// In a file: the option after `,` + combining mark is its own (unknown) option, not part
    /// of the previous value.
    @Test func configFileOptionAfterCombiningComma() throws {
        let dir = try ConfigReaderTests.scratch(["s.cfg": Array("[vm0]\nmem = size=512,\u{301}hugepage=yes;\n".utf8)])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let errors = ConfigChecker.check(path: "\(dir)/s.cfg")
        #expect(errors.count == 1 && errors.first?.message.contains("unknown option '\u{301}hugepage'") == true, "\(errors)")
    }

    @Test func wordsQuoteWithCombiningMarks() throws {
        #expect(try ValueKind.splitWords("a'\u{301}b c'").get() == ["a\u{301}b c"])
        #expect(try ValueKind.splitWords("-x \"\u{301}y z\"").get() == ["-x", "\u{301}y z"])
    }

    @Test func listsAndPropertiesSplitByScalar() {
        #expect(ValueKind.parseProperties("csum=off,\u{301}gso=off") == nil)
        #expect(ValueKind.parseCPUList("1,\u{301}2") == nil)
        #expect(ValueKind.parseHostForward("tcp::6000-:\u{301}22") == nil)
        #expect(SuiteConfig.split("a,\u{301}b") == ["a", "\u{301}b"])
    }

    @Test func numbersAreASCIIDigitsOnly() {
        #expect(ValueKind.isMAC("\u{FF10}0:11:22:33:44:55") == false)
        #expect(ValueKind.normalizedPCIAddress("0000:08:+1.0") == nil)
        #expect(ValueKind.normalizedSlot("+1") == nil)
        #expect(ValueKind.integer(1...10).problem(with: "+5") != nil)
        #expect(ValueKind.port.problem(with: "\u{0662}2") != nil)
        #expect(ValueKind.parseSizeMiB("\u{FF12}G") == nil)
        #expect(ValueKind.isIPv4("+1.2.3.4") == false)
    }

    @Test func executionConfigSplitsByScalar() throws {
        let text = "[Execution1]\ncrbs = 127.0.0.1\ntest_suites = a,\u{301}b:c\\\u{301}d\nparameters = nic_type=cfg:\u{301}x=1\n"
        let dir = try ConfigReaderTests.scratch(["execution.cfg": Array(text.utf8)])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try ExecutionConfig(path: "\(dir)/execution.cfg")
        #expect(config.executions.first?.suites.map(\.name) == ["a", "\u{301}b"])
        #expect(config.executions.first?.suites.last?.cases == ["c", "\u{301}d"])
        #expect(config.executions.first?.parameters["\u{301}x"] == "1")
    }
}

/// A `-netdev` in `usercmd` defines the id QEMU reads: `,,` is an escaped comma, not a separator.
@Suite struct UserCmdNetdevTests {
    static func build(_ usercmd: String) throws -> Result<QEMUCommandLine, ConfigErrors> {
        let text = "[vm0]\nusercmd = cmd=\"\(usercmd)\";\ndevice = driver=virtio-net-pci,opt_netdev=n;\n"
        let dir = try ConfigReaderTests.scratch(["s.cfg": Array(text.utf8)])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let kvm = try QEMUKvm(dut: Dut(settings: RunSettings(confDirectory: dir), run: Run()), vmName: "vm0", suite: "s")
        return Result { () throws(ConfigErrors) in try kvm.commandLine(allocator: StaticAllocator(runtimeRoot: "/run/dts/t")) }
    }

    @Test func escapedCommaIsNoSeparator() throws {
        guard case .failure(let errors) = try Self.build("-netdev user,x=1,,id=n") else {
            Issue.record("the netdev has no id 'n' for QEMU, yet the device was accepted")
            return
        }
        #expect(errors.description.contains("opt_netdev=n names no netdev"))
        if case .failure(let errors) = try Self.build("-netdev user,id=n,x=1,,y") { Issue.record("\(errors)") }
    }
}

/// A size too large to count is malformed, not a crash (it multiplied past Int.max).
@Suite struct SizeOverflowTests {
    @Test func hugeSizesAreRejected() {
        #expect(ValueKind.parseSizeMiB("9007199254740993G") == nil)
        #expect(ValueKind.parseSizeMiB("99999999999999999999") == nil)
        #expect(ValueKind.parseSizeMiB("9007199254740993M") == 9_007_199_254_740_993)
    }
}

/// A file that is not UTF-8 is named as such, with the line and column of the first bad byte.
@Suite struct InvalidUTF8Tests {
    @Test(arguments: [
        ("LF", Array("[vm0]\ncpu = model=host;\nmem = size=5".utf8) + [0xFF] + Array("12;\n".utf8), 3, 13, "0xff"),
        ("CRLF", Array("[vm0]\r\n\r\nmem = size=\u{e9}".utf8) + [0xE9] + Array("\r\n".utf8), 3, 13, "0xe9"),
        ("truncated", Array("# \u{e9}t\u{e9}\r[vm0]\rname = name=x".utf8) + [0xE2, 0x82], 3, 14, "0xe2"),
        ("surrogate", [0xEF, 0xBB, 0xBF] + Array("[vm0]\n".utf8) + [0xED, 0xA0, 0x80], 2, 1, "0xed"),
    ])
    func reportsLineAndColumn(_ name: String, _ bytes: [UInt8], _ line: Int, _ column: Int, _ byte: String) throws {
        let dir = try ConfigReaderTests.scratch(["s.cfg": bytes])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let errors = ConfigChecker.check(path: "\(dir)/s.cfg")
        #expect(errors.count == 1, "\(name): \(errors)")
        #expect(errors.first?.location.line == line, "\(name): \(errors)")
        #expect(errors.first?.message == "not valid UTF-8: byte \(byte) at column \(column); save the file as UTF-8", "\(name): \(errors)")
    }
}

/// Error messages are safe to print: control characters are escaped (a key holding a terminal
/// escape sequence must not reach the terminal raw), and long values are cut.
@Suite struct ErrorTextTests {
    static func check(_ text: String) throws -> [ConfigError] {
        let dir = try ConfigReaderTests.scratch(["s.cfg": Array(text.utf8)])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        return ConfigChecker.check(path: "\(dir)/s.cfg").map { e in
            var e = e
            e.location.file = "s.cfg"
            return e
        }
    }

    static func hasRawControls(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0.properties.generalCategory == .control && $0 != "\n" }
    }

    @Test func controlCharactersAreEscaped() throws {
        let errors = try Self.check("[vm\u{1B}]2J]\n[vm0]\nk\u{1B}[31mred\u{7} = v\u{1B}\u{9B}x\nmem = size=\u{1B}[2J\u{7}\n")
        let text = ConfigErrors(errors).description
        #expect(!Self.hasRawControls(text), "\(text.debugDescription)")
        #expect(text.contains(#"VM name 'vm\x1b]2J'"#), "\(text)")
        #expect(ConfigError(SourceLocation(file: "s.cfg", line: 1, section: "a\u{1B}b"), key: "k\u{7}", "m").description == #"s.cfg:1: [a\x1bb] k\x07: m"#)
        #expect(text.contains(#"unknown parameter 'k\x1b[31mred\x07'"#), "\(text)")
        #expect(text.contains(#"got '\x1b[2J\x07'"#), "\(text)")
        // Bidirectional overrides reorder what the terminal shows: escaped too.
        let bidi = ConfigError(SourceLocation(file: "s.cfg", line: 1), "got 'a\u{202E}b'").description
        #expect(bidi == #"s.cfg:1: got 'a\u{202E}b'"#)
    }

    @Test func longValuesAreCut() async throws {
        let huge = String(repeating: "x", count: 1 << 20)
        // The section name (a VM section: its name starts with "vm") is 2 characters longer.
        // Seconds of parsing in a debug build: on a thread of its own, not the cooperative pool's.
        let errors = try await offPool { try Self.check("[vm0]\nmem = size=\(huge)\n\(huge) = 1\n[vm\(huge)]\ncpu = number=x\n") }
        #expect(errors.count == 3)
        for error in errors {
            let text = error.description
            #expect(text.unicodeScalars.count < 1000, "\(text.prefix(300))...")
            #expect(text.contains("1048576 characters") || text.contains("1048578 characters"), "\(text.prefix(300))...")
        }
        // The start of the message, before the value, is kept.
        #expect(errors.first?.description.hasPrefix("s.cfg:2: [vm0] mem: option 'size': expected a size in MiB") == true)
    }

    /// A NUL would end the argument QEMU reads: refused with file and line, whether in a file
    /// or in a value given in code.
    @Test func nulIsRefused() throws {
        let errors = try Self.check("[vm0]\nname = name=a\u{0}b;\n")
        #expect(errors.map(\.location.line) == [2], "\(errors)")
        #expect(errors.first?.message.contains("NUL") == true, "\(errors)")
        #expect(!Self.hasRawControls(ConfigErrors(errors).description))

        let dir = try ConfigReaderTests.scratch(["s.cfg": Array("[vm0]\n".utf8)])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let kvm = try QEMUKvm(dut: Dut(settings: RunSettings(confDirectory: dir), run: Run()), vmName: "vm0", suite: "s")
        #expect { try kvm.setVMDevice(["driver": "vhost-user", "opt_path": "/a\u{0}b"]) } throws: { error in
            (error as? ConfigErrors)?.description.contains("NUL") == true
        }
        #expect { try kvm.setVMParam("mem", "size=512,hugepage=n\u{0}o") } throws: { _ in true }
    }
}

/// Found by scripts/fuzz-config.sh: a 1 MB value of `k=v;` in a single-valued parameter gave
/// 524,290 errors (50 MB on stderr, over 30 s). Each source lists at most 100 distinct
/// problems, then says that more follow; what is printed is bounded too.
@Suite struct ErrorCountTests {
    @Test(arguments: [
        ("[vm0]\nmem = size=512,size\u{202E}=" + String(repeating: "k=v;", count: 20000) + "\n", "entries of a parameter", false),
        ("[vm0]\nmem = " + (0..<20000).map { "k\($0)=v;" }.joined() + "\n", "distinct bad entries", true),
        ("[vm0]\n" + (0..<20000).map { "cpu\($0)\n" }.joined(), "malformed lines", true),
        ("[vm0]\n" + (0..<20000).map { "k\($0) = 1\n" }.joined(), "unknown parameters", true),
        ("[vm0]\nusercmd = " + (0..<20000).map { "=\($0)," }.joined() + "\n", "options without a name", true),
    ])
    func problemsAreBounded(_ text: String, _ name: String, _ more: Bool) throws {
        let errors = try ErrorTextTests.check(text)
        #expect(errors.count <= 102, "\(name): \(errors.count) errors")
        if more { #expect(errors.last?.message.contains("more problems") == true, "\(name): \(errors.last?.description ?? "")") }
        let printed = ConfigErrors(errors + errors + errors).description.split(separator: "\n")
        #expect(printed.count <= 201, "\(name): \(printed.count) lines")
    }
}
