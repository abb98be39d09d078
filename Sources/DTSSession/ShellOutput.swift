import Foundation

/// An ``Expectation`` ready to match: a literal's UTF-8 bytes, or a compiled regular expression.
/// Both match the normalized text (``ShellText``): no `\r`, no bracketed-paste switches.
public enum ShellPattern: @unchecked Sendable {
    /// A literal, as UTF-8 bytes.
    case literal([UInt8])
    /// A regular expression (NSRegularExpression is immutable once made).
    case regex(NSRegularExpression)

    /// Compiles `expectation`.
    /// - Throws: the regular expression's error when its pattern is invalid.
    public init(_ expectation: Expectation) throws {
        switch expectation {
        case .literal(let text): self = .literal(Array(text.utf8))
        case .regex(let pattern): self = .regex(try NSRegularExpression(pattern: pattern))
        }
    }
}

/// The output of one interactive shell that nobody consumed yet, as normalized text, with the
/// matching that `sendExpect` does on it. Both shell transports keep one of these per shell and
/// differ only in how bytes arrive.
public struct ShellOutput: @unchecked Sendable {
    private var decoder = ShellTextDecoder()
    /// Normalized, complete UTF-8.
    private var bytes: [UInt8] = []
    /// The literal searched for last and where its next search may start (it is not at any
    /// earlier position).
    private var searched: (needle: [UInt8], from: Int)?

    /// Creates an empty buffer.
    public init() {}

    /// Appends raw terminal bytes.
    public mutating func append(_ raw: some Sequence<UInt8>) {
        bytes += decoder.decode(raw)
    }

    /// The stream ended (EOF): what the decoder held back is appended.
    public mutating func finish() {
        bytes += decoder.finish()
    }

    /// The text not consumed yet (a timeout's "output so far").
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Whether there is no unconsumed text.
    public var isEmpty: Bool { bytes.isEmpty }

    /// Looks for `pattern`; on a match consumes the text up to its end and returns the text before
    /// it. What follows the match stays.
    public mutating func match(_ pattern: ShellPattern) -> String? {
        switch pattern {
        case .literal(let needle):
            guard !needle.isEmpty else { return "" }
            guard bytes.count >= needle.count else { return nil }
            let last = bytes.count - needle.count
            var i = searched.flatMap { $0.needle == needle ? $0.from : nil } ?? 0
            while i <= last {
                if bytes[i] == needle[0] && bytes[i..<(i + needle.count)].elementsEqual(needle) {
                    return consume(before: i, through: i + needle.count)
                }
                i += 1
            }
            searched = (needle, last + 1)
            return nil
        case .regex(let regex):
            let text = self.text
            guard let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
                  let range = Range(match.range, in: text) else { return nil }
            let utf8 = text.utf8
            return consume(before: utf8.distance(from: utf8.startIndex, to: range.lowerBound),
                           through: utf8.distance(from: utf8.startIndex, to: range.upperBound))
        }
    }

    /// Consumes and returns all the text.
    public mutating func takeAll() -> String {
        defer { bytes = []; searched = nil }
        return text
    }

    private mutating func consume(before start: Int, through end: Int) -> String {
        let before = String(decoding: bytes[..<start], as: UTF8.self)
        bytes.removeFirst(end)
        searched = nil
        return before
    }
}
