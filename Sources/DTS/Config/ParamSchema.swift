import Foundation

/// The type of an option's value, checked when a config is loaded.
public enum ValueKind: Sendable, Equatable {
    /// Any text.
    case text
    /// A file system path (any text; existence is checked when the VM starts, not here).
    case path
    /// A whole number in a range.
    case integer(ClosedRange<Int>)
    /// A memory size in MiB: `2048`, or with a unit: `512M`, `2G`.
    case sizeMiB
    /// `yes`/`no` (also `true`/`false`, `on`/`off`, `1`/`0`, any case; DTS writes `True`).
    case boolean
    /// Who listens on a vhost-user socket: a ``boolean`` (yes: QEMU), or `server`, which DTS
    /// suites write (`opt_server=server`) because DTS passed the word to QEMU as a chardev flag.
    case serverMode
    /// An Ethernet MAC address `xx:xx:xx:xx:xx:xx`.
    case mac
    /// A host PCI address: `08:00.0` or `0000:08:00.0`.
    case pciAddress
    /// A guest PCI slot, hex (`1f`, `0x1f`) or `slot.function` (`04.0`).
    case pciSlot
    /// A TCP/UDP port, 1...65535.
    case port
    /// A TCP port, or nothing: one is allocated (DTS's `monitor = port=;`).
    case portOrEmpty
    /// Host CPUs: `24 25 26 27`, `0-3`, `0,2` (DTS writes spaces).
    case cpuList
    /// One of a fixed set of words.
    case choice([String])
    /// A QEMU user-network forward: `[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport`.
    case hostForward
    /// A list of QEMU properties `key=value[,key=value...]` (quote the value in the file).
    case properties
    /// Shell-like words: split on blanks, `'...'` and `"..."` group, no expansion of any kind.
    case words

    /// A short description used in error messages.
    public var expected: String {
        switch self {
        case .text: return "text"
        case .path: return "a path"
        case .integer(let range): return "a whole number from \(range.lowerBound) to \(range.upperBound)"
        case .sizeMiB: return "a size in MiB such as 2048, 512M or 2G"
        case .boolean: return "yes or no"
        case .serverMode: return "yes, no or server"
        case .mac: return "a MAC address such as 00:00:20:00:00:20"
        case .pciAddress: return "a host PCI address such as 0000:08:00.0"
        case .pciSlot: return "a guest PCI slot in hex such as 1f or 04.0"
        case .port: return "a port from 1 to 65535"
        case .portOrEmpty: return "a port from 1 to 65535, or nothing to allocate one"
        case .cpuList: return "a list of host CPUs such as '2 3' or 2-3"
        case .choice(let words): return "one of: " + words.joined(separator: ", ")
        case .hostForward: return "a forward such as tcp:127.0.0.1:6000-:22"
        case .properties: return "QEMU properties such as csum=off,gso=off"
        case .words: return "a command line"
        }
    }

    /// Checks `value`; returns `nil` when valid, else what is wrong.
    public func problem(with value: String) -> String? {
        switch self {
        case .text, .path:
            return value.isEmpty ? "empty value" : nil
        case .integer(let range):
            guard let n = ConfigText.decimal(value), range.contains(n) else { return "expected \(expected), got '\(value)'" }
            return nil
        case .sizeMiB:
            return ValueKind.parseSizeMiB(value) == nil ? "expected \(expected), got '\(value)'" : nil
        case .boolean:
            return ValueKind.parseBool(value) == nil ? "expected \(expected), got '\(value)'" : nil
        case .serverMode:
            return ValueKind.parseServerMode(value) == nil ? "expected \(expected), got '\(value)'" : nil
        case .mac:
            return ValueKind.isMAC(value) ? nil : "expected \(expected), got '\(value)'"
        case .pciAddress:
            return ValueKind.normalizedPCIAddress(value) == nil ? "expected \(expected), got '\(value)'" : nil
        case .pciSlot:
            return ValueKind.normalizedSlot(value) == nil ? "expected \(expected), got '\(value)'" : nil
        case .port, .portOrEmpty:
            if self == .portOrEmpty, value.isEmpty { return nil }
            guard let n = ConfigText.decimal(value), (1...65535).contains(n) else { return "expected \(expected), got '\(value)'" }
            return nil
        case .cpuList:
            return ValueKind.parseCPUList(value) == nil ? "expected \(expected), got '\(value)'" : nil
        case .choice(let words):
            return words.contains(value) ? nil : "expected \(expected), got '\(value)'"
        case .hostForward:
            return ValueKind.parseHostForward(value) == nil ? "expected \(expected), got '\(value)'" : nil
        case .properties:
            return ValueKind.parseProperties(value) == nil ? "expected \(expected), got '\(value)'" : nil
        case .words:
            switch ValueKind.splitWords(value) {
            case .failure(let failure): return failure.description
            case .success(let words): return words.isEmpty ? "empty command" : nil
            }
        }
    }

    // MARK: Parsers shared by validation and handlers
    //
    // Each reads Unicode scalars and ASCII digits only (docs/platform-notes.md): a `:` or `,`
    // followed by a combining mark still separates, and no other script's digits pass.

    /// `2048` → 2048, `512M` → 512, `2G` → 2048; `nil` when malformed or too large to count.
    public static func parseSizeMiB(_ value: String) -> Int? {
        let scalars = Array(value.unicodeScalars)
        let digits = scalars.prefix { ConfigText.isDigit($0, radix: 10) }
        let unit = ConfigText.string(scalars.dropFirst(digits.count))
        let factors = ["": 1, "m": 1, "mb": 1, "mib": 1, "g": 1024, "gb": 1024, "gib": 1024]
        guard unit.unicodeScalars.allSatisfy(\.isASCII), let factor = factors[unit.lowercased()],
              let n = ConfigText.decimal(ConfigText.string(digits)), n > 0 else { return nil }
        let (size, overflow) = n.multipliedReportingOverflow(by: factor)
        return overflow ? nil : size
    }

    /// `yes`/`no` and friends.
    public static func parseBool(_ value: String) -> Bool? {
        switch value.lowercased() {
        case "yes", "true", "on", "1", "y": return true
        case "no", "false", "off", "0", "n": return false
        default: return nil
        }
    }

    /// `opt_server`: a boolean, or `server` (true), as DTS suites write it.
    public static func parseServerMode(_ value: String) -> Bool? {
        value.lowercased() == "server" ? true : parseBool(value)
    }

    static func isMAC(_ value: String) -> Bool {
        let parts = value.scalarSplit(":")
        return parts.count == 6 && parts.allSatisfy { ConfigText.isHex($0, length: 2...2) }
    }

    /// `08:00.0` → `0000:08:00.0`.
    public static func normalizedPCIAddress(_ value: String) -> String? {
        let parts = value.lowercased().scalarSplit(":")
        let (domain, bus, rest): (String, String, String)
        switch parts.count {
        case 2: (domain, bus, rest) = ("0000", parts[0], parts[1])
        case 3: (domain, bus, rest) = (parts[0], parts[1], parts[2])
        default: return nil
        }
        let devFn = rest.scalarSplit(".")
        guard devFn.count == 2, ConfigText.isHex(domain, length: 4...4), ConfigText.isHex(bus, length: 2...2),
              ConfigText.isHex(devFn[0], length: 2...2), let d = Int(devFn[0], radix: 16), d < 32,
              let f = ConfigText.decimal(devFn[1]), devFn[1].unicodeScalars.count == 1, f < 8 else { return nil }
        return "\(domain):\(bus):\(devFn[0]).\(devFn[1])"
    }

    /// `1f` → `1f`, `0x04` → `04`, `04.1` → `04.1`. QEMU's `addr=` syntax.
    public static func normalizedSlot(_ value: String) -> String? {
        var text = value.lowercased()
        if text.unicodeScalars.starts(with: "0x".unicodeScalars) { text = ConfigText.string(text.unicodeScalars.dropFirst(2)) }
        let parts = text.scalarSplit(".")
        guard (1...2).contains(parts.count), ConfigText.isHex(parts[0], length: 1...2),
              let slot = Int(parts[0], radix: 16), slot < 32 else { return nil }
        let hex = String(format: "%02x", slot)
        if parts.count == 2 {
            guard parts[1].unicodeScalars.count == 1, let fn = ConfigText.decimal(parts[1]), fn < 8 else { return nil }
            return "\(hex).\(fn)"
        }
        return hex
    }

    /// `24 25`, `0-3`, `0,2 4-5` → the CPUs in written order, no duplicates.
    public static func parseCPUList(_ value: String) -> [Int]? {
        var cpus: [Int] = []
        let tokens = value.scalarSplit(" ,\t", omittingEmpty: true)
        guard !tokens.isEmpty else { return nil }
        for token in tokens {
            let bounds = token.scalarSplit("-")
            if bounds.count == 1, let n = ConfigText.decimal(bounds[0]) {
                cpus.append(n)
            } else if bounds.count == 2, let a = ConfigText.decimal(bounds[0]), let b = ConfigText.decimal(bounds[1]), a <= b, b - a < 4096 {
                cpus.append(contentsOf: a...b)
            } else {
                return nil
            }
        }
        return Set(cpus).count == cpus.count ? cpus : nil
    }

    /// A parsed user-network forward.
    public struct HostForward: Sendable, Equatable {
        public var proto: String
        public var hostAddress: String
        public var hostPort: Int
        public var guestAddress: String
        public var guestPort: Int

        /// QEMU's `hostfwd=` syntax.
        public var qemuSyntax: String { "\(proto):\(hostAddress):\(hostPort)-\(guestAddress):\(guestPort)" }
    }

    /// `tcp:127.0.0.1:6000-:22`, `::6000-:22`, `udp:0.0.0.0:5000-10.0.2.15:5000`.
    public static func parseHostForward(_ value: String) -> HostForward? {
        let halves = value.scalarSplit("-")
        guard halves.count == 2 else { return nil }
        let host = halves[0].scalarSplit(":")
        let guest = halves[1].scalarSplit(":")
        let proto: String, hostAddress: String, hostPortText: String
        switch host.count {
        case 2: (proto, hostAddress, hostPortText) = ("tcp", host[0], host[1])
        case 3: (proto, hostAddress, hostPortText) = (host[0].isEmpty ? "tcp" : host[0], host[1], host[2])
        default: return nil
        }
        guard guest.count == 2, ["tcp", "udp"].contains(proto),
              let hostPort = ConfigText.decimal(hostPortText), (0...65535).contains(hostPort),
              let guestPort = ConfigText.decimal(guest[1]), (1...65535).contains(guestPort),
              hostAddress.isEmpty || isIPv4(hostAddress), guest[0].isEmpty || isIPv4(guest[0]) else { return nil }
        return HostForward(proto: proto, hostAddress: hostAddress, hostPort: hostPort, guestAddress: guest[0], guestPort: guestPort)
    }

    static func isIPv4(_ value: String) -> Bool {
        let parts = value.scalarSplit(".")
        return parts.count == 4 && parts.allSatisfy { p in
            p.unicodeScalars.count <= 3 && ConfigText.decimal(p).map { (0...255).contains($0) } ?? false
        }
    }

    /// `csum=off,gso=off` → pairs. Keys are QEMU property names (ASCII letters, digits, `-_.`);
    /// values must not be empty.
    public static func parseProperties(_ value: String) -> [(String, String)]? {
        var pairs: [(String, String)] = []
        for part in value.scalarSplit(",") {
            let kv = part.scalarSplit("=", maxSplits: 1)
            guard kv.count == 2, !kv[0].isEmpty, !kv[1].isEmpty,
                  kv[0].unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ConfigText.isDigit($0, radix: 10) || "-_.".unicodeScalars.contains($0)) })
            else { return nil }
            pairs.append((kv[0], kv[1]))
        }
        return pairs.isEmpty ? nil : pairs
    }

    /// Splits a command into words like a shell would, but without any expansion:
    /// blanks separate words, `'...'` and `"..."` group (with `\"` and `\\` inside double quotes).
    /// Reads Unicode scalars: a quote followed by a combining mark still quotes.
    public static func splitWords(_ value: String) -> Result<[String], WordsError> {
        var words: [String] = []
        var current = String.UnicodeScalarView()
        var inWord = false
        var quote: Unicode.Scalar?
        var scalars = Array(value.unicodeScalars)[...]
        while let c = scalars.popFirst() {
            if let q = quote {
                if c == q { quote = nil; continue }
                if q == "\"", c == "\\", let next = scalars.first, next == "\"" || next == "\\" {
                    current.append(next); scalars.removeFirst(); continue
                }
                current.append(c)
            } else if c == "'" || c == "\"" {
                quote = c; inWord = true
            } else if ConfigText.isSpace(c) {
                if inWord { words.append(String(current)); current = String.UnicodeScalarView(); inWord = false }
            } else {
                current.append(c); inWord = true
            }
        }
        if quote != nil { return .failure(WordsError(description: "unterminated quote in '\(value)'")) }
        if inWord { words.append(String(current)) }
        return .success(words)
    }

    /// Why a command could not be split into words.
    public struct WordsError: Error, Sendable { public var description: String }
}

/// One option a parameter accepts.
public struct OptionSpec: Sendable {
    /// The option's name as written in configs.
    public var name: String
    /// Its type.
    public var kind: ValueKind
    /// Whether an entry must have it.
    public var required: Bool
    /// What is used when it is absent (for documentation and `dts config show`).
    public var defaultValue: String?
    /// One line on what it does.
    public var summary: String
    /// Set for an option DTS's configs or suites write but dts does not use: what dts does
    /// instead. Any value is accepted, with a warning saying so.
    public var ignored: String?

    public init(_ name: String, _ kind: ValueKind, required: Bool = false, default defaultValue: String? = nil, _ summary: String) {
        self.name = name
        self.kind = kind
        self.required = required
        self.defaultValue = defaultValue
        self.summary = summary
    }

    /// An option DTS's configs or suites write that dts accepts with a warning and ignores;
    /// `instead` says what dts does instead.
    public static func ignored(_ name: String, _ instead: String) -> OptionSpec {
        var spec = OptionSpec(name, .text, "accepted for DTS configs and ignored: " + instead)
        spec.ignored = instead
        return spec
    }
}

/// What a parameter accepts: either one set of options, or a set per kind chosen by a
/// discriminating option (`net type=...`, `device driver=...`, `control type=...`).
public struct ParamSpec: Sendable {
    /// A variant of a discriminated parameter.
    public struct Variant: Sendable {
        public var name: String
        public var options: [OptionSpec]
        public var summary: String
        public init(_ name: String, _ summary: String, _ options: [OptionSpec]) {
            self.name = name
            self.options = options
            self.summary = summary
        }
    }

    /// The parameter's name.
    public var name: String
    /// One line on what it does.
    public var summary: String
    /// The discriminating option, if any (`type`, `driver`).
    public var discriminator: String?
    /// Options when there is no discriminator.
    public var options: [OptionSpec]
    /// Variants when there is a discriminator.
    public var variants: [Variant]
    /// Variant values that DTS knew but modern QEMU or DPDK cannot do, with the error to show.
    public var removedVariants: [String: String]
    /// Whether more than one entry is allowed.
    public var repeatable: Bool

    public init(name: String, summary: String, repeatable: Bool = false, options: [OptionSpec]) {
        self.name = name
        self.summary = summary
        self.discriminator = nil
        self.options = options
        self.variants = []
        self.removedVariants = [:]
        self.repeatable = repeatable
    }

    public init(name: String, summary: String, discriminator: String, repeatable: Bool = true,
                variants: [Variant], removed: [String: String] = [:]) {
        self.name = name
        self.summary = summary
        self.discriminator = discriminator
        self.options = []
        self.variants = variants
        self.removedVariants = removed
        self.repeatable = repeatable
    }

    /// Checks every entry of `param`; returns all problems found.
    public func validate(_ param: VirtParam) -> [ConfigError] { check(param).errors }

    /// Checks every entry of `param`: the problems found, and the warnings for what is accepted
    /// but not used as written (options marked ``OptionSpec/ignored``).
    public func check(_ param: VirtParam) -> (errors: [ConfigError], warnings: [ConfigWarning]) {
        var errors = ConfigErrorList()
        var warnings: [ConfigWarning] = []
        if !repeatable, param.entries.count > 1 {
            errors.append(ConfigError(param.entries[1].location, key: name,
                                      "takes one entry, got \(param.entries.count); remove the extra ';'-separated entries"))
        }
        for entry in param.entries {
            var allowed = options
            if let discriminator {
                guard let kindOption = entry.option(discriminator) else {
                    errors.append(ConfigError(entry.location, key: name,
                        "entry '\(entry.text)' has no '\(discriminator)'; expected \(discriminator)=" + variants.map(\.name).joined(separator: "|")))
                    continue
                }
                if let message = removedVariants[kindOption.value] {
                    errors.append(ConfigError(kindOption.location, key: name, "\(discriminator)=\(kindOption.value): \(message)"))
                    continue
                }
                guard let variant = variants.first(where: { $0.name == kindOption.value }) else {
                    errors.append(ConfigError(kindOption.location, key: name,
                        Spelling.unknown(discriminator, kindOption.value, known: variants.map(\.name))))
                    continue
                }
                allowed = variant.options
            }
            let known = allowed.map(\.name) + (discriminator.map { [$0] } ?? [])
            for option in entry.options where (option.key + option.value).containsScalar("\u{0}") {
                errors.append(ConfigError(option.location, key: name, "option '\(option.key)': NUL character in the value (QEMU's arguments would end at it)"))
            }
            for option in entry.options where option.key != discriminator {
                guard let spec = allowed.first(where: { $0.name == option.key }) else {
                    let context = discriminator.flatMap { d in entry[d].map { " for \(d)=\($0)" } } ?? ""
                    errors.append(ConfigError(option.location, key: name,
                        Spelling.unknown("option", option.key, known: known, context: context)))
                    continue
                }
                if let instead = spec.ignored {
                    let context = discriminator.flatMap { d in entry[d].map { " of \(d)=\($0)" } } ?? ""
                    warnings.append(ConfigWarning(option.location, key: name,
                        "option '\(option.key)'\(context) is accepted for DTS configs and ignored: \(instead)"))
                } else if let problem = spec.kind.problem(with: option.value) {
                    errors.append(ConfigError(option.location, key: name, "option '\(option.key)': \(problem)"))
                }
            }
            for spec in allowed where spec.required && entry.option(spec.name) == nil {
                errors.append(ConfigError(entry.location, key: name, "entry '\(entry.text)' lacks required option '\(spec.name)' (\(spec.summary))"))
            }
        }
        return (errors.list(more: param.location, key: name), Array(warnings.prefix(ConfigErrorList.limit)))
    }
}

