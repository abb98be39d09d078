import Foundation

/// Scanning config text on Unicode scalars, the way DTS's Python reads it.
///
/// Never on Swift `Character`s: a `Character` is a grapheme cluster, so `"\r\n"` is one
/// `Character` (splitting on `"\n"` misses it) and `,` or `[` followed by a combining mark is one
/// `Character` equal to neither. Python, QEMU and the shell see the separator
/// (docs/platform-notes.md).
enum ConfigText {
    /// Python's `str.isspace()`: Unicode white space plus the separators U+001C...U+001F.
    /// `str.strip()` and configparser's indentation test use it.
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isWhitespace || (0x1C...0x1F).contains(scalar.value)
    }

    /// Splits `scalars` into lines at `\r\n`, `\r` and `\n`, as Python's universal newlines do.
    /// A final line break does not start another line.
    static func lines(_ scalars: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
        var lines: [ArraySlice<Unicode.Scalar>] = []
        var start = 0, i = 0
        while i < scalars.count {
            let scalar = scalars[i]
            guard scalar == "\n" || scalar == "\r" else { i += 1; continue }
            lines.append(scalars[start..<i])
            i += (scalar == "\r" && i + 1 < scalars.count && scalars[i + 1] == "\n") ? 2 : 1
            start = i
        }
        if start < scalars.count { lines.append(scalars[start...]) }
        return lines
    }

    /// Where a byte sequence stops being UTF-8.
    struct InvalidUTF8: Error, Equatable {
        /// 1-based line (lines end as in ``lines(_:)``).
        var line: Int
        /// 1-based column: the scalars before the bad byte on its line, plus one.
        var column: Int
        /// The first byte that is not part of a valid sequence.
        var byte: UInt8

        var byteText: String { String(format: "0x%02x", byte) }
    }

    /// The scalars of UTF-8 `bytes`, or where the first ill-formed sequence (a stray or
    /// truncated byte, an overlong form, a surrogate) starts.
    static func decodeUTF8(_ bytes: [UInt8]) -> Result<[Unicode.Scalar], InvalidUTF8> {
        if let text = String(validating: bytes, as: UTF8.self) { return .success(Array(text.unicodeScalars)) }
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        var scalars: [Unicode.Scalar] = []
        var line = 1, column = 1, offset = 0
        var afterCR = false
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                scalars.append(scalar)
                offset += UTF8.width(scalar)
                if scalar == "\n" {
                    if !afterCR { line += 1 }
                    column = 1
                } else if scalar == "\r" {
                    line += 1
                    column = 1
                } else {
                    column += 1
                }
                afterCR = scalar == "\r"
            case .emptyInput:
                return .success(scalars)
            case .error:
                return .failure(InvalidUTF8(line: line, column: column, byte: bytes[offset]))
            }
        }
    }

    /// `text` made safe to print on a terminal or in a log line, however hostile the config:
    ///
    /// - control characters are escaped (`\n`, `\t`, `\x1b`, ...), and so are the format
    ///   characters that reorder or hide text (bidirectional overrides, line separators):
    ///   a terminal escape sequence in a key is shown, never run;
    /// - a quoted run (between two `'`, as messages quote values) longer than `valueLimit`
    ///   scalars is cut to its start and its length, and the whole text to `totalLimit`
    ///   scalars: a 1 MB value is not echoed whole.
    static func printable(_ text: String, valueLimit: Int = 120, totalLimit: Int = 800) -> String {
        let scalars = Array(text.unicodeScalars)
        var output = String.UnicodeScalarView()
        var kept = 0
        for (index, run) in scalars.split(separator: "'", omittingEmptySubsequences: false).enumerated() {
            if index > 0 { output.append("'") }
            var shown = run[...]
            var cut: String?
            if index % 2 == 1, run.count > valueLimit {
                shown = run.prefix(valueLimit)
                cut = "…(\(run.count) characters)"
            }
            if kept + shown.count > totalLimit {
                escape(shown.prefix(max(0, totalLimit - kept)), into: &output)
                output.append(contentsOf: "…(\(scalars.count) characters in all)".unicodeScalars)
                break
            }
            escape(shown, into: &output)
            if let cut { output.append(contentsOf: cut.unicodeScalars) }
            kept += shown.count
        }
        return String(output)
    }

    private static func escape(_ scalars: some Sequence<Unicode.Scalar>, into output: inout String.UnicodeScalarView) {
        for scalar in scalars {
            switch scalar.value {
            case 0x0A: output.append(contentsOf: "\\n".unicodeScalars)
            case 0x0D: output.append(contentsOf: "\\r".unicodeScalars)
            case 0x09: output.append(contentsOf: "\\t".unicodeScalars)
            case 0x00...0x1F, 0x7F...0x9F:
                output.append(contentsOf: String(format: "\\x%02x", scalar.value).unicodeScalars)
            case 0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069:
                output.append(contentsOf: String(format: "\\u{%04X}", scalar.value).unicodeScalars)
            default:
                output.append(scalar)
            }
        }
    }

    /// `scalars` without leading and trailing white space (Python's `strip()`).
    static func trimmed<C: BidirectionalCollection>(_ scalars: C) -> C.SubSequence where C.Element == Unicode.Scalar {
        var slice = scalars[...]
        while let first = slice.first, isSpace(first) { slice.removeFirst() }
        while let last = slice.last, isSpace(last) { slice.removeLast() }
        return slice
    }

    /// Whether `scalar` is an ASCII digit of `radix` (10 or 16).
    static func isDigit(_ scalar: Unicode.Scalar, radix: Int) -> Bool {
        switch scalar {
        case "0"..."9": return true
        case "a"..."f", "A"..."F": return radix == 16
        default: return false
        }
    }

    /// Whether `text` is `length` ASCII hex digits.
    static func isHex(_ text: some StringProtocol, length: ClosedRange<Int>) -> Bool {
        length.contains(text.unicodeScalars.count) && text.unicodeScalars.allSatisfy { isDigit($0, radix: 16) }
    }

    /// `text` as a decimal number when it is only ASCII digits (no sign, no blanks, no other
    /// script's digits) and fits an `Int`.
    static func decimal(_ text: some StringProtocol) -> Int? {
        guard !text.isEmpty, text.unicodeScalars.allSatisfy({ isDigit($0, radix: 10) }) else { return nil }
        return Int(text)
    }

    /// A `String` made of `scalars`.
    static func string<S: Sequence>(_ scalars: S) -> String where S.Element == Unicode.Scalar {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }
}

extension StringProtocol {
    /// The text without leading and trailing white space, trimmed by Unicode scalar as Python's
    /// `strip()` (a combining mark after a blank stays).
    var scalarTrimmed: String { ConfigText.string(ConfigText.trimmed(unicodeScalars)) }

    /// Splits at every scalar in `separators` (Python's `str.split(sep)` by code point, not by
    /// `Character`).
    func scalarSplit(_ separators: String, maxSplits: Int = .max, omittingEmpty: Bool = false) -> [String] {
        let set = Set(separators.unicodeScalars)
        return unicodeScalars.split(maxSplits: maxSplits, omittingEmptySubsequences: omittingEmpty) { set.contains($0) }
            .map { ConfigText.string($0) }
    }

    /// Whether the first scalar is `scalar`.
    func startsWithScalar(_ scalar: Unicode.Scalar) -> Bool { unicodeScalars.first == scalar }

    /// Whether any scalar is `scalar`.
    func containsScalar(_ scalar: Unicode.Scalar) -> Bool { unicodeScalars.contains(scalar) }
}
