import ArgumentParser
import DTS
import Foundation

/// `dts`: the command lab engineers run. It parses arguments and calls the DTS library.
@main
struct DTSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dts",
        abstract: "DPDK virtualization test suites: VMs from DTS configs, booted with QEMU.",
        subcommands: [ConfigCommand.self, VMCommand.self, RunCommand.self, ListCommand.self])
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

    @Option(name: .long, help: ArgumentHelp("Emulator for every VM, overriding the config's qemu path= (it must be an executable file on the VM's host).",
                                            valueName: "path"))
    var qemu: String?

    func settings() throws -> RunSettings {
        Log.bootstrap
        var accelerator = accel
        if accelerator == nil, let env = ProcessInfo.processInfo.environment["DTS_ACCEL"], !env.isEmpty {
            guard let parsed = Accelerator(rawValue: env) else {
                throw ValidationError("DTS_ACCEL=\(env): expected kvm or tcg")
            }
            accelerator = parsed
        }
        if let qemu, qemu.isEmpty { throw ValidationError("--qemu: give the emulator's path") }
        return RunSettings(confDirectory: confDir, accelerator: accelerator, qemuPath: qemu)
    }
}

extension Accelerator: ExpressibleByArgument {}

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
