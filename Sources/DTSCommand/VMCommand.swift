import ArgumentParser
import DTS
import Foundation

struct VMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm", abstract: "Work with one VM of a suite.",
        subcommands: [CmdLine.self])

    struct CmdLine: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cmdline",
            abstract: "Print the QEMU command line of a VM, one argument per line.",
            discussion: """
                Ports and MACs are shown as the deterministic defaults (SSH forwards from 6000, VNC display 1, ...); \
                `dts vm start` allocates free ones. Runtime files go to --runtime-dir/<vm>.
                """)

        @Option(name: .long, help: "Suite whose config describes the VM.") var suite: String
        @Option(name: .long, help: "VM name (section of the suite config).") var vm: String = "vm0"
        @Option(name: .long, help: "Add a device as a suite would with setVMDevice, e.g. 'driver=vhost-user,opt_path=./vhost-net'. Repeatable.")
        var device: [String] = []
        @Option(name: .long, help: "Directory for the VM's sockets, pid file and logs.")
        var runtimeDir: String = "/tmp/dts-run"
        @Flag(name: .long, help: "Print one shell-quoted, copy-pasteable line instead.") var shell = false
        @Flag(name: .long, help: "Add a note under each argument that differs from what the config literally says.") var explain = false
        @OptionGroup var options: VMOptions

        func run() throws {
            let command: QEMUCommandLine
            do {
                let kvm = try QEMUKvm(dut: Dut(settings: try options.settings()), vmName: vm, suite: suite)
                for (index, text) in device.enumerated() {
                    try kvm.setVMDevice(text, source: "--device #\(index + 1)")
                }
                let allocator = StaticAllocator(
                    runtimeRoot: runtimeDir, hugepageMount: HostFacts.hugetlbfsMount(),
                    imageDirectory: HostFacts.imageDirectory, hostArchitecture: HostFacts.architecture)
                command = try kvm.commandLine(allocator: allocator)
            } catch let errors as ConfigErrors {
                throw reportConfigErrors(errors)
            }
            if shell {
                print(command.shellLine)
                return
            }
            // A note about an option is printed under its value.
            let notes = Dictionary(grouping: command.explanations) { note in
                let argv = command.argv
                let hasValue = note.index + 1 < argv.count && argv[note.index].hasPrefix("-") && !argv[note.index + 1].hasPrefix("-")
                return hasValue ? note.index + 1 : note.index
            }
            for argument in command.prefix { print(argument) }
            for (index, argument) in command.argv.enumerated() {
                print(argument)
                if explain, let notes = notes[index] {
                    for note in notes { print("    # \(note.text)") }
                }
            }
        }
    }
}
