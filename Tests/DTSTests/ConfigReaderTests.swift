@testable import DTS
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
