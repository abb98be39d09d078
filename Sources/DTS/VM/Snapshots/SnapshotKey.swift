import Foundation

/// The QEMU binary a VM runs, as the VM's host has it.
struct QEMUIdentity: Codable, Sendable, Equatable {
    /// The binary's real path on the host.
    var path: String
    /// The first line of `--version` (`QEMU emulator version 7.2.22 (Debian ...)`).
    var version: String
    /// SHA-256 of the binary.
    var sha256: String
}

/// What a snapshot key is made of besides the command line, read on the VM's host.
struct SnapshotInputs: Sendable, Equatable {
    /// The QEMU binary.
    var qemu: QEMUIdentity
    /// SHA-256 of every file QEMU opens at start (kernel, initrd, disks), by path.
    var digests: [String: String]
}

/// The identity of the machine a snapshot holds: two VMs with the same key are the same machine,
/// so a snapshot of one can be restored as the other.
///
/// It covers everything that shapes guest state: the QEMU binary (its path, version and content),
/// the machine-shaping arguments in order (machine, accelerator, CPU model and count, memory size
/// and backend, every device with its properties and MAC, the kernel command line, raw `usercmd`
/// words), and the content of the kernel, initrd and disk images (and of the base images of disk
/// overlays) in place of their paths. Values
/// that only concern the host are normalised away: the runtime directory, forwarded host ports
/// and addresses, socket and log paths, the hugetlbfs mount, the VNC display, the pid file, the
/// vmgenid generation id, and what only starts or stops QEMU (`-S`, `-daemonize`, `-incoming`).
public struct SnapshotKey: Sendable, Equatable {
    /// SHA-256 of ``lines``: the name of the snapshot's files.
    public let hex: String
    /// The canonical text the key is the digest of, one item per line.
    public let lines: [String]
    /// A short description for listings: `x86_64 pc tcg, 1 vCPU max, 256 MiB, kernel dts-guest/vmlinux`.
    public let summary: String

    /// The first 12 hex digits, for messages.
    public var short: String { String(hex.prefix(12)) }

    /// Bump when the key's text changes meaning: older snapshots then never match.
    static let format = "dts-snapshot-key 1"

    /// Options that only start or stop QEMU, not shape the machine.
    static let lifecycleOptions: Set<String> = ["-pidfile", "-daemonize", "-S", "-incoming"]
    /// Option properties whose values only concern the host.
    static let hostOnlyProperties: Set<String> = ["path", "logfile", "mem-path", "host", "port", "guid"]

    /// The key of `command`'s machine with `inputs` read on its host.
    static func make(command: QEMUCommandLine, inputs: SnapshotInputs) -> SnapshotKey {
        var lines = [format, "qemu \(inputs.qemu.path) sha256:\(inputs.qemu.sha256) \(inputs.qemu.version)"]
        lines += machineArguments(of: command, digests: inputs.digests).map { "arg " + $0 }
        return SnapshotKey(hex: SHA256Hex.of(Array(lines.joined(separator: "\n").utf8)), lines: lines,
                           summary: summary(of: command))
    }

    /// The command's options that shape the machine, host-only values normalised, one per item
    /// (`-m 256`, `-device e1000,netdev=hostnet0,id=nic0,mac=52:54:00:c4:b4:42,addr=1f`).
    static func machineArguments(of command: QEMUCommandLine, digests: [String: String]) -> [String] {
        machineArguments(of: command) { digests[$0].map { "sha256:" + $0 } }
    }

    /// The command's options that shape the machine, host-only values normalised; a file QEMU
    /// opens appears as `naming` says (its digest), else as its path.
    static func machineArguments(of command: QEMUCommandLine, naming: (String) -> String?) -> [String] {
        let run = command.paths.runtimeDirectory
        func hostFree(_ text: String) -> String {
            run.isEmpty ? text : text.replacingOccurrences(of: run, with: "<run>")
        }
        func file(_ path: String) -> String { naming(path) ?? hostFree(path) }
        var result: [String] = []
        for option in command.options where !lifecycleOptions.contains(option.name) {
            guard let value = option.value else {
                result.append(option.name)
                continue
            }
            let normalised: String
            switch option.name {
            case "-kernel", "-initrd":
                normalised = file(value)
            case "-vnc":
                normalised = "<display>"
            case "-chardev", "-netdev", "-object", "-device", "-drive", "-mon", "-serial":
                let parts = QEMUOpts.parts(value).map { part -> String in
                    guard let eq = part.firstIndex(of: "=") else { return hostFree(part) }
                    let key = String(part[..<eq]), text = String(part[part.index(after: eq)...])
                    if hostOnlyProperties.contains(key) { return key + "=<host>" }
                    switch key {
                    case "file": return key + "=" + file(text)
                    case "hostfwd":
                        guard let forward = ValueKind.parseHostForward(text) else { return key + "=" + hostFree(text) }
                        return key + "=\(forward.proto):<host>-\(forward.guestAddress):\(forward.guestPort)"
                    default: return key + "=" + hostFree(text)
                    }
                }
                normalised = parts.map(QEMUOpts.escape).joined(separator: ",")
            default:
                normalised = hostFree(value)
            }
            result.append(option.name + " " + normalised)
        }
        // An overlay's drive names its path in the runtime directory; what it holds at first is its base's content.
        for overlay in command.overlays {
            result.append("overlay \(hostFree(overlay.path)) backing=\(file(overlay.base)) backing-format=\(overlay.baseFormat)")
        }
        return result
    }

    /// `x86_64 pc tcg, 2 vCPU max, 512 MiB, kernel dts-guest/vmlinux`.
    static func summary(of command: QEMUCommandLine) -> String {
        func value(_ name: String) -> String? { command.options.last { $0.name == name }?.value }
        var parts = ["\(command.architecture) \(value("-machine") ?? "default") \(command.accelerator.rawValue)"]
        let cpus = value("-smp").flatMap { QEMUOpts.parts($0).first } ?? "1"
        parts.append("\(cpus) vCPU \(value("-cpu") ?? "default")")
        if let memory = command.memoryMiB { parts.append("\(memory) MiB") }
        if let kernel = value("-kernel") {
            parts.append("kernel " + kernel.scalarSplit("/").suffix(2).joined(separator: "/"))
        }
        let disks = command.filesQEMUOpens.filter { $0.option == "disk file" }
        if !disks.isEmpty { parts.append(disks.count == 1 ? "1 disk" : "\(disks.count) disks") }
        return parts.joined(separator: ", ")
    }
}
