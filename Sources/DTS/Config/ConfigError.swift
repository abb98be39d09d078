/// Where a config value came from: file, line, section and key.
public struct SourceLocation: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The file path as given to the loader (or a label such as `<built-in defaults>`).
    public var file: String
    /// 1-based line number, or 0 when the value does not come from a file.
    public var line: Int
    /// The section the value belongs to (a VM name, `KVM`, ...), if any.
    public var section: String?

    public init(file: String, line: Int, section: String? = nil) {
        self.file = file
        self.line = line
        self.section = section
    }

    /// The location of values that frameworks code adds itself.
    public static func builtIn(_ what: String = "built-in defaults", section: String? = nil) -> SourceLocation {
        SourceLocation(file: "<\(what)>", line: 0, section: section)
    }

    public var description: String { line > 0 ? "\(file):\(line)" : file }
}

/// One problem found in a config file or in the parameters of a VM.
///
/// The message always names the file and line, the section and the key, so that a lab engineer
/// can fix the file without reading dts code.
public struct ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Where the problem is.
    public var location: SourceLocation
    /// The parameter or key involved (`cpu`, `device`, `dut_ip`), if any.
    public var key: String?
    /// What is wrong and, where possible, how to fix it.
    public var message: String

    public init(_ location: SourceLocation, key: String? = nil, _ message: String) {
        self.location = location
        self.key = key
        self.message = message
    }

    /// `file:line: [section] key: message`, safe to print: control characters are escaped and
    /// long values cut (``ConfigText/printable(_:valueLimit:totalLimit:)``), whatever the config holds.
    public var description: String { Self.line(location, key, message, label: nil) }

    /// One diagnostic line: `file:line: [label: ][section] key: message`, made safe to print.
    static func line(_ location: SourceLocation, _ key: String?, _ message: String, label: String?) -> String {
        var text = ConfigText.printable(location.description) + ":"
        if let label { text += " \(label):" }
        if let section = location.section { text += " [\(ConfigText.printable(section, totalLimit: 120))]" }
        if let key { text += " \(ConfigText.printable(key, totalLimit: 120)):" }
        return text + " " + ConfigText.printable(message)
    }
}

/// Something a config says that dts accepts but reads differently from its letter: a key DTS's
/// configs or suites use that has no effect here, a DTS rule dts follows with a twist, or a
/// section dts does not read. Never a reason to refuse the config.
///
/// Warnings name the file and line like errors do; `note`s only inform (`dts config check` says
/// which sections it does not read).
public struct ConfigWarning: Sendable, Hashable, CustomStringConvertible {
    /// How much attention it needs.
    public enum Severity: String, Sendable, Hashable {
        /// Accepted, but dts does something other than what the text literally says.
        case warning
        /// For information: what dts does not read, and why.
        case note
    }

    /// Where the config says it.
    public var location: SourceLocation
    /// The parameter or key involved, if any.
    public var key: String?
    /// What dts does instead, and why.
    public var message: String
    /// Warning or note.
    public var severity: Severity

    public init(_ location: SourceLocation, key: String? = nil, _ message: String, severity: Severity = .warning) {
        self.location = location
        self.key = key
        self.message = message
        self.severity = severity
    }

    /// `file:line: warning: [section] key: message` (or `note:`), safe to print.
    public var description: String { ConfigError.line(location, key, message, label: severity.rawValue) }
}

/// Several config errors, reported together so that one run shows every problem.
public struct ConfigErrors: Error, Sendable, Equatable, CustomStringConvertible {
    /// The errors in the order they were found.
    public var errors: [ConfigError]

    public init(_ errors: [ConfigError]) { self.errors = errors }

    /// The most lines ``description`` prints.
    public static let printedLimit = 200

    /// One line per distinct error, in order; past ``printedLimit`` lines, one saying how many
    /// more there are.
    public var description: String {
        var seen = Set<ConfigError>()
        var lines: [String] = []
        var more = 0
        for error in errors where seen.insert(error).inserted {
            if lines.count < Self.printedLimit { lines.append(error.description) } else { more += 1 }
        }
        if more > 0 { lines.append("... and \(more) more errors") }
        return lines.joined(separator: "\n")
    }
}

/// The problems of one source (a file, a section, a parameter), collected as a compiler
/// reports them: each once, in order, and at most ``limit``. A file of a million bad lines is
/// then reported in time linear in its size, with a last error saying that more follow.
struct ConfigErrorList {
    /// The most problems one source lists.
    static let limit = 100

    private(set) var errors: [ConfigError] = []
    private var seen: Set<ConfigError> = []
    private var more = false

    var isEmpty: Bool { errors.isEmpty }

    /// Adds `error` unless it is already listed; past ``limit``, the error is not even built.
    mutating func append(_ error: @autoclosure () -> ConfigError) {
        guard errors.count < Self.limit else { more = true; return }
        let error = error()
        if seen.insert(error).inserted { errors.append(error) }
    }

    mutating func append(contentsOf errors: [ConfigError]) {
        for error in errors { append(error) }
    }

    /// The listed errors, then, if some were left out, one at `location` saying so.
    func list(more location: SourceLocation, key: String? = nil) -> [ConfigError] {
        more ? errors + [ConfigError(location, key: key, "more problems follow; listing stopped after \(Self.limit)")] : errors
    }
}

/// Suggests the closest known name for a misspelt one ("did you mean ...?").
enum Spelling {
    static func closest(to word: String, in candidates: [String]) -> String? {
        let lowered = Array(word.lowercased().unicodeScalars)
        let limit = max(1, min(3, lowered.count / 3))
        var best: (String, Int)?
        for candidate in candidates {
            let other = Array(candidate.lowercased().unicodeScalars)
            // The distance is at least the difference in length: skip what cannot be close.
            guard abs(other.count - lowered.count) <= limit else { continue }
            let d = distance(lowered, other)
            if d <= limit, d < best?.1 ?? .max { best = (candidate, d) }
        }
        return best?.0
    }

    /// Levenshtein distance between two scalar sequences.
    static func distance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = previous
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }

    /// "unknown X 'y'; did you mean 'z'? known: a, b, c"
    static func unknown(_ what: String, _ name: String, known: [String], context: String = "") -> String {
        var text = "unknown \(what) '\(name)'\(context)"
        if let suggestion = closest(to: name, in: known) { text += " (did you mean '\(suggestion)'?)" }
        return text + "; known: " + known.joined(separator: ", ")
    }
}
