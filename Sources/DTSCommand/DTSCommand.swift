import ArgumentParser
import DTS
import Foundation

/// `dts`: the command lab engineers run. It parses arguments and calls the DTS library.
@main
struct DTSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dts",
        abstract: "DPDK virtualization test suites: VMs from DTS configs, booted with QEMU.",
        subcommands: [ConfigCommand.self, VMCommand.self, RunCommand.self, ListCommand.self, ImageCommand.self, ReportCommand.self])

    /// Runs the command; invalid options or arguments exit with ``DTSExitCode/configError`` (2),
    /// as every dts command documents, instead of the argument parser's `EX_USAGE` (64).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            guard exitCode(for: error) == .validationFailure else { exit(withError: error) }
            FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
            Foundation.exit(DTSExitCode.configError.rawValue)
        }
    }
}

extension ExitCode {
    /// ArgumentParser's exit for one of dts's statuses.
    init(_ code: DTSExitCode) { self.init(code.rawValue) }
}

/// Options every command that builds or starts VMs takes.
struct VMOptions: ParsableArguments {
    @Option(name: .long, help: "Directory holding virt_global.cfg and <suite>.cfg.")
    var confDir: String = "conf"

    @Option(name: .long, help: "Accelerator for every VM, overriding enable_kvm (kvm|tcg). Default: $DTS_ACCEL, else the config.")
    var accel: Accelerator?

    @Option(name: .long, help: "How every VM boots, overriding 'start warm=' (warm: restore from a snapshot where safe; cold: from scratch, no snapshot). Default: $DTS_BOOT, else the config (warm).")
    var boot: BootMode?

    @Option(name: .long, help: ArgumentHelp("Emulator for every VM, overriding the config's qemu path= (it must be an executable file on the VM's host).",
                                            valueName: "path"))
    var qemu: String?

    func settings() throws -> RunSettings {
        Log.bootstrap
        if let qemu, qemu.isEmpty { throw ValidationError("--qemu: give the emulator's path") }
        return RunSettings(confDirectory: confDir, accelerator: try accel ?? Self.environment("DTS_ACCEL"), qemuPath: qemu,
                           boot: try boot ?? Self.environment("DTS_BOOT"))
    }

    /// The value of environment variable `name`, if set and not empty.
    private static func environment<Value: RawRepresentable & CaseIterable>(_ name: String) throws -> Value? where Value.RawValue == String {
        guard let text = ProcessInfo.processInfo.environment[name], !text.isEmpty else { return nil }
        guard let value = Value(rawValue: text) else {
            throw ValidationError("\(name)=\(text): expected " + Value.allCases.map(\.rawValue).joined(separator: " or "))
        }
        return value
    }
}

extension Accelerator: ExpressibleByArgument {}
extension BootMode: ExpressibleByArgument {}

/// Prints config warnings to standard error, one per line.
func reportConfigWarnings(_ warnings: [ConfigWarning]) {
    guard !warnings.isEmpty else { return }
    FileHandle.standardError.write(Data(warnings.map { $0.description + "\n" }.joined().utf8))
}

/// Prints config errors to standard error and exits with the config-error status.
func reportConfigErrors(_ errors: ConfigErrors) -> ExitCode {
    FileHandle.standardError.write(Data((errors.description + "\n").utf8))
    return ExitCode(.configError)
}
