@testable import DTS
import DTSTestSupport
import Foundation
import Testing

/// Finding a kernel panic in a growing console log, and keeping reasons short.
@Suite struct ConsoleWatchTests {
    @Test func searchFindsALineWrittenInPiecesAndGoesOnFromWhereItStopped() throws {
        let dir = try TempDir("dts-console")
        let path = try dir.write("console.log", "[    0.1] booting\n[    1.9] Kernel pa")
        let marker = ConsoleWatch.marker
        var (line, next) = ConsoleSearch.local(path, for: marker, from: 0)
        #expect(line == nil)
        #expect(next == UInt64("[    0.1] booting\n".utf8.count), "the unfinished line is read again")
        let file = try #require(FileHandle(forWritingAtPath: path))
        try file.seekToEnd()
        try file.write(contentsOf: Data("nic - not syncing: Attempted to kill init! exitcode=0x00000100\n".utf8))
        try file.close()
        (line, next) = ConsoleSearch.local(path, for: marker, from: next)
        #expect(line == "[    1.9] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100")
        #expect(ConsoleWatch.clean(line ?? "") == "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100")
        #expect(ConsoleSearch.local(path, for: marker, from: next).line == nil)
        #expect(ConsoleSearch.local(dir.file("missing"), for: marker, from: 7) == (nil, 7))
    }

    @Test func reasonsAreCutToTwoLines() {
        #expect(Runner.shortReason("one line") == "one line")
        #expect(Runner.shortReason("a\n\nb\nc\nd") == "a\nb (more in the log)")
        let long = String(repeating: "x", count: 1000)
        #expect(Runner.shortReason(long) == String(repeating: "x", count: 300) + "… (more in the log)")
    }

    @Test func qemuExitsInWords() {
        #expect(QEMUExit.describe(128 + 9) == "signal 9 SIGKILL")
        #expect(QEMUExit.describe(1) == "status 1")
        #expect(QEMUExit.lastLines("a\nb\n\nc\n", 2) == "b | c")
    }
}
