/// The one text semantics of dts's interactive shells (the local PTY shell, SSH shells of remote
/// and VM DUTs): how the raw bytes a terminal delivers become the text `sendExpect` matches and
/// returns. Every rule works on UTF-8 bytes, never on Swift `Character`s (`"\r\n"` is one
/// `Character`, and a combining mark glues itself to the character before it).
///
/// The stream rules (``ShellTextDecoder``):
/// - bracketed-paste switches (`ESC[?2004h`, `ESC[?2004l`), which bash prints around prompts, are removed;
/// - `\r\n` and `\r\r\n` become `\n`, and a lone `\r` (a progress line redrawn) becomes `\n`;
/// - a UTF-8 character, an escape or a `\r` split across two reads is held until its end arrives;
///   invalid UTF-8 becomes U+FFFD.
///
/// The reply rules (``reply(before:command:prompt:)``), applied to what precedes a match:
/// - the echo of the command (a program that echoes its input, as testpmd does) is removed when
///   the output starts with the command followed by a newline (or is exactly the command);
/// - when the shell's prompt is a unique marker ending in `# ` (`dts-3fa9c2d1# `), its head
///   (`dts-3fa9c2d1`), which precedes a DTS-style `"# "` match, is removed from the end;
/// - trailing newlines are removed, as DTS's `send_expect` drops the line break before the prompt.
public enum ShellText {
    /// What `sendExpect` returns: `before` (normalized output before the match) without the echo of
    /// `command`, without the head of `prompt` at its end, and without trailing newlines.
    public static func reply(before: String, command: String?, prompt: String) -> String {
        var text = Array(before.utf8)
        if let command { text = stripEcho(text, command: command) }
        text = trimPromptHead(text, prompt: prompt)
        while text.last == newline { text.removeLast() }
        return String(decoding: text, as: UTF8.self)
    }

    /// `text` without the echo of `command` at its start: the command followed by a newline, or
    /// the whole text when it is exactly the command.
    public static func stripEcho(_ text: String, command: String) -> String {
        String(decoding: stripEcho(Array(text.utf8), command: command), as: UTF8.self)
    }

    /// `text` without the head of `prompt` (all but its final `# `) at its end; unchanged when the
    /// prompt does not end in `# ` or the text does not end in its head.
    public static func trimPromptHead(_ text: String, prompt: String) -> String {
        String(decoding: trimPromptHead(Array(text.utf8), prompt: prompt), as: UTF8.self)
    }

    /// A fresh unique prompt, `dts-` and 8 random hex digits, then `# ` (so DTS's `"# "` matches it).
    public static func uniquePrompt() -> String {
        "dts-" + String(UInt32.random(in: 0x1000_0000...UInt32.max), radix: 16) + "# "
    }

    /// The lines that make a POSIX shell use `prompt` (one of ``uniquePrompt()``): terminal echo
    /// and line editing off, `PS1` set, `PS2` empty, no `PROMPT_COMMAND`, no history file. The
    /// prompt is spelled in two quoted pieces, so an echo of these lines never matches it. Each
    /// step is its own line: a shell that rejects one (dash has no `set -o emacs`) runs the next.
    public static func promptSetup(_ prompt: String) -> String {
        let scalars = Array(prompt.unicodeScalars)
        let split = min(4, scalars.count)
        let head = String(String.UnicodeScalarView(scalars[..<split])), rest = String(String.UnicodeScalarView(scalars[split...]))
        return "stty -echo 2>/dev/null\n"
            + "set +o emacs +o vi 2>/dev/null\n"
            + "PS1=\(ShellQuoting.quote(head))\(ShellQuoting.quote(rest)); PS2=''; unset PROMPT_COMMAND HISTFILE 2>/dev/null"
    }

    static let newline = UInt8(ascii: "\n")

    static func stripEcho(_ text: [UInt8], command: String) -> [UInt8] {
        let echo = Array(command.utf8)
        guard !echo.isEmpty, text.starts(with: echo) else { return text }
        if text.count == echo.count { return [] }
        return text[echo.count] == newline ? Array(text[(echo.count + 1)...]) : text
    }

    static func trimPromptHead(_ text: [UInt8], prompt: String) -> [UInt8] {
        let marker = Array(prompt.utf8)
        guard marker.count > 2, marker.suffix(2).elementsEqual("# ".utf8) else { return text }
        let head = marker.dropLast(2)
        guard text.count >= head.count, text.suffix(head.count).elementsEqual(head) else { return text }
        return Array(text.dropLast(head.count))
    }
}

/// Turns the raw bytes of a terminal, read in arbitrary pieces, into normalized UTF-8 text (the
/// stream rules of ``ShellText``). Feeding the bytes in any split gives the same text as feeding
/// them at once.
public struct ShellTextDecoder: Sendable {
    /// Bytes of a bracketed-paste switch that may still be completing.
    private var escape: [UInt8] = []
    /// A `\r` whose meaning depends on the next byte.
    private var carriageReturn = false
    /// The start of a UTF-8 sequence whose end has not arrived.
    private var partial: [UInt8] = []

    /// Creates a decoder at the start of a stream.
    public init() {}

    /// Normalizes `bytes` (following what was fed before); returns complete UTF-8.
    public mutating func decode(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        utf8(lineEnds(withoutPasteSwitches(escape + Array(bytes))))
    }

    /// Ends the stream: what was held back, as if nothing followed (an unfinished escape is kept as
    /// text, a final `\r` becomes `\n`, an unfinished UTF-8 sequence becomes U+FFFD).
    public mutating func finish() -> [UInt8] {
        var tail = escape
        escape = []
        if carriageReturn { tail.insert(Self.newline, at: 0) }
        carriageReturn = false
        let rest = partial + tail
        partial = []
        return Array(String(decoding: rest, as: UTF8.self).utf8)
    }

    private static let newline = UInt8(ascii: "\n")
    private static let carriage = UInt8(ascii: "\r")
    private static let pasteHead = Array("\u{1B}[?2004".utf8)

    /// Removes `ESC[?2004h` and `ESC[?2004l`; holds a trailing unfinished one in ``escape``.
    private mutating func withoutPasteSwitches(_ input: [UInt8]) -> [UInt8] {
        escape = []
        var out: [UInt8] = []
        out.reserveCapacity(input.count)
        var i = 0
        while i < input.count {
            guard input[i] == 0x1B else {
                out.append(input[i])
                i += 1
                continue
            }
            let available = input.count - i
            let head = Self.pasteHead
            let compared = min(available, head.count)
            guard input[i..<(i + compared)].elementsEqual(head.prefix(compared)) else {
                out.append(input[i])
                i += 1
                continue
            }
            if available <= head.count {
                escape = Array(input[i...])  // may still become a switch
                break
            }
            let last = input[i + head.count]
            if last == UInt8(ascii: "h") || last == UInt8(ascii: "l") {
                i += head.count + 1
            } else {
                out.append(input[i])
                i += 1
            }
        }
        return out
    }

    /// `\r\n`, `\r\r\n` → `\n`, a lone `\r` → `\n`; a final `\r` is held.
    private mutating func lineEnds(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(input.count + 1)
        for byte in input {
            if carriageReturn {
                carriageReturn = false
                if byte == Self.carriage {
                    carriageReturn = true  // `\r\r`: the first one counts for nothing
                    continue
                }
                if byte != Self.newline { out.append(Self.newline) }
            }
            if byte == Self.carriage {
                carriageReturn = true
            } else {
                out.append(byte)
            }
        }
        return out
    }

    /// Complete UTF-8 (invalid bytes as U+FFFD); an unfinished sequence at the end is held.
    private mutating func utf8(_ input: [UInt8]) -> [UInt8] {
        let bytes = partial + input
        var end = bytes.count
        var i = bytes.count - 1
        while i >= 0 && i >= bytes.count - 4 {
            let byte = bytes[i]
            if byte & 0xC0 != 0x80 {
                let length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
                if bytes.count - i < length { end = i }
                break
            }
            i -= 1
        }
        partial = Array(bytes[end...])
        return Array(String(decoding: bytes[..<end], as: UTF8.self).utf8)
    }
}
