import Foundation

/// Whether a VM can migrate into an incoming one: both must be the same machine (machine type,
/// accelerator, CPU model and count, memory size and backend, devices in order, kernel and
/// initrd), or QEMU refuses the stream half-way or, worse, loads it into a different machine.
///
/// It compares the machine-shaping arguments of the two command lines, as warm boot's snapshot
/// key does, with what only concerns each VM's host normalised away (ports, runtime paths, socket
/// paths, `-incoming`), and also:
/// - the VM's name (`-name`): source and destination are different VMs of the config;
/// - NIC MAC addresses: a NIC's MAC travels with its device state;
/// - files (kernel, initrd, disks) by their file name: each end opens its host's copy (a remote
///   DUT's image cache), which must hold the same content;
/// - throw-away disk overlays (`overlay=yes`) on the source: refused, the destination cannot
///   open the source's overlay and a fresh one would lose what the guest wrote.
public enum MigrationCompatibility {
    /// The differences between the machines of `source` and `destination`, one line each
    /// (`memory: source -m 256, destination -m 512`); empty when they are the same machine.
    public static func differences(source: QEMUCommandLine, destination: QEMUCommandLine) -> [String] {
        if source.architecture != destination.architecture {
            return ["architecture: source \(source.architecture), destination \(destination.architecture)"]
        }
        let a = machine(source), b = machine(destination)
        var found: [String] = []
        // A throw-away overlay is the source VM's own file: the destination cannot open it, and
        // a fresh overlay of its own would give the guest a disk without what it wrote.
        for overlay in source.overlays {
            found.append("disk \(overlay.base): the source writes to a throw-away overlay (overlay=yes) that the destination cannot open; migrate VMs whose disks both ends share (without overlay=yes)")
        }
        func name(_ line: String) -> String { String(line.prefix { $0 != " " }) }
        var names: [String] = []
        for line in a + b where !names.contains(name(line)) { names.append(name(line)) }
        for option in names {
            let left = a.filter { name($0) == option }, right = b.filter { name($0) == option }
            guard left != right else { continue }
            let onlySource = left.filter { !right.contains($0) }, onlyDestination = right.filter { !left.contains($0) }
            let what = label(option)
            if onlySource.isEmpty && onlyDestination.isEmpty {
                found.append("\(what): the same entries in another order (source \(left.joined(separator: "; ")), destination \(right.joined(separator: "; ")))")
            } else {
                found.append("\(what): source " + (onlySource.isEmpty ? "has none of these" : onlySource.joined(separator: "; "))
                             + ", destination " + (onlyDestination.isEmpty ? "has none of these" : onlyDestination.joined(separator: "; ")))
            }
        }
        return found
    }

    /// What a migration compares of `command`.
    static func machine(_ command: QEMUCommandLine) -> [String] {
        SnapshotKey.machineArguments(of: command) { "file:" + ($0.split(separator: "/").last.map(String.init) ?? $0) }
            .filter { !$0.hasPrefix("-name ") }
            .map { line in
                // `mac=...` in a -device: the MAC travels with the device's state.
                guard line.hasPrefix("-device ") else { return line }
                return line.split(separator: ",", omittingEmptySubsequences: false)
                    .map { $0.hasPrefix("mac=") ? "mac=<mac>" : String($0) }.joined(separator: ",")
            }
    }

    private static func label(_ option: String) -> String {
        switch option {
        case "-m": return "memory (-m)"
        case "-object": return "memory backend or objects (-object)"
        case "-smp": return "vCPUs (-smp)"
        case "-cpu": return "CPU model (-cpu)"
        case "-machine": return "machine (-machine)"
        case "-device": return "devices (-device)"
        case "-kernel", "-initrd", "-append": return "kernel (\(option))"
        default: return option
        }
    }
}
