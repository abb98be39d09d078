import DTSSession
import Foundation
import Testing

/// The one text semantics of interactive shells, on bytes (the conformance suite runs the same
/// rules against real shells: ShellConformanceTests).
@Suite struct ShellTextTests {
    /// Decodes `pieces` as successive reads, then ends the stream.
    func decode(_ pieces: [[UInt8]], finish: Bool = false) -> String {
        var decoder = ShellTextDecoder()
        var out: [UInt8] = []
        for piece in pieces { out += decoder.decode(piece) }
        if finish { out += decoder.finish() }
        return String(decoding: out, as: UTF8.self)
    }

    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func lineEndsAndBracketedPaste() {
        #expect(decode([bytes("a\r\nb\r\r\nc\rd\n")]) == "a\nb\nc\nd\n")
        #expect(decode([bytes("\u{1B}[?2004hx\u{1B}[?2004l\r\ny")]) == "x\ny")
        // Other escapes stay.
        #expect(decode([bytes("\u{1B}[1mbold\u{1B}[0m\u{1B}[?2005h")]) == "\u{1B}[1mbold\u{1B}[0m\u{1B}[?2005h")
        // A final \r waits for the next byte; at the end of the stream it is a line end.
        #expect(decode([bytes("progress\r")]) == "progress")
        #expect(decode([bytes("progress\r")], finish: true) == "progress\n")
    }

    /// Every split of a stream into two reads gives the text of the whole stream.
    @Test func anySplitGivesTheSameText() {
        let stream = bytes("é€😀\r\n\u{1B}[?2004hok\r\r\nA\u{0301}\rz\u{1B}[?2004l\u{1B}[?20x\n")
        let whole = decode([stream], finish: true)
        #expect(whole == "é€😀\nok\nA\u{0301}\nz\u{1B}[?20x\n")
        for cut in 0...stream.count {
            #expect(decode([Array(stream[..<cut]), Array(stream[cut...])], finish: true) == whole, "split at \(cut)")
        }
        // Byte by byte as well.
        #expect(decode(stream.map { [$0] }, finish: true) == whole)
    }

    @Test func invalidUTF8BecomesReplacementCharacters() {
        #expect(decode([[0x61, 0xFF, 0x62]]) == "a\u{FFFD}b")
        // An unfinished sequence at the end of the stream.
        #expect(decode([[0x61, 0xE2, 0x82]], finish: true) == "a\u{FFFD}")
        #expect(decode([[0x61, 0xE2, 0x82]]) == "a")
    }

    @Test func replyRemovesEchoPromptHeadAndFinalNewlines() {
        let prompt = "dts-1a2b3c4d# "
        #expect(ShellText.reply(before: "echo 42\n42\ndts-1a2b3c4d", command: "echo 42", prompt: prompt) == "42")
        #expect(ShellText.reply(before: "42\n\n", command: "echo 42", prompt: prompt) == "42")
        #expect(ShellText.reply(before: "dts-1a2b3c4d", command: nil, prompt: prompt) == "")
        #expect(ShellText.reply(before: "a\nb\n", command: nil, prompt: prompt) == "a\nb")
        // No unique prompt: nothing to trim but newlines.
        #expect(ShellText.reply(before: "x\ndts-1", command: nil, prompt: "") == "x\ndts-1")
        #expect(ShellText.reply(before: "x\nlogin", command: nil, prompt: "login: ") == "x\nlogin")
        // The echo goes only when the command is followed by a line end (or is all there is).
        #expect(ShellText.stripEcho("echo hix\n", command: "echo hi") == "echo hix\n")
        #expect(ShellText.stripEcho("echo hi", command: "echo hi") == "")
        // Compared as bytes: an `e` with a combining accent is not the command `e`.
        #expect(ShellText.stripEcho("e\u{0301}\nx", command: "e") == "e\u{0301}\nx")
        #expect(ShellText.stripEcho("e\nx", command: "e") == "x")
    }

    @Test func matchingConsumesUpToTheMatchAndKeepsTheRest() throws {
        var output = ShellOutput()
        output.append(bytes("one\r\ntwo> three"))
        #expect(output.match(try ShellPattern(.literal("> "))) == "one\ntwo")
        #expect(output.text == "three")
        // A regex sees the normalized text (no \r), whatever the split.
        output.append(bytes("\r"))
        #expect(output.match(try ShellPattern(.regex("three\\n"))) == nil)
        output.append(bytes("\nval"))
        #expect(output.match(try ShellPattern(.regex("three\\n"))) == "")
        output.append([0xE2, 0x82])
        #expect(output.match(try ShellPattern(.regex("val."))) == nil, "an unfinished character matched")
        output.append([0xAC, 0x20])
        #expect(output.match(try ShellPattern(.regex("val."))) == "")
        #expect(output.takeAll() == " " && output.isEmpty)
        // A literal searched for before, then a different one, over the same pending text.
        output.append(bytes("abcdef"))
        #expect(output.match(try ShellPattern(.literal("xyz"))) == nil)
        #expect(output.match(try ShellPattern(.literal("cd"))) == "ab")
        #expect(output.match(try ShellPattern(.literal(""))) == "")
        #expect(throws: (any Error).self) { try ShellPattern(.regex("(")) }
    }

    @Test func uniquePromptAndItsSetupLines() {
        let prompt = ShellText.uniquePrompt()
        #expect(prompt.hasPrefix("dts-") && prompt.hasSuffix("# ") && prompt.utf8.count == 14)
        #expect(ShellText.uniquePrompt() != prompt)
        let setup = ShellText.promptSetup(prompt)
        #expect(!setup.contains(prompt.dropLast(2)), "the setup's echo would match the prompt")
        #expect(setup.split(separator: "\n").count == 3)
    }
}
