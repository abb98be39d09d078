import Foundation

/// One `key=value` option of a parameter entry, e.g. `opt_mac=00:00:20:00:00:20`.
public struct VirtOption: Sendable, Equatable {
    /// The option's name (`opt_mac`, `model`, `driver`).
    public var key: String
    /// The option's value with quotes removed; empty when the option was written without `=`.
    public var value: String
    /// Where the option was written.
    public var location: SourceLocation

    public init(key: String, value: String, location: SourceLocation) {
        self.key = key
        self.value = value
        self.location = location
    }
}

/// One entry of a parameter: the `key=value,key=value` list between two `;`.
///
/// This is one of the dictionaries in DTS's parameter list, e.g.
/// `{'driver': 'vhost-user', 'opt_path': './vhost-net'}`, keeping the written order.
public struct VirtEntry: Sendable, Equatable {
    /// The options in written order.
    public var options: [VirtOption]
    /// Where the entry starts.
    public var location: SourceLocation

    public init(options: [VirtOption], location: SourceLocation) {
        self.options = options
        self.location = location
    }

    /// Builds an entry from code, e.g. `setVMDevice(["driver": "vhost-user", ...])`.
    public init(_ pairs: [(String, String)], location: SourceLocation) {
        self.options = pairs.map { VirtOption(key: $0.0, value: $0.1, location: location) }
        self.location = location
    }

    /// The value of `key`, if present.
    public subscript(key: String) -> String? {
        options.first { $0.key == key }?.value
    }

    /// The option called `key`, if present.
    public func option(_ key: String) -> VirtOption? {
        options.first { $0.key == key }
    }

    /// The entry as DTS prints it: `key=value,key=value` (values quoted when needed).
    public var text: String {
        options.map { option in
            let needsQuotes = option.value.unicodeScalars.contains(where: { ",;\"".unicodeScalars.contains($0) }) || option.value.hasPrefix(" ")
            guard needsQuotes else { return "\(option.key)=\(option.value)" }
            let escaped = option.value.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"")
            return "\(option.key)=\"\(escaped)\""
        }.joined(separator: ",")
    }
}

/// A VM parameter with its entries: `device = entry; entry;` gives `device` with two entries.
public struct VirtParam: Sendable, Equatable {
    /// The parameter's name (`cpu`, `mem`, `device`, ...).
    public var name: String
    /// The entries in written order.
    public var entries: [VirtEntry]
    /// Where the parameter was set.
    public var location: SourceLocation

    public init(name: String, entries: [VirtEntry], location: SourceLocation) {
        self.name = name
        self.entries = entries
        self.location = location
    }
}

/// Splits a DTS parameter value into entries and options.
///
/// `entry; entry;` where an entry is `key=value,key=value`, each option split at the first `=`,
/// exactly as DTS does. Whitespace (including line breaks) around keys and values is ignored.
/// A value that starts with `"` runs to the closing `"` and may then hold `,`, `;` and `=`
/// (`\"` and `\\` escape a quote and a backslash); no DTS file starts a value with a quote, so
/// existing files read the same.
public enum VirtValueParser {
    /// Parses the value lines of `item` (from a ``ConfFile``).
    public static func parse(_ lines: [ConfFile.ValueLine], file: String, section: String?, key: String) throws(ConfigErrors) -> [VirtEntry] {
        var scalars: [(Unicode.Scalar, Int)] = []
        for (index, line) in lines.enumerated() {
            if index > 0 { scalars.append(("\n", line.line)) }
            for scalar in line.text.unicodeScalars { scalars.append((scalar, line.line)) }
        }
        return try parse(scalars, file: file, section: section, key: key)
    }

    /// Parses one value written on a single line, e.g. a `--device` option on the command line.
    public static func parse(_ text: String, file: String, line: Int = 0, section: String? = nil, key: String) throws(ConfigErrors) -> [VirtEntry] {
        try parse(text.unicodeScalars.map { ($0, line) }, file: file, section: section, key: key)
    }

    /// The scanner. It reads Unicode scalars, never `Character`s: a `,` or `;` followed by a
    /// combining mark separates here as it does for DTS's Python (docs/platform-notes.md).
    private static func parse(_ chars: [(Unicode.Scalar, Int)], file: String, section: String?, key param: String) throws(ConfigErrors) -> [VirtEntry] {
        var entries: [VirtEntry] = []
        var errors = ConfigErrorList()
        var options: [VirtOption] = []
        var optionKeys: Set<String> = []
        var entryLine: Int?
        var i = 0

        func location(_ line: Int) -> SourceLocation { SourceLocation(file: file, line: line, section: section) }
        func skipBlanks() { while i < chars.count, ConfigText.isSpace(chars[i].0) { i += 1 } }
        func isOptionEnd(_ scalar: Unicode.Scalar) -> Bool { scalar == "," || scalar == ";" }
        func finishEntry() {
            if !options.isEmpty, let line = entryLine {
                entries.append(VirtEntry(options: options, location: location(line)))
            }
            options = []
            optionKeys = []
            entryLine = nil
        }

        while true {
            skipBlanks()
            guard i < chars.count else { break }
            if chars[i].0 == ";" { finishEntry(); i += 1; continue }
            if chars[i].0 == "," { i += 1; continue }

            // key
            let keyLine = chars[i].1
            var keyScalars = String.UnicodeScalarView()
            while i < chars.count, chars[i].0 != "=", !isOptionEnd(chars[i].0) { keyScalars.append(chars[i].0); i += 1 }
            let key = String(keyScalars).scalarTrimmed
            if entryLine == nil { entryLine = keyLine }
            guard i < chars.count, chars[i].0 == "=" else {
                // DTS's partition('=') gives an empty value for a bare word.
                if key.containsScalar("\n") {
                    errors.append(ConfigError(location(keyLine), key: param, "line break inside option '\(key.firstLine)'; is a ';' missing at the end of line \(keyLine)?"))
                } else {
                    options.append(VirtOption(key: key, value: "", location: location(keyLine)))
                    optionKeys.insert(key)
                }
                continue
            }
            i += 1  // '='
            while i < chars.count, chars[i].0 == " " || chars[i].0 == "\t" { i += 1 }

            // value
            var valueScalars = String.UnicodeScalarView()
            let value: String
            if i < chars.count, chars[i].0 == "\"" {
                let quoteLine = chars[i].1
                i += 1
                var closed = false
                while i < chars.count {
                    let c = chars[i].0
                    if c == "\\", i + 1 < chars.count, chars[i + 1].0 == "\"" || chars[i + 1].0 == "\\" {
                        valueScalars.append(chars[i + 1].0); i += 2; continue
                    }
                    if c == "\"" { closed = true; i += 1; break }
                    valueScalars.append(c); i += 1
                }
                if !closed {
                    errors.append(ConfigError(location(quoteLine), key: param, "option '\(key)': unterminated quoted value"))
                    break
                }
                value = String(valueScalars)
                skipBlanks()
                if i < chars.count, !isOptionEnd(chars[i].0) {
                    errors.append(ConfigError(location(chars[i].1), key: param, "option '\(key)': unexpected text after the closing quote; separate options with ','"))
                    while i < chars.count, !isOptionEnd(chars[i].0) { i += 1 }
                }
            } else {
                while i < chars.count, !isOptionEnd(chars[i].0) { valueScalars.append(chars[i].0); i += 1 }
                value = String(valueScalars).scalarTrimmed
                if value.containsScalar("\n") {
                    errors.append(ConfigError(location(keyLine), key: param,
                        "option '\(key)': value '\(value.firstLine)' continues on the next line; is a ';' missing at the end of line \(keyLine)?"))
                    continue
                }
            }
            if key.isEmpty {
                errors.append(ConfigError(location(keyLine), key: param, "missing option name before '=\(value)'"))
                continue
            }
            guard optionKeys.insert(key).inserted else {
                errors.append(ConfigError(location(keyLine), key: param, "option '\(key)' given twice in one entry"))
                continue
            }
            options.append(VirtOption(key: key, value: value, location: location(keyLine)))
        }
        finishEntry()
        if !errors.isEmpty { throw ConfigErrors(errors.list(more: location(chars.first?.1 ?? 0), key: param)) }
        return entries
    }
}

extension String {
    /// `nil` when empty.
    var nonEmpty: String? { isEmpty ? nil : self }

    /// The text up to the first line break (scalar `\n`).
    var firstLine: String { scalarSplit("\n", maxSplits: 1).first ?? "" }

    /// Replaces every occurrence of the scalar `target`. Works on Unicode scalars, not
    /// `Character`s: a `,` or `"` followed by a combining mark is one `Character`, yet QEMU, the
    /// shell and DTS's Python all read it as that separator (see docs/platform-notes.md).
    func replacingAll(_ target: Unicode.Scalar, with replacement: String) -> String {
        var result = String.UnicodeScalarView()
        for scalar in unicodeScalars {
            if scalar == target { result.append(contentsOf: replacement.unicodeScalars) } else { result.append(scalar) }
        }
        return String(result)
    }
}
