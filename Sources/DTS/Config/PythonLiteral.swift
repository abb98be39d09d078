/// A Python literal as DTS's suite configs write them (`test_parameters = {64: [1024], 1518: [1024]}`,
/// `expected_throughput = {'path': {64: {1024: 0.00}}}`), which DTS reads with `ast.literal_eval`.
///
/// Every value keeps where it was written: the byte range (``span``) in the text it was parsed from,
/// and its line and column, so that errors name the line and `update_expected` can replace one
/// number without touching the bytes around it.
public struct PythonLiteral: Sendable, Equatable {
    /// The value. Dicts keep their entries in file order.
    public indirect enum Value: Sendable, Equatable {
        /// An integer (`64`, `-3`, `0x40`, `1_000`).
        case int(Int)
        /// A float (`0.00`, `1.5e3`, `.5`).
        case float(Double)
        /// A string (`'split_ring_mergeable'` or `"..."`).
        case string(String)
        /// `True` or `False`.
        case bool(Bool)
        /// `None`.
        case none
        /// `[a, b]`.
        case list([PythonLiteral])
        /// `{k: v}`, in file order.
        case dict([Entry])
    }

    /// One `key: value` of a dict.
    public struct Entry: Sendable, Equatable {
        /// The key (an int, float, string, bool or None).
        public var key: PythonLiteral
        /// The value.
        public var value: PythonLiteral
    }

    /// The value.
    public var value: Value
    /// Byte offsets of the literal's text in the parsed bytes.
    public var span: Range<Int>
    /// 1-based line of its first byte.
    public var line: Int
    /// 1-based column (in bytes) of its first byte.
    public var column: Int

    /// What Python calls its type: `int`, `float`, `str`, `bool`, `NoneType`, `list`, `dict`.
    public var typeName: String {
        switch value {
        case .int: "int"
        case .float: "float"
        case .string: "str"
        case .bool: "bool"
        case .none: "NoneType"
        case .list: "list"
        case .dict: "dict"
        }
    }

    /// The value of an int or float (Python treats both as numbers), else `nil`.
    public var number: Double? {
        switch value {
        case .int(let n): Double(n)
        case .float(let x): x
        default: nil
        }
    }

    /// The entry whose key equals `key` (int keys match equal floats, as in Python), if this is a dict.
    public func entry(_ key: Value) -> Entry? {
        guard case .dict(let entries) = value else { return nil }
        return entries.first { Self.sameKey($0.key.value, key) }
    }

    static func sameKey(_ a: Value, _ b: Value) -> Bool {
        switch (a, b) {
        case (.int(let x), .float(let y)), (.float(let y), .int(let x)): Double(x) == y
        default: a == b
        }
    }

    /// Python's spelling of a key, for messages: `64`, `'path'`.
    public var pythonText: String {
        switch value {
        case .int(let n): String(n)
        case .float(let x): String(x)
        case .string(let s): "'" + s + "'"
        case .bool(let b): b ? "True" : "False"
        case .none: "None"
        case .list(let items): "[" + items.map(\.pythonText).joined(separator: ", ") + "]"
        case .dict(let entries): "{" + entries.map { $0.key.pythonText + ": " + $0.value.pythonText }.joined(separator: ", ") + "}"
        }
    }
}

/// Why a Python literal could not be read, with the line and column it stopped at.
public struct PythonLiteralError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 1-based line.
    public var line: Int
    /// 1-based column (bytes).
    public var column: Int
    /// What is wrong.
    public var message: String
    public var description: String { "line \(line), column \(column): \(message)" }
}

/// A strict reader of Python literals: dicts, lists, ints, floats, strings, `True`, `False`, `None`,
/// and `#` comments — what `ast.literal_eval` accepts from DTS configs, minus tuples, sets, bytes,
/// complex numbers and implicit string concatenation, which are errors. A dict key given twice
/// is an error (Python would keep the last silently). It works on UTF-8 bytes, never `Character`s.
public enum PythonLiteralParser {
    /// How line breaks inside the literal are read.
    public enum Layout: Sendable {
        /// The whole text is the literal; line breaks are blanks.
        case text
        /// The literal is a `configparser` value in a file: it may go on over indented
        /// continuation lines (blank and comment lines in between are skipped, as configparser
        /// does); a line that is not indented ends the value.
        case configValue
    }

    /// Parses one literal from `bytes[start...]` and checks that only blanks and comments follow
    /// (up to the end of the text, or of the config value). `line`/`column` are those of `start`.
    /// Returns the literal and the offset just after the value.
    public static func parse(_ bytes: [UInt8], from start: Int = 0, line: Int = 1, column: Int = 1,
                             layout: Layout = .text) throws(PythonLiteralError) -> (literal: PythonLiteral, end: Int) {
        var reader = Reader(bytes: bytes, index: start, line: line, lineStart: start - (column - 1), layout: layout)
        try reader.skipTrivia()
        guard !reader.atEnd else { throw reader.error("expected a value, found nothing") }
        let literal = try reader.value(depth: 0)
        let afterValue = reader.index
        try reader.skipTrivia()
        if !reader.atEnd {
            throw reader.error("unexpected \(reader.describe(reader.peek)) after the value")
        }
        return (literal, max(afterValue, reader.valueEnd ?? afterValue))
    }

    /// Parses a whole string (`.text` layout).
    public static func parse(_ text: String) throws(PythonLiteralError) -> PythonLiteral {
        try parse(Array(text.utf8)).literal
    }
}

private struct Reader {
    let bytes: [UInt8]
    var index: Int
    var line: Int
    var lineStart: Int
    let layout: PythonLiteralParser.Layout
    /// Where a config value ended (the start of the first line that is not a continuation).
    var valueEnd: Int?
    static let maxDepth = 100

    var atEnd: Bool { index >= (valueEnd ?? bytes.count) }
    var peek: UInt8 { bytes[index] }
    var column: Int { index - lineStart + 1 }

    func error(_ message: String) -> PythonLiteralError { PythonLiteralError(line: line, column: column, message: message) }
    func error(_ message: String, at literalLine: Int, _ literalColumn: Int) -> PythonLiteralError {
        PythonLiteralError(line: literalLine, column: literalColumn, message: message)
    }

    func describe(_ byte: UInt8) -> String {
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        if byte == 0x0A || byte == 0x0D { return "end of line" }
        return String(format: "byte 0x%02X", byte)
    }

    /// Skips blanks, comments and line breaks (in `.configValue`, stops at a line that is not a continuation).
    mutating func skipTrivia() throws(PythonLiteralError) {
        while !atEnd {
            switch peek {
            case 0x20, 0x09, 0x0C: index += 1
            case 0x23: // '#'
                while !atEnd, peek != 0x0A, peek != 0x0D { index += 1 }
            case 0x0A, 0x0D:
                newline()
                if case .configValue = layout { continuation() }
            default: return
            }
        }
    }

    /// Consumes `\n`, `\r` or `\r\n`.
    mutating func newline() {
        if peek == 0x0D, index + 1 < bytes.count, bytes[index + 1] == 0x0A { index += 1 }
        index += 1
        line += 1
        lineStart = index
    }

    /// At the start of a line of a config file: skips blank and comment lines, and ends the value at
    /// a line that is not indented.
    mutating func continuation() {
        while index < bytes.count {
            var i = index
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0C { i += 1 }
            let indented = i > index
            let blank = i >= bytes.count || bytes[i] == 0x0A || bytes[i] == 0x0D
            let comment = !blank && (bytes[i] == 0x23 || bytes[i] == 0x3B)
            if blank || comment {
                index = i
                while index < bytes.count, bytes[index] != 0x0A, bytes[index] != 0x0D { index += 1 }
                if index >= bytes.count { break }
                newline()
                continue
            }
            if !indented { valueEnd = index }
            return
        }
        valueEnd = bytes.count
    }

    mutating func value(depth: Int) throws(PythonLiteralError) -> PythonLiteral {
        guard depth < Self.maxDepth else { throw error("nested more than \(Self.maxDepth) deep") }
        let start = index, startLine = line, startColumn = column
        func literal(_ value: PythonLiteral.Value, _ end: Int) -> PythonLiteral {
            PythonLiteral(value: value, span: start..<end, line: startLine, column: startColumn)
        }
        switch peek {
        case UInt8(ascii: "{"):
            index += 1
            var entries: [PythonLiteral.Entry] = []
            while true {
                try skipTrivia()
                guard !atEnd else { throw error("'{' opened at line \(startLine), column \(startColumn) is not closed", at: line, column) }
                if peek == UInt8(ascii: "}") { index += 1; break }
                let key = try value(depth: depth + 1)
                switch key.value {
                case .list, .dict: throw error("a dict key must be a number, string, True, False or None, not a \(key.typeName)", at: key.line, key.column)
                default: break
                }
                if let previous = entries.first(where: { PythonLiteral.sameKey($0.key.value, key.value) }) {
                    throw error("dict key \(key.pythonText) given twice (first at line \(previous.key.line), column \(previous.key.column))", at: key.line, key.column)
                }
                try skipTrivia()
                guard !atEnd, peek == UInt8(ascii: ":") else { throw error("expected ':' after dict key \(key.pythonText)\(atEnd ? "" : ", found \(describe(peek))")") }
                index += 1
                try skipTrivia()
                guard !atEnd else { throw error("expected a value for dict key \(key.pythonText)") }
                entries.append(PythonLiteral.Entry(key: key, value: try value(depth: depth + 1)))
                try skipTrivia()
                guard !atEnd else { continue }
                if peek == UInt8(ascii: ",") { index += 1; continue }
                guard peek == UInt8(ascii: "}") else { throw error("expected ',' or '}' in the dict opened at line \(startLine), column \(startColumn), found \(describe(peek))") }
            }
            return literal(.dict(entries), index)
        case UInt8(ascii: "["):
            index += 1
            var items: [PythonLiteral] = []
            while true {
                try skipTrivia()
                guard !atEnd else { throw error("'[' opened at line \(startLine), column \(startColumn) is not closed") }
                if peek == UInt8(ascii: "]") { index += 1; break }
                items.append(try value(depth: depth + 1))
                try skipTrivia()
                guard !atEnd else { continue }
                if peek == UInt8(ascii: ",") { index += 1; continue }
                guard peek == UInt8(ascii: "]") else { throw error("expected ',' or ']' in the list opened at line \(startLine), column \(startColumn), found \(describe(peek))") }
            }
            return literal(.list(items), index)
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            let text = try string()
            return literal(.string(text), index)
        case UInt8(ascii: "("):
            throw error("tuples and parentheses are not supported here; use a list [...]")
        case UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return literal(try number(), index)
        default:
            var end = index
            while end < bytes.count, Self.isNameByte(bytes[end]) { end += 1 }
            let word = String(decoding: bytes[index..<end], as: UTF8.self)
            switch word {
            case "True": index = end; return literal(.bool(true), end)
            case "False": index = end; return literal(.bool(false), end)
            case "None": index = end; return literal(.none, end)
            case "": throw error("unexpected \(describe(peek)); expected a number, string, list, dict, True, False or None")
            case "true", "false", "none", "TRUE", "FALSE":
                throw error("'\(word)' is not Python; write \(word.lowercased() == "none" ? "None" : word.lowercased() == "true" ? "True" : "False")")
            default:
                throw error("'\(word)' is not a literal (names, calls and expressions are not allowed); quote strings: '\(word)'")
            }
        }
    }

    static func isNameByte(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x5F || byte >= 0x80
    }

    mutating func string() throws(PythonLiteralError) -> String {
        let quote = peek, startLine = line, startColumn = column
        if index + 2 < bytes.count, bytes[index + 1] == quote, bytes[index + 2] == quote {
            throw error("triple-quoted strings are not supported here")
        }
        index += 1
        var out: [UInt8] = []
        while true {
            guard index < bytes.count, bytes[index] != 0x0A, bytes[index] != 0x0D else {
                throw error("string opened at line \(startLine), column \(startColumn) is not closed on its line", at: startLine, startColumn)
            }
            let byte = bytes[index]
            if byte == quote { index += 1; break }
            if byte == UInt8(ascii: "\\") {
                guard index + 1 < bytes.count else { throw error("string ends in a backslash") }
                let escaped = bytes[index + 1]
                switch escaped {
                case UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "\""): out.append(escaped)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                default: throw error("unsupported escape '\\\(Character(Unicode.Scalar(escaped)))' in a string (\\\\, \\', \\\", \\n, \\t, \\r are)")
                }
                index += 2
                continue
            }
            out.append(byte)
            index += 1
        }
        // Implicit concatenation ('a' 'b') is an expression DTS configs never use.
        return String(decoding: out, as: UTF8.self)
    }

    mutating func number() throws(PythonLiteralError) -> PythonLiteral.Value {
        var negative = false
        if peek == UInt8(ascii: "-") || peek == UInt8(ascii: "+") {
            negative = peek == UInt8(ascii: "-")
            index += 1
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 }
            guard index < bytes.count, bytes[index] == UInt8(ascii: ".") || (bytes[index] >= 0x30 && bytes[index] <= 0x39) else {
                throw error("a sign must be followed by a number")
            }
        }
        let start = index, startColumn = column
        while index < bytes.count, Self.isNameByte(bytes[index]) || bytes[index] == UInt8(ascii: ".")
            || ((bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+"))
                && (bytes[index - 1] == UInt8(ascii: "e") || bytes[index - 1] == UInt8(ascii: "E"))
                && !String(decoding: bytes[start..<index], as: UTF8.self).lowercased().hasPrefix("0x")) {
            index += 1
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        let bad = error("'\(text)' is not a number", at: line, startColumn)
        let lower = text.lowercased()
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where lower.hasPrefix(prefix) {
            let digits = try Self.digits(String(lower.dropFirst(2)), bad: bad)
            guard let n = Int(digits, radix: radix) else { throw bad }
            return .int(negative ? -n : n)
        }
        let isFloat = lower.contains(".") || lower.contains("e")
        let plain = try Self.digits(lower, bad: bad)
        if isFloat {
            guard plain.first != "e", let x = Double(plain), x.isFinite, !plain.contains("inf"), !plain.contains("nan") else { throw bad }
            return .float(negative ? -x : x)
        }
        guard !plain.isEmpty, plain.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { throw bad }
        if plain.count > 1, plain.hasPrefix("0"), plain.utf8.contains(where: { $0 != 0x30 }) {
            throw error("'\(text)': leading zeros are not allowed in Python integers", at: line, startColumn)
        }
        guard let n = Int(plain) else { throw error("'\(text)' is too large", at: line, startColumn) }
        return .int(negative ? -n : n)
    }

    /// Removes `_` separators (only between digits, as Python allows).
    static func digits(_ text: String, bad: PythonLiteralError) throws(PythonLiteralError) -> String {
        let bytes = Array(text.utf8)
        for (i, byte) in bytes.enumerated() where byte == 0x5F {
            guard i > 0, i + 1 < bytes.count, isNameByte(bytes[i - 1]), bytes[i - 1] != 0x5F,
                  isNameByte(bytes[i + 1]), bytes[i + 1] != 0x5F else { throw bad }
        }
        return String(decoding: bytes.filter { $0 != 0x5F }, as: UTF8.self)
    }
}
