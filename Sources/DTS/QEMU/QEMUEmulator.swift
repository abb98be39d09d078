import Foundation

/// A QEMU version as `qemu-system-* --version` prints it (`QEMU emulator version 7.2.22 (...)`).
/// Its ``description`` is `major.minor` (`7.2`), as DTS suites compare it.
public struct QEMUVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public var micro: Int

    public init(major: Int, minor: Int, micro: Int = 0) {
        self.major = major
        self.minor = minor
        self.micro = micro
    }

    /// The version in `--version` output, if it has one.
    public init?(versionOutput text: String) {
        let marker = "QEMU emulator version "
        guard let start = text.range(of: marker) else { return nil }
        let word = String(String.UnicodeScalarView(text[start.upperBound...].unicodeScalars.prefix { $0 != " " && $0 != "\n" && $0 != "(" }))
        let numbers = word.scalarSplit(".")
        guard numbers.count >= 2, numbers.allSatisfy({ ConfigText.decimal($0) != nil }) else { return nil }
        self.init(major: ConfigText.decimal(numbers[0])!, minor: ConfigText.decimal(numbers[1])!,
                  micro: numbers.count > 2 ? ConfigText.decimal(numbers[2])! : 0)
    }

    /// `7.2`.
    public var description: String { "\(major).\(minor)" }

    public static func < (a: QEMUVersion, b: QEMUVersion) -> Bool {
        (a.major, a.minor, a.micro) < (b.major, b.minor, b.micro)
    }
}

/// Which emulator a VM runs, as DTS suites ask (`qemu = path=A; path=B;` lists several; DTS's
/// `set_qemu_emulator` picks one).
extension QEMUKvm {
    /// The emulator this VM will run on its DUT: the one chosen with ``setQemuEmulator(_:)`` or
    /// `--qemu`, else the last of ``qemuPaths`` that is an executable file on the DUT, else the
    /// architecture's `qemu-system-<arch>` from `PATH` (see ``QEMUPathParameter``).
    nonisolated(nonsending) public func resolvedEmulator() async throws -> String {
        if let chosen = emulator ?? dut.settings.qemuPath { return chosen }
        let param = params.last { $0.name == "qemu" }
        let executables = try await dut.executableFiles(param.map(QEMUPathParameter.paths(of:)) ?? [])
        let choice = QEMUPathParameter.choose(param, override: nil, isExecutable: executables.contains)
        if let binary = choice.binary { return binary }
        let architecture = choice.architectureName.flatMap(Architecture.forBinary) ?? Architecture.named(HostFacts.architecture)
        return (architecture ?? Architecture.all[0]).binary
    }

    /// DTS's `set_qemu_emulator`: the VM will run `path`, which must be an executable file on
    /// the DUT (checked now), whatever `qemu path=` says.
    public func setQemuEmulator(_ path: String) async throws {
        guard try await dut.executableFiles([path]).contains(path) else {
            throw ConfigErrors([ConfigError(.builtIn("setQemuEmulator", section: vmName), key: "qemu",
                                            "\(path) is not an executable file on DUT \(dut.name)")])
        }
        emulator = path
    }

    /// The version of `path` (default: ``resolvedEmulator()``), from its `--version` on the DUT.
    nonisolated(nonsending) public func qemuVersion(of path: String? = nil) async throws -> QEMUVersion {
        let binary: String
        if let path { binary = path } else { binary = try await resolvedEmulator() }
        let result = try await dut.exec(argv: [binary, "--version"], timeout: .seconds(30))
        guard result.succeeded, let version = QEMUVersion(versionOutput: result.output) else {
            throw ResourceError("\(binary) --version on DUT \(dut.name) gave no QEMU version (status \(result.status)): \(result.output) \(result.errorOutput)")
        }
        return version
    }
}

extension Dut {
    /// Those of `paths` that are executable files on the DUT (a name without `/` counts when
    /// `PATH` finds it), in one command.
    public func executableFiles(_ paths: [String]) async throws -> Set<String> {
        guard !paths.isEmpty else { return [] }
        let script = #"for p do case "$p" in */*) [ -f "$p" ] && [ -x "$p" ] && printf '%s\0' "$p" ;; "#
            + #"*) command -v -- "$p" >/dev/null 2>&1 && printf '%s\0' "$p" ;; esac; done; true"#
        let result = try await exec(argv: ["sh", "-c", script, "sh"] + paths, timeout: .seconds(30))
        return Set(result.output.split(separator: "\u{0}").map(String.init))
    }
}
