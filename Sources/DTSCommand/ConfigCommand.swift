import ArgumentParser
import DTS
import Foundation

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Check and show config files.",
        subcommands: [Check.self, Show.self, Reference.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate config files and print every error (exit status 2 on any).",
            discussion: """
                Each VM section of a suite config ([vm*] and the sections DTS suites name as VMs) is built \
                as `dts vm cmdline` builds it (with the virt_global.cfg beside it, --accel, --qemu, and this \
                host's hugetlbfs mount and image directory): a file is OK only if `dts vm cmdline` accepts \
                every VM in it, and both print the same warnings. Only [KVM] of virt_global.cfg is read; a \
                suite's own sections and conf/scene/ are not VM configs and are not checked.
                """)

        @Argument(help: "Files to check. Default: every .cfg in --conf-dir.")
        var files: [String] = []

        @OptionGroup var options: VMOptions

        func run() throws {
            let settings = try options.settings()
            let paths: [String]
            if files.isEmpty {
                do { paths = try ConfigChecker.configFiles(in: settings.confDirectory) } catch {
                    throw ValidationError("cannot list \(settings.confDirectory): \(error.localizedDescription)")
                }
            } else {
                paths = files
            }
            let report = ConfigChecker.report(paths: paths, options: settings.buildOptions) {
                StaticAllocator.forThisHost(runtimeRoot: ConfigChecker.checkRuntimeRoot)
            }
            // Notes (what is not read) on standard output; warnings and errors on standard error.
            for note in report.notes { print(note.description) }
            reportConfigWarnings(report.warnings)
            guard report.errors.isEmpty else {
                throw reportConfigErrors(ConfigErrors(report.errors))
            }
            let warned = report.warnings.isEmpty ? "" : " (\(report.warnings.count) warning\(report.warnings.count == 1 ? "" : "s"))"
            print("\(paths.count) file\(paths.count == 1 ? "" : "s") OK\(warned): " + paths.joined(separator: ", "))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a VM's merged parameters, in order, as DTS's parameter dictionaries.")

        @Option(name: .long, help: "Suite whose config describes the VM.") var suite: String
        @Option(name: .long, help: "VM name (section of the suite config).") var vm: String = "vm0"
        @OptionGroup var options: VMOptions

        func run() throws {
            do { try PathComponentName.checkCommandLine([("--vm", vm, "VM name"), ("--suite", suite, "suite name")]) } catch {
                throw reportConfigErrors(error)
            }
            do {
                let kvm = try QEMUKvm(dut: Dut(settings: try options.settings(), run: Run()), vmName: vm, suite: suite)
                for param in kvm.params {
                    let entries = param.entries.map { "{" + $0.options.map { "'\($0.key)': '\($0.value)'" }.joined(separator: ", ") + "}" }
                    print("{'\(param.name)': [\(entries.joined(separator: ", "))]}   # \(param.location)")
                }
            } catch let errors as ConfigErrors {
                throw reportConfigErrors(errors)
            }
        }
    }

    struct Reference: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the reference of every VM parameter and option (Markdown).")

        func run() { print(ParamReference.markdown(), terminator: "") }
    }
}
