import DTS
import DTSTestSupport
import Foundation

/// A golden command-line case: `Golden/cmdline/<name>.cfg` in, `<name>.args` and `<name>.facts`
/// or `<name>.err` out.
///
/// A `.warn` file, present only when the build warns, holds its warnings, one per line.
/// An `.args` file holds one option with its value per line, shell-quoted where needed (as
/// libvirt's qemuxml2argv files): the command prefix (`taskset -c ...`) on its own line, the
/// binary, then each option (`-name vm0,debug-threads=on`; a lone flag such as `-S`). A `.facts`
/// file holds what the command line tells the framework besides argv (paths, ports, login,
/// memory, files QEMU opens, ...), one `key: value` per line.
///
/// The `.cfg` is the suite config (suite name = case name) read together with the golden
/// `virt_global.cfg`. Comment lines starting with `#@` steer the test:
/// `#@ accel tcg|kvm`, `#@ device <entry>` (as `setVMDevice`), `#@ vm <name>` (default vm0),
/// `#@ hugepages none` (no hugetlbfs mount on the fake host), `#@ daemonize` (the VM's host
/// launches QEMU daemonized, as a remote DUT does), `#@ executable <path>` (a file that counts as
/// an executable on the fake host; none does otherwise), `#@ online <cpus>` (the fake host's
/// online CPUs; unknown otherwise), `#@ listen <address>` (the address forwarded ports listen
/// on, the DUT's own for a remote DUT; 127.0.0.1 otherwise).
struct GoldenCase: CustomStringConvertible, Sendable {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Golden/cmdline").path
    /// Set to regenerate `.args`/`.err` files from the current builder.
    static let updating = ProcessInfo.processInfo.environment["DTS_UPDATE_GOLDEN"] == "1"

    var name: String
    var description: String { name }

    static var all: [GoldenCase] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return files.filter { $0.hasSuffix(".cfg") && $0 != "virt_global.cfg" }.sorted()
            .map { GoldenCase(name: String($0.dropLast(4))) }
    }

    var configPath: String { "\(Self.directory)/\(name).cfg" }
    var argsPath: String { "\(Self.directory)/\(name).args" }
    var errPath: String { "\(Self.directory)/\(name).err" }
    var factsPath: String { "\(Self.directory)/\(name).facts" }
    var warnPath: String { "\(Self.directory)/\(name).warn" }
    var expectsError: Bool { name.hasPrefix("err_") }

    var directives: [(String, String)] {
        let text = (try? String(contentsOfFile: configPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("#@ ") else { return nil }
            let words = line.dropFirst(3).split(separator: " ", maxSplits: 1)
            return (String(words[0]), words.count > 1 ? String(words[1]) : "")
        }
    }

    /// Builds the case in a scratch conf dir. Returns the command line or the error text, with
    /// the scratch dir removed from paths so the output is stable.
    func build(runtimeRoot: String = "/run/dts/golden",
               allocator makeAllocator: ((Bool) -> any VMResourceAllocator)? = nil) throws -> Result<QEMUCommandLine, ConfigErrors> {
        let scratchDir = try TempDir("dts-golden")
        let scratch = scratchDir.path
        try FileManager.default.copyItem(atPath: "\(Self.directory)/virt_global.cfg", toPath: "\(scratch)/virt_global.cfg")
        try FileManager.default.copyItem(atPath: configPath, toPath: "\(scratch)/\(name).cfg")

        var accelerator: Accelerator?
        var vm = "vm0"
        var hugepages = true
        var daemonize = false
        var devices: [String] = []
        var executables: Set<String> = []
        var online: [Int]?
        var listen = "127.0.0.1"
        for (key, value) in directives {
            switch key {
            case "accel": accelerator = Accelerator(rawValue: value)
            case "device": devices.append(value)
            case "vm": vm = value
            case "hugepages": hugepages = value != "none"
            case "daemonize": daemonize = true
            case "executable": executables.insert(value)
            case "online": online = ValueKind.parseCPUList(value)
            case "listen": listen = value
            default: break
            }
        }
        let allocator = makeAllocator?(hugepages) ?? StaticAllocator(
            runtimeRoot: runtimeRoot, listenAddress: listen, hugepageMount: hugepages ? "/dev/hugepages" : nil,
            imageDirectory: "/var/cache/dts/images", hostArchitecture: "x86_64", onlineCPUs: online, executables: executables)
        do throws(ConfigErrors) {
            let kvm = try QEMUKvm(dut: Dut(settings: RunSettings(confDirectory: scratch, accelerator: accelerator), run: Run()), vmName: vm, suite: name)
            for (index, device) in devices.enumerated() { try kvm.setVMDevice(device, source: "device #\(index + 1)") }
            var command = try QEMUCommandLineBuilder.build(vmName: vm, params: kvm.params,
                                                           options: QEMUBuildOptions(accelerator: accelerator, daemonize: daemonize),
                                                           allocator: allocator)
            command.warnings = command.warnings.map { w in
                var w = w
                w.location.file = w.location.file.replacingOccurrences(of: scratch + "/", with: "")
                return w
            }
            return .success(command)
        } catch {
            let cleaned = ConfigErrors(error.errors.map { e in
                var e = e
                e.location.file = e.location.file.replacingOccurrences(of: scratch + "/", with: "")
                return e
            })
            return .failure(cleaned)
        }
    }
}

extension QEMUCommandLine {
    /// One option with its value per line, shell-quoted where needed, as libvirt's qemuxml2argv
    /// files: the prefix (if any) on its own line, then the binary, then the options in order.
    var goldenText: String {
        var lines: [String] = []
        if !prefix.isEmpty { lines.append(ShellQuoting.join(prefix)) }
        lines.append(ShellQuoting.quote(binary))
        lines += options.map { ShellQuoting.join($0.arguments) }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The warnings, one per line; empty when there are none.
    var goldenWarnings: String { warnings.map { $0.description + "\n" }.joined() }

    /// Everything but argv, one `key: value` per line; absent facts are left out.
    var goldenFacts: String {
        var lines = ["vm: \(vmName)", "architecture: \(architecture)", "accelerator: \(accelerator.rawValue)"]
        func add(_ key: String, _ value: String?) { if let value { lines.append("\(key): \(value)") } }
        add("daemonize", daemonize ? "yes" : nil)
        add("starts paused", startsPaused ? "yes" : nil)
        add("memory", memoryMiB.map { "\($0) MiB" })
        add("hugepage mount", hugepageMount)
        for file in filesQEMUOpens { add("opens", "\(file.option) \(file.path)") }
        add("runtime directory", paths.runtimeDirectory)
        add("qmp socket", paths.qmpSocket)
        add("monitor socket", paths.monitorSocket)
        add("guest agent socket", paths.guestAgentSocket)
        add("serial socket", paths.serialSocket)
        add("pid file", paths.pidFile)
        for socket in paths.cryptoSockets { add("crypto socket", socket) }
        add("console log", paths.consoleLog)
        add("guest agent", hasGuestAgent ? "yes" : nil)
        add("ssh", ports.ssh.map { "\(ports.sshAddress ?? "?"):\($0)" })
        add("vnc display", ports.vncDisplay.map(String.init))
        add("telnet port", ports.telnet.map(String.init))
        add("migration port", ports.migration.map(String.init))
        add("monitor port", ports.monitor.map(String.init))
        add("login", login.map { "\($0.user)" + ($0.password.map { " password \($0)" } ?? " (no password)") })
        add("start", "wait \(start.waitSeconds) s, login \(start.loginTimeout) s, prompts '\(start.loginPrompt)' '\(start.passwordPrompt)'")
        add("boot", boot.rawValue)
        add("cpu pinning", cpuPinning.isEmpty ? nil : cpuPinning.map(String.init).joined(separator: ","))
        for device in passthrough { add("passthrough", "\(device.id) \(device.hostAddress) \(device.driver)") }
        add("default driver", defaultDriver?.description)
        return lines.joined(separator: "\n") + "\n"
    }
}
