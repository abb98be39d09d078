import Foundation

/// An INI-like file in the format DTS uses for `conf/*.cfg`.
///
/// The grammar is Python `configparser`'s, which DTS reads its files with:
/// - `[name]` starts a section;
/// - `key = value` or `key: value` (split at the first `=` or `:`); keys are case-insensitive;
/// - an indented line continues the previous key's value;
/// - a line whose first non-blank character is `#` or `;` is a comment;
/// - no interpolation: `%` and `$` are plain characters;
/// - lines end at `\r\n`, `\r` or `\n` (Python's universal newlines), and a UTF-8 byte-order
///   mark at the start is skipped.
///
/// Unlike DTS, a duplicated section or key, a key outside any section, and a line that is none of
/// the above are errors naming the file and line.
public struct ConfFile: Sendable {
    /// One line (or continuation line) of a value, with its line number.
    public struct ValueLine: Sendable, Equatable {
        public var line: Int
        public var text: String
    }

    /// A `key = value` item of a section.
    public struct Item: Sendable, Equatable {
        /// The key, lowercased as configparser does.
        public var key: String
        /// The line of the key.
        public var line: Int
        /// The value's lines: the text after the delimiter, then every continuation line (trimmed).
        public var lines: [ValueLine]

        /// The value as configparser returns it: lines joined with `\n`, blank ones dropped.
        public var value: String {
            lines.map(\.text).filter { !$0.isEmpty }.joined(separator: "\n")
        }
    }

    /// A `[name]` section and its items in file order.
    public struct Section: Sendable, Equatable {
        public var name: String
        public var line: Int
        public var items: [Item]

        /// The item for `key` (case-insensitive), if present.
        public func item(_ key: String) -> Item? {
            let key = key.lowercased()
            return items.first { $0.key == key }
        }
    }

    /// The path the file was read from (as given).
    public var path: String
    /// Sections in file order.
    public var sections: [Section]

    /// The section called `name` (exact match, as configparser), if present.
    public func section(_ name: String) -> Section? {
        sections.first { $0.name == name }
    }

    /// Reads and parses a file, which must be UTF-8 (ASCII is).
    public init(contentsOf path: String) throws(ConfigErrors) {
        let (file, errors) = Self.lenient(contentsOf: path)
        guard let file, errors.isEmpty else { throw ConfigErrors(errors) }
        self = file
    }

    /// Reads and parses a file, keeping what could be read: the sections and items of every
    /// well-formed line, and the problems of the others (each located in the section it falls
    /// in). `file` is `nil` when the file cannot be read at all or is not UTF-8.
    ///
    /// `dts config check` reads DTS's `conf/` this way: a suite's own sections may hold text
    /// that is not `key = value` (a Python literal spanning lines), which matters only in the
    /// sections dts reads.
    public static func lenient(contentsOf path: String) -> (file: ConfFile?, errors: [ConfigError]) {
        let bytes: [UInt8]
        do {
            bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            return (nil, [ConfigError(SourceLocation(file: path, line: 0), "cannot read file: \(Self.reason(error))")])
        }
        switch ConfigText.decodeUTF8(bytes) {
        case .success(let scalars):
            return parse(scalars: scalars, path: path)
        case .failure(let bad):
            return (nil, [ConfigError(SourceLocation(file: path, line: bad.line),
                                      "not valid UTF-8: byte \(bad.byteText) at column \(bad.column); save the file as UTF-8")])
        }
    }

    /// Parses `text`; `path` is used in error messages.
    public init(text: String, path: String) throws(ConfigErrors) {
        try self.init(scalars: Array(text.unicodeScalars), path: path)
    }

    init(scalars: [Unicode.Scalar], path: String) throws(ConfigErrors) {
        let (file, errors) = Self.parse(scalars: scalars, path: path)
        guard errors.isEmpty else { throw ConfigErrors(errors) }
        self = file
    }

    private init(path: String, sections: [Section]) {
        self.path = path
        self.sections = sections
    }

    /// Parses the scalars of a file. Lines end at `\r\n`, `\r` or `\n` (Python's universal
    /// newlines); a leading byte-order mark is skipped. Every test is on Unicode scalars, never
    /// on `Character`s (docs/platform-notes.md).
    static func parse(scalars: [Unicode.Scalar], path: String) -> (ConfFile, [ConfigError]) {
        var sections: [Section] = []
        var errors = ConfigErrorList()
        var lastKeyInSection = false
        // Lines of the sections and of the current section's keys, for the duplicate checks:
        // dictionaries, so that a file of n keys or sections reads in O(n).
        var sectionLines: [String: Int] = [:]
        var keyLines: [String: Int] = [:]
        let body = scalars.first == "\u{FEFF}" ? Array(scalars.dropFirst()) : scalars

        for (index, line) in ConfigText.lines(body).enumerated() {
            let number = index + 1
            let trimmedScalars = ConfigText.trimmed(line)
            let trimmed = ConfigText.string(trimmedScalars)
            let here = SourceLocation(file: path, line: number, section: sections.last?.name)
            if let nul = line.firstIndex(of: "\u{0}") {
                errors.append(ConfigError(here, "NUL character at column \(nul - line.startIndex + 1): config text cannot hold NUL (QEMU's arguments would end at it)"))
            }

            guard let first = trimmedScalars.first else { continue }
            if first == "#" || first == ";" { continue }

            if let lead = line.first, ConfigText.isSpace(lead) {
                guard lastKeyInSection, !sections.isEmpty, !sections[sections.count - 1].items.isEmpty else {
                    errors.append(ConfigError(here, "indented line does not continue any key: '\(trimmed)'"))
                    continue
                }
                let s = sections.count - 1, i = sections[s].items.count - 1
                sections[s].items[i].lines.append(ValueLine(line: number, text: trimmed))
                continue
            }

            if first == "[" {
                guard trimmedScalars.last == "]", trimmedScalars.count > 2 else {
                    errors.append(ConfigError(here, "malformed section header '\(trimmed)'; expected '[name]'"))
                    lastKeyInSection = false
                    continue
                }
                let name = ConfigText.string(ConfigText.trimmed(trimmedScalars.dropFirst().dropLast()))
                if let previous = sectionLines[name] {
                    errors.append(ConfigError(SourceLocation(file: path, line: number, section: name),
                                              "section [\(name)] already defined at line \(previous)"))
                } else {
                    sectionLines[name] = number
                }
                keyLines = [:]
                sections.append(Section(name: name, line: number, items: []))
                lastKeyInSection = false
                continue
            }

            guard let delimiter = trimmedScalars.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
                errors.append(ConfigError(here, "expected 'key = value', '[section]' or a comment, got '\(trimmed)'"))
                continue
            }
            let key = ConfigText.string(ConfigText.trimmed(trimmedScalars[..<delimiter])).lowercased()
            let value = ConfigText.string(ConfigText.trimmed(trimmedScalars[(delimiter + 1)...]))
            guard !key.isEmpty else {
                errors.append(ConfigError(here, "missing key before '\(trimmedScalars[delimiter])'"))
                continue
            }
            guard !sections.isEmpty else {
                errors.append(ConfigError(here, key: key, "key outside any section; add a '[section]' line above it"))
                continue
            }
            let s = sections.count - 1
            if let previous = keyLines[key] {
                errors.append(ConfigError(here, key: key, "key already set at line \(previous) in this section"))
            } else {
                keyLines[key] = number
            }
            sections[s].items.append(Item(key: key, line: number, lines: [ValueLine(line: number, text: value)]))
            lastKeyInSection = true
        }
        return (ConfFile(path: path, sections: sections), errors.list(more: SourceLocation(file: path, line: 0)))
    }

    static func reason(_ error: any Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain,
           let message = strerror(Int32(underlying.code)) {
            return String(cString: message)
        }
        if ns.domain == NSCocoaErrorDomain, ns.code == NSFileReadNoSuchFileError { return "No such file or directory" }
        return ns.localizedDescription
    }
}
