import Foundation

/// A suite's own settings: the `[suite]` section of `conf/<suite>.cfg`, plain `key = value`.
///
/// Getters without a default throw a ``ConfigError`` naming the file and line when the key is
/// missing or its value has the wrong type.
public struct SuiteConfig: Sendable {
    /// The file the values come from (it may not exist: then every key is missing).
    public let path: String
    private let section: ConfFile.Section?
    private let sectionName = "suite"
    /// The file's bytes, for Python-literal values located byte by byte (``literal(_:)``).
    private let bytes: [UInt8]?

    /// Reads `[suite]` from `path`; a missing file or section means no keys.
    public init(path: String) throws(ConfigErrors) {
        self.path = path
        if FileManager.default.fileExists(atPath: path) {
            section = try ConfFile(contentsOf: path).section(sectionName)
            bytes = FileManager.default.contents(atPath: path).map { Array($0) }
        } else {
            section = nil
            bytes = nil
        }
    }

    /// Values given in code (tests).
    public init(path: String = "<inline>", values: [String: String]) {
        self.path = path
        section = ConfFile.Section(name: "suite", line: 0, items: values.sorted { $0.key < $1.key }.map {
            ConfFile.Item(key: $0.key.lowercased(), line: 0, lines: [ConfFile.ValueLine(line: 0, text: $0.value)])
        })
        bytes = nil
    }

    /// The keys present.
    public var keys: [String] { section?.items.map(\.key) ?? [] }

    /// The raw value of `key`, if present.
    public func value(_ key: String) -> String? { section?.item(key)?.value }

    /// A required string.
    public func string(_ key: String) throws(ConfigError) -> String {
        guard let item = section?.item(key) else { throw missing(key) }
        return item.value
    }

    /// A string, or `defaultValue` when absent.
    public func string(_ key: String, default defaultValue: String) -> String { value(key) ?? defaultValue }

    /// A required integer.
    public func int(_ key: String) throws(ConfigError) -> Int {
        guard let item = section?.item(key) else { throw missing(key) }
        guard let number = Int(item.value.scalarTrimmed) else {
            throw wrong(item, "expected an integer, got '\(item.value)'")
        }
        return number
    }

    /// An integer, or `defaultValue` when absent (a present but malformed value still throws).
    public func int(_ key: String, default defaultValue: Int) throws(ConfigError) -> Int {
        section?.item(key) == nil ? defaultValue : try int(key)
    }

    /// A required decimal number (`4.5`, `1e-3`, `15`).
    public func double(_ key: String) throws(ConfigError) -> Double {
        guard let item = section?.item(key) else { throw missing(key) }
        let text = item.value.scalarTrimmed
        guard !text.isEmpty, text.unicodeScalars.allSatisfy({ $0.isASCII }), let number = Double(text), number.isFinite else {
            throw wrong(item, "expected a number, got '\(item.value)'")
        }
        return number
    }

    /// A number, or `defaultValue` when absent (a present but malformed value still throws).
    public func double(_ key: String, default defaultValue: Double) throws(ConfigError) -> Double {
        section?.item(key) == nil ? defaultValue : try double(key)
    }

    /// A required boolean: `true/false`, `yes/no`, `on/off`, `1/0` (any case), as configparser.
    public func bool(_ key: String) throws(ConfigError) -> Bool {
        guard let item = section?.item(key) else { throw missing(key) }
        switch item.value.scalarTrimmed.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: throw wrong(item, "expected true/false (or yes/no, on/off, 1/0), got '\(item.value)'")
        }
    }

    /// A boolean, or `defaultValue` when absent.
    public func bool(_ key: String, default defaultValue: Bool) throws(ConfigError) -> Bool {
        section?.item(key) == nil ? defaultValue : try bool(key)
    }

    /// A required comma-separated list (continuation lines allowed); items trimmed, empty ones dropped.
    public func list(_ key: String) throws(ConfigError) -> [String] {
        guard let item = section?.item(key) else { throw missing(key) }
        return Self.split(item.value)
    }

    /// A list, or `defaultValue` when absent.
    public func list(_ key: String, default defaultValue: [String]) -> [String] {
        value(key).map(Self.split) ?? defaultValue
    }

    /// Splits at `,` and line breaks, by Unicode scalar as DTS's Python does.
    static func split(_ value: String) -> [String] {
        value.scalarSplit(",\n").map(\.scalarTrimmed).filter { !$0.isEmpty }
    }

    /// A required Python literal (DTS reads such values with `ast.literal_eval`): `{64: [1024]}`,
    /// `True`, `'text'`, `0.5`. From a file, the literal is read from the file's bytes, so its
    /// ``PythonLiteral/span`` gives byte offsets in the file and its lines are the file's lines.
    public func literal(_ key: String) throws(ConfigError) -> PythonLiteral {
        guard let item = section?.item(key) else { throw missing(key) }
        do {
            if let bytes, item.line > 0, let start = Self.valueStart(in: bytes, line: item.line) {
                return try PythonLiteralParser.parse(bytes, from: start.offset, line: item.line, column: start.column,
                                                     layout: .configValue).literal
            }
            return try PythonLiteralParser.parse(Array(item.value.utf8)).literal
        } catch {
            let location = SourceLocation(file: path, line: item.line > 0 ? error.line : 0, section: sectionName)
            throw ConfigError(location, key: item.key, "not a Python literal (column \(error.column)): \(error.message)")
        }
    }

    /// A Python literal, or `nil` when absent.
    public func literalIfPresent(_ key: String) throws(ConfigError) -> PythonLiteral? {
        section?.item(key) == nil ? nil : try literal(key)
    }

    /// The location of `key`'s line (the section's line when absent).
    public func location(of key: String) -> SourceLocation {
        SourceLocation(file: path, line: section?.item(key)?.line ?? section?.line ?? 0, section: sectionName)
    }

    /// The byte offset and column just after the `=` or `:` of the key on 1-based `line`, with
    /// configparser's line breaks (`\r\n`, `\r`, `\n`) and a leading byte-order mark skipped.
    static func valueStart(in bytes: [UInt8], line: Int) -> (offset: Int, column: Int)? {
        var index = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        var current = 1
        while current < line, index < bytes.count {
            if bytes[index] == 0x0D {
                index += (index + 1 < bytes.count && bytes[index + 1] == 0x0A) ? 2 : 1
                current += 1
            } else if bytes[index] == 0x0A {
                index += 1
                current += 1
            } else {
                index += 1
            }
        }
        let lineStart = index
        while index < bytes.count, bytes[index] != 0x0A, bytes[index] != 0x0D {
            if bytes[index] == UInt8(ascii: "=") || bytes[index] == UInt8(ascii: ":") {
                return (index + 1, index + 1 - lineStart + 1)
            }
            index += 1
        }
        return nil
    }

    private func missing(_ key: String) -> ConfigError {
        let line = section?.line ?? 0
        let where_ = section == nil ? "no [\(sectionName)] section" : "section [\(sectionName)] has no key '\(key)'"
        return ConfigError(SourceLocation(file: path, line: line, section: sectionName), key: key, "required suite setting missing (\(where_))")
    }

    private func wrong(_ item: ConfFile.Item, _ message: String) -> ConfigError {
        ConfigError(SourceLocation(file: path, line: item.line, section: sectionName), key: item.key, message)
    }
}
