import ArgumentParser
import DTS
import Foundation

struct VMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm", abstract: "Work with one VM of a suite.",
        subcommands: [CmdLine.self, Start.self, Run.self])

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

    /// Options of the commands that boot a VM.
    struct BootOptions: ParsableArguments {
        @Option(name: .long, help: "Suite whose config describes the VM.") var suite: String
        @Option(name: .long, help: "VM name (section of the suite config).") var vm: String = "vm0"
        @Option(name: .long, help: "Add a device as a suite would with setVMDevice. Repeatable.") var device: [String] = []
        @Option(name: .long, help: "Keep the VM's logs (console, QEMU stderr, QMP transcript) in this directory.")
        var logDir: String?
        @OptionGroup var options: VMOptions

        /// Boots the VM, tearing everything down if SIGINT/SIGTERM arrives meanwhile.
        func boot(_ trap: SignalWaiter) async throws -> (QEMUKvm, VirtDut, RunContext) {
            let kvm: QEMUKvm
            do {
                kvm = try QEMUKvm(dut: Dut(settings: try options.settings()), vmName: vm, suite: suite)
                for (index, text) in device.enumerated() { try kvm.setVMDevice(text, source: "--device #\(index + 1)") }
            } catch let errors as ConfigErrors {
                throw reportConfigErrors(errors)
            }
            let context = try RunContext()
            let interrupt = Task {
                _ = await trap.wait()
                FileHandle.standardError.write(Data("dts: interrupted, stopping \(vm)\n".utf8))
                await context.cleanUpAll()
                Foundation.exit(130)
            }
            let isTTY = isatty(STDERR_FILENO) == 1
            let options = VMStartOptions(context: context, logDirectory: logDir) { event in
                guard event.outcome != .started || isTTY else { return }
                let line = "\(event.vm): \(event.stage.rawValue) \(event.outcome.rawValue)" + (event.duration.map { String(format: " (%.2f s)", $0) } ?? "")
                FileHandle.standardError.write(Data((line + "\n").utf8))
            }
            do {
                let dut = try await kvm.start(options)
                interrupt.cancel()
                return (kvm, dut, context)
            } catch {
                interrupt.cancel()
                await context.cleanUpAll()
                FileHandle.standardError.write(Data("dts: \(error)\n".utf8))
                throw ExitStatus.infrastructureError
            }
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Boot a VM, print how to reach it, and keep it until Ctrl-C.")
        @OptionGroup var boot: BootOptions

        func run() async throws {
            let trap = SignalWaiter()
            let (kvm, dut, context) = try await boot.boot(trap)
            let command = dut.command
            print("""
                VM \(boot.vm) is up (QEMU pid \(kvm.instance?.pid ?? 0), \(command.accelerator.rawValue)).
                  ssh:      ssh -p \(command.ports.ssh ?? 0) -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \(command.login?.user ?? "root")@\(command.ports.sshAddress ?? "127.0.0.1")
                  console:  \(command.paths.consoleLog)
                  QMP:      \(command.paths.qmpSocket)
                """ + (command.paths.monitorSocket.map { "\n  monitor:  socat - UNIX-CONNECT:\($0)" } ?? "")
                + (command.ports.vncDisplay.map { "\n  VNC:      \(command.ports.sshAddress ?? "127.0.0.1"):\($0)" } ?? "")
                + "\nPress Ctrl-C to stop it.")
            // Readers behind a pipe or a file see it now, not when the VM stops.
            fflush(nil)
            let instance = kvm.instance
            let exited = Task { await instance?.waitForExit() }
            let signal = Task { await trap.wait() }
            _ = await withTaskGroup(of: Void.self) { group in
                group.addTask { _ = await exited.value }
                group.addTask { _ = await signal.value }
                await group.next()
                group.cancelAll()
            }
            exited.cancel()
            signal.cancel()
            print("stopping \(boot.vm)")
            await kvm.stop()
            await context.cleanUpAll()
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Boot a VM, run a command in it over SSH, print its output, stop the VM; exit with the command's status.")
        @OptionGroup var boot: BootOptions
        @Option(name: .long, help: "Seconds the command may run.") var timeout: Int = 600
        @Argument(parsing: .captureForPassthrough, help: "The command to run in the guest (after --).") var command: [String] = []

        func run() async throws {
            let words = command.first == "--" ? Array(command.dropFirst()) : command
            guard !words.isEmpty else { throw ValidationError("give the command to run after --") }
            let trap = SignalWaiter()
            let (kvm, dut, context) = try await boot.boot(trap)
            let status: Int32
            do {
                let result = try await dut.exec(argv: words, timeout: .seconds(timeout))
                FileHandle.standardOutput.write(Data(result.stdout))
                FileHandle.standardError.write(Data(result.stderr))
                status = result.status
            } catch {
                FileHandle.standardError.write(Data("dts: \(error)\n".utf8))
                await kvm.stop()
                await context.cleanUpAll()
                throw ExitStatus.infrastructureError
            }
            await kvm.stop()
            await context.cleanUpAll()
            if status != 0 { throw ExitCode(status) }
        }
    }
}
