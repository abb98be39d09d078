import ArgumentParser
import DTS
import DTSProcess
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
                `dts vm start` allocates free ones. Runtime files are shown in --runtime-dir/<vm>; by default \
                that names a placeholder run directory (<run root>/run-XXXXXX), as `dts vm start` would make one. \
                Nothing is created: the command only prints.
                """)

        @Option(name: .long, help: "Suite whose config describes the VM.") var suite: String
        @Option(name: .long, help: "VM name (section of the suite config).") var vm: String = "vm0"
        @Option(name: .long, help: "Add a device as a suite would with setVMDevice, e.g. 'driver=vhost-user,opt_path=./vhost-net'. Repeatable.")
        var device: [String] = []
        @Option(name: .long, help: "Directory shown for the VM's sockets, pid file and logs (default: a placeholder run directory, <run root>/run-XXXXXX).")
        var runtimeDir: String?
        @Flag(name: .long, help: "Print one shell-quoted, copy-pasteable line instead.") var shell = false
        @Flag(name: .long, help: "Add each option's note under it: why dts wrote it, or how it differs from what the config literally says.") var explain = false
        @OptionGroup var options: VMOptions

        func run() throws {
            do { try PathComponentName.checkCommandLine([("--vm", vm, "VM name"), ("--suite", suite, "suite name")]) } catch {
                throw reportConfigErrors(error)
            }
            let command: QEMUCommandLine
            do {
                // Nothing starts: the run only lends the DUT its settings (its directory is never made).
                let kvm = try QEMUKvm(dut: Dut(settings: try options.settings(), run: DTS.Run()), vmName: vm, suite: suite)
                for (index, text) in device.enumerated() {
                    try kvm.setVMDevice(text, source: "--device #\(index + 1)")
                }
                command = try kvm.commandLine(allocator: StaticAllocator.forThisHost(runtimeRoot: runtimeDir ?? RunDirectory.placeholderPath))
            } catch let errors as ConfigErrors {
                throw reportConfigErrors(errors)
            }
            reportConfigWarnings(command.warnings)
            if shell {
                print(command.shellLine)
                return
            }
            // One argument per line; an option's note goes under its last argument (its value, if it has one).
            for argument in command.prefix { print(argument) }
            print(command.binary)
            for option in command.options {
                for argument in option.arguments { print(argument) }
                if explain, let note = option.note { print("    # \(note)") }
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
        @Option(name: .long, help: "Start the VM on this DUT of crbs.cfg (its section name) instead of this machine.")
        var dut: String?
        @Option(name: .long, help: "Path of crbs.cfg for --dut (default: <conf-dir>/crbs.cfg).")
        var crbs: String?
        @OptionGroup var options: VMOptions

        /// Boots the VM in a run of its own. If SIGINT/SIGTERM arrives meanwhile, the run is torn
        /// down and the process exits with 128 + the signal; if the start fails, the run is torn
        /// down too. Once this returns, signals and the run's teardown are left to the caller.
        func boot(_ trap: SignalTrap) async throws -> (QEMUKvm, VirtDut, DTS.Run) {
            do { try PathComponentName.checkCommandLine([("--vm", vm, "VM name"), ("--suite", suite, "suite name")]) } catch {
                throw reportConfigErrors(error)
            }
            let settings = try options.settings()
            var crb: CRBConfig?
            if let name = dut {
                let path = crbs ?? settings.confDirectory + "/crbs.cfg"
                let config: CRBsConfig
                do { config = try CRBsConfig(path: path) } catch { throw reportConfigErrors(error) }
                guard let found = config.crb(name) else {
                    let known = config.crbs.map(\.name).joined(separator: ", ")
                    FileHandle.standardError.write(Data("dts: --dut \(name): no such DUT in \(path) (it has: \(known.isEmpty ? "none" : known))\n".utf8))
                    throw ExitCode(.configError)
                }
                crb = found.isLocal ? nil : found
            }
            let run = DTS.Run()
            var host = Dut(settings: settings, run: run)
            if let crb {
                do {
                    host = try await Dut.remote(crb, settings: settings, run: run, knownHostsPath: run.directory.root + "/known_hosts")
                } catch {
                    await run.tearDown()
                    FileHandle.standardError.write(Data("dts: \(error)\n".utf8))
                    throw ExitCode(.infrastructureError)
                }
                // Registered first, so it runs last: the VM and its files on the DUT go before the session.
                await run.register("DUT [\(crb.name)] session") { [host] in await host.close() }
            }
            let kvm: QEMUKvm
            do {
                kvm = try QEMUKvm(dut: host, vmName: vm, suite: suite)
                for (index, text) in device.enumerated() { try kvm.setVMDevice(text, source: "--device #\(index + 1)") }
            } catch {
                await run.tearDown()
                throw reportConfigErrors(error)
            }
            let interrupt = InterruptExit(trap, run: run, stopping: vm)
            let isTTY = isatty(STDERR_FILENO) == 1
            let options = VMStartOptions(logDirectory: logDir) { event in
                guard event.outcome != .started || isTTY else { return }
                let line = "\(event.vm): \(event.stage.rawValue) \(event.outcome.rawValue)" + (event.duration.map { String(format: " (%.2f s)", $0) } ?? "")
                FileHandle.standardError.write(Data((line + "\n").utf8))
            }
            do {
                try await awaitCryptoBackend(kvm)
                let dut = try await kvm.start(options)
                await interrupt.disarm()
                return (kvm, dut, run)
            } catch {
                // A start that failed because the interrupt tore the VM down ends in the interrupt's exit.
                await interrupt.disarm()
                await run.tearDown()
                // On a terminal, the end of QEMU's stderr and of the console too.
                let text = (error as? any DetailedError)?.details ?? "\(error)"
                FileHandle.standardError.write(Data("dts: \(text)\n".utf8))
                throw ExitCode(.infrastructureError)
            }
        }
    }

    /// With `crypto` devices, QEMU connects to the backend's sockets: they are printed, and the
    /// start waits (up to a minute) until a backend (DPDK's vhost_crypto) listens on them.
    static func awaitCryptoBackend(_ kvm: QEMUKvm) async throws {
        let sockets = try await kvm.cryptoSocketPaths()
        guard !sockets.isEmpty else { return }
        FileHandle.standardError.write(Data("\(kvm.vmName): start the vhost-user crypto backend on: \(sockets.joined(separator: " "))\n".utf8))
        let deadline = ContinuousClock.now + .seconds(60)
        // On the VM's host: this machine or the DUT.
        let listening = ["sh", "-c", "for s; do [ -S \"$s\" ] || exit 1; done", "sh"] + sockets
        while !(try await kvm.dut.exec(argv: listening)).succeeded {
            guard ContinuousClock.now < deadline else {
                throw ResourceError("no vhost-user crypto backend listens on \(sockets.joined(separator: ", ")) after 60 s")
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Boot a VM, print how to reach it, and keep it until Ctrl-C.",
            discussion: """
                Ctrl-C (SIGINT) or SIGTERM stops the VM (guest agent power-off, then QMP quit, then signals), \
                frees its ports and removes the run directory.

                Exit status: \(DTSExitCode.success.rawValue) when the VM was up and Ctrl-C or SIGTERM stopped it; \
                \(DTSExitCode.configError.rawValue) for an invalid config or option; \
                \(DTSExitCode.infrastructureError.rawValue) when the VM did not boot, or QEMU exited by itself \
                while the VM was up (the message gives QEMU's status and the end of its stderr and of the console); \
                \(DTSExitCode.interrupted.rawValue) (\(DTSExitCode.terminated.rawValue) for SIGTERM) when \
                interrupted before the VM was up.
                """)
        @OptionGroup var boot: BootOptions

        /// What ended the wait.
        enum Ending: Sendable {
            /// QEMU exited with this status (128 + N for signal N) without dts asking.
            case qemuExited(Int32)
            /// SIGINT or SIGTERM.
            case signal(Int32)
        }

        func run() async throws {
            let trap = SignalTrap()
            let (kvm, dut, run) = try await boot.boot(trap)
            guard let instance = kvm.instance else {
                await run.tearDown()
                FileHandle.standardError.write(Data("dts: \(boot.vm) started but has no QEMU instance\n".utf8))
                throw ExitCode(.infrastructureError)
            }
            let command = dut.command
            let onDUT = boot.dut.map { " (on DUT \($0))" } ?? ""
            print("""
                VM \(boot.vm) is up\(onDUT) (QEMU pid \(instance.pid), \(command.accelerator.rawValue)).
                  ssh:      ssh -p \(command.ports.ssh ?? 0) -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \(command.login?.user ?? "root")@\(command.ports.sshAddress ?? "127.0.0.1")
                  console:  \(command.paths.consoleLog)\(onDUT)
                  QMP:      \(command.paths.qmpSocket)\(onDUT)
                """ + (command.paths.monitorSocket.map { "\n  monitor:  socat - UNIX-CONNECT:\($0)" } ?? "")
                + (command.ports.monitor.map { "\n  monitor:  telnet 127.0.0.1 \($0)\(onDUT)" } ?? "")
                + (command.paths.cryptoSockets.isEmpty ? "" : "\n  crypto:   " + command.paths.cryptoSockets.joined(separator: " ") + onDUT)
                + (command.ports.vncDisplay.map { "\n  VNC:      \(command.ports.sshAddress ?? "127.0.0.1"):\($0)" } ?? "")
                + "\nPress Ctrl-C to stop it.")
            // Readers behind a pipe or a file see it now, not when the VM stops.
            fflush(nil)

            // The first of QEMU's exit and a signal ends the wait; the other is ignored. (A task
            // group would also wait for the loser: QEMU's exit, which only comes once the VM is stopped.)
            let ending = Latch<Ending>()
            let watchers: [Task<Void, Never>] = [
                Task {
                    let status = await instance.waitForExit()
                    ending.set(.qemuExited(status))
                },
                Task {
                    guard let signal = await trap.wait() else { return }
                    ending.set(.signal(signal))
                },
            ]
            let end = await ending.wait()
            for watcher in watchers { watcher.cancel() }

            switch end {
            case .signal(let signal):
                print("\(SignalName.describe(signal)): stopping \(boot.vm)")
                fflush(nil)
                await kvm.stop()
                await run.tearDown()
                print("\(boot.vm) stopped")
            case .qemuExited(let status):
                // A daemonized QEMU is not dts's child: its status cannot be known.
                let how = command.daemonize ? "exited (a daemon: its exit status is unknown)"
                    : status == 0 ? "exited (status 0: the guest powered off, or QEMU was told to quit)"
                    : "exited (\(QEMUExit.describe(status)))"
                var message = "dts: VM \(boot.vm): QEMU (pid \(instance.pid)) \(how) while the VM was up"
                // Stopping brings the VM's logs into its local directory (from the DUT, for a remote one).
                await kvm.stop()
                let stderrTail = instance.logTail("qemu.stderr")
                if !stderrTail.isEmpty { message += "\n--- qemu stderr (end) ---\n" + stderrTail }
                let consoleTail = instance.logTail("console.log")
                if !consoleTail.isEmpty { message += "\n--- console (end) ---\n" + consoleTail }
                await run.tearDown()
                message += boot.logDir == nil ? "\n(use --log-dir DIR to keep the VM's logs)" : "\n(logs: \(instance.logDirectory))"
                FileHandle.standardError.write(Data((message + "\n").utf8))
                throw ExitCode(.infrastructureError)
            }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Boot a VM, run a command in it over SSH, print its output, stop the VM; exit with the command's status.")
        @OptionGroup var boot: BootOptions
        @Option(name: .long, help: "Seconds the command may run.") var timeout: Int = 600
        /// Only what follows `--`: every word before it is an option of dts (an unknown one is an error).
        @Argument(parsing: .postTerminator, help: "The command to run in the guest, after --.") var command: [String] = []

        func run() async throws {
            let words = command
            guard !words.isEmpty else { throw ValidationError("give the command to run after --") }
            let trap = SignalTrap()
            let (kvm, dut, run) = try await boot.boot(trap)
            let interrupt = InterruptExit(trap, run: run, stopping: boot.vm)
            let status: Int32
            do {
                let result = try await dut.exec(argv: words, timeout: .seconds(timeout))
                await interrupt.disarm()
                FileHandle.standardOutput.write(Data(result.stdout))
                FileHandle.standardError.write(Data(result.stderr))
                status = result.status
            } catch {
                await interrupt.disarm()
                FileHandle.standardError.write(Data("dts: \(error)\n".utf8))
                await kvm.stop()
                await run.tearDown()
                throw ExitCode(.infrastructureError)
            }
            await kvm.stop()
            await run.tearDown()
            if status != 0 { throw ExitCode(status) }
        }
    }
}
