import Foundation

/// One DUT of DTS's `crbs.cfg` (a section named by the DUT's address).
public struct CRBConfig: Sendable, Equatable {
    /// The section name.
    public var name: String
    /// `dut_ip`.
    public var dutIP: String
    /// `dut_user` (default `root`).
    public var dutUser: String
    /// `dut_passwd` (may be empty: key or local).
    public var dutPassword: String
    /// `dut_port` (SSH port, default 22).
    public var dutPort: Int
    /// `tester_ip`, if any.
    public var testerIP: String?
    /// `tester_passwd`.
    public var testerPassword: String
    /// Every key of the section, for suites that need more (`channels`, `dut_cores`, ...).
    public var values: [String: String]
    /// Where the section is.
    public var location: SourceLocation

    /// `true` when the DUT is this machine (`127.0.0.1`, `::1`, `localhost`): reached without SSH.
    public var isLocal: Bool { Self.isLocalAddress(dutIP) }

    /// Whether `address` names this machine.
    public static func isLocalAddress(_ address: String) -> Bool {
        ["127.0.0.1", "localhost", "::1"].contains(address.lowercased())
    }

    /// The local machine as the DUT, when `crbs.cfg` does not describe it.
    public static func implicitLocal(_ name: String) -> CRBConfig {
        CRBConfig(name: name, dutIP: name, dutUser: NSUserName(), dutPassword: "", dutPort: 22, testerIP: nil, testerPassword: "",
                  values: [:], location: .builtIn("implicit local DUT"))
    }
}

/// DTS's `crbs.cfg`.
public struct CRBsConfig: Sendable {
    /// The file read.
    public var path: String
    /// DUTs in file order.
    public var crbs: [CRBConfig]

    /// The DUT whose section is `name`.
    public func crb(_ name: String) -> CRBConfig? { crbs.first { $0.name == name } }

    /// Reads and checks `path`.
    public init(path: String) throws(ConfigErrors) {
        let file = try ConfFile(contentsOf: path)
        var errors: [ConfigError] = []
        var crbs: [CRBConfig] = []
        for section in file.sections {
            let here = SourceLocation(file: path, line: section.line, section: section.name)
            errors += ConfigChecker.unknownKeys(in: section, of: path, known: ConfigChecker.crbKeys, what: "crbs.cfg key")
            guard let ip = section.item("dut_ip")?.value, !ip.isEmpty else {
                errors.append(ConfigError(here, key: "dut_ip", "missing: the DUT's address (127.0.0.1 for this machine)"))
                continue
            }
            var port = 22
            if let item = section.item("dut_port") {
                guard let value = Int(item.value), (1...65535).contains(value) else {
                    errors.append(ConfigError(SourceLocation(file: path, line: item.line, section: section.name), key: "dut_port",
                                              "expected a TCP port, got '\(item.value)'"))
                    continue
                }
                port = value
                // This machine is reached without SSH: a port for it would be silently ignored.
                if CRBConfig.isLocalAddress(ip), value != 22 {
                    errors.append(ConfigError(SourceLocation(file: path, line: item.line, section: section.name), key: "dut_port",
                                              "dut_port = \(value) with dut_ip = \(ip): this machine is reached without SSH, so the port would be ignored; remove dut_port, or give the DUT's own address (an SSH forward to another host needs that host's address)"))
                    continue
                }
            }
            var values: [String: String] = [:]
            for item in section.items { values[item.key] = item.value }
            let tester = section.item("tester_ip")?.value
            crbs.append(CRBConfig(name: section.name, dutIP: ip, dutUser: section.item("dut_user")?.value ?? "root",
                                  dutPassword: section.item("dut_passwd")?.value ?? "", dutPort: port,
                                  testerIP: (tester?.isEmpty ?? true) ? nil : tester,
                                  testerPassword: section.item("tester_passwd")?.value ?? "", values: values, location: here))
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        self.path = path
        self.crbs = crbs
    }
}
