import Foundation
import Synchronization

/// How a VM boots.
public enum BootMode: String, Sendable, CaseIterable {
    /// Restore the VM from a snapshot of its first boot where that is safe; otherwise boot from
    /// scratch and, where it is safe, take that snapshot once the guest is ready.
    case warm
    /// Boot from scratch; take no snapshot.
    case cold
}

/// A snapshot slot: the key of a VM's machine in the cache of its host.
struct SnapshotTarget: Sendable {
    let store: any SnapshotStore
    let key: SnapshotKey
}

/// What one start does.
enum BootPlan: Sendable {
    /// Boot from scratch; once the guest is ready, save a snapshot into `save` if given.
    case cold(save: SnapshotTarget?)
    /// Restore `entry` (spawned with `-incoming defer`).
    case restore(SnapshotTarget, SnapshotEntry)

    var restoring: SnapshotEntry? {
        if case .restore(_, let entry) = self { return entry }
        return nil
    }
}

/// What warm boot remembers during a run: the reasons already logged (each once per VM), and how
/// often restoring each machine's snapshot failed. After one failure the cold boot takes a fresh
/// snapshot (the old one may just have been damaged); after a second, the run stops using
/// snapshots of that machine, so a machine that cannot be restored costs at most two attempts.
final class WarmBootLedger: Sendable {
    private struct State {
        var said: Set<String> = []
        var failures: [String: Int] = [:]
    }
    private let state = Mutex(State())

    /// Whether `text` is new (then it is remembered).
    func firstTime(_ text: String) -> Bool { state.withLock { $0.said.insert(text).inserted } }
    /// Records that restoring the snapshot with `key` failed.
    func restoreFailed(_ key: String) { state.withLock { $0.failures[key, default: 0] += 1 } }
    /// Whether the run gave up on snapshots of the machine with `key`.
    func gaveUp(_ key: String) -> Bool { state.withLock { $0.failures[key, default: 0] >= 2 } }
}

/// The warm-boot decisions: whether a VM may be restored at all, and what a start does.
enum WarmBoot {
    /// Why `command`'s VM cannot be restored from a snapshot safely, if it cannot.
    ///
    /// A snapshot holds the guest's memory, so it is only consistent with the disk contents it was
    /// taken with: a writable disk rules it out (a read-only one, `opt_media=cdrom` or
    /// `readonly=on`, does not), unless QEMU writes to a dts overlay (`overlay=yes`), which is
    /// saved with the snapshot and restored with it. QEMU's own `snapshot=on` does not help: the
    /// writes of the first boot go to a temporary file QEMU deletes, so they are not there when
    /// the memory is restored.
    static func unsafeReason(_ command: QEMUCommandLine) -> String? {
        if command.ports.migration != nil || command.options.contains(where: { $0.name == "-incoming" }) {
            return "it waits for an incoming live migration"
        }
        if !command.hasGuestAgent {
            return "it has no guest agent (control = type=qga;): dts takes the snapshot once the agent answers, and sets a restored guest's clock through it"
        }
        if !command.passthrough.isEmpty {
            return "passthrough device \(command.passthrough.map(\.id).joined(separator: ", ")): a host device's state cannot be saved"
        }
        let overlays = Set(command.overlays.map(\.path))
        for option in command.options {
            if option.name == "-drive", let file = QEMUOpts.property("file", in: option.value ?? ""), overlays.contains(file) { continue }
            if let reason = writableDisk(option) { return reason }
        }
        return nil
    }

    /// Why `option` opens a writable disk, if it does.
    static func writableDisk(_ option: QEMUOption) -> String? {
        let consistency = "a snapshot of the guest's memory is only consistent with the disk contents it was taken with"
        switch option.name {
        case "-drive":
            let parts = QEMUOpts.parts(option.value ?? "")
            func property(_ key: String) -> String? { parts.last { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) } }
            let file = property("file") ?? "(no file)"
            if property("media") == "cdrom" || property("readonly").flatMap(ValueKind.parseBool) == true { return nil }
            if property("snapshot").flatMap(ValueKind.parseBool) == true {
                return "disk \(file) is opened with snapshot=on: what the guest writes while it boots goes to a temporary file QEMU deletes, so it cannot be restored with the memory (a dts overlay, disk overlay=yes, can)"
            }
            return "disk \(file) is writable and \(consistency) (a throw-away overlay, overlay=yes, or a read-only disk, opt_media=cdrom, does not prevent warm boot)"
        case "-hda", "-hdb", "-hdc", "-hdd", "-fda", "-fdb", "-sd", "-mtdblock", "-pflash":
            return "disk \(option.value ?? "") (\(option.name)) is writable and \(consistency)"
        case "-blockdev":
            let parts = QEMUOpts.parts(option.value ?? "")
            if parts.contains(where: { $0 == "read-only=on" }) { return nil }
            return "block device \(option.value ?? "") is writable and \(consistency)"
        case "-virtfs", "-fsdev":
            return "it shares a host directory (\(option.name)), whose contents a snapshot does not hold"
        default:
            return nil
        }
    }

    /// What a start of `command` does on `host`: restore a snapshot of the same machine, or boot
    /// cold (and take one once ready, where warm boot is safe). Says once per VM and run why a VM
    /// wanting warm boot boots cold. Never fails: a problem reading the key's inputs means a cold boot.
    static func plan(vmName: String, command: QEMUCommandLine, host: any VMHost, run: Run, restoreAllowed: Bool) async -> BootPlan {
        guard command.boot == .warm, let store = host.snapshots else { return .cold(save: nil) }
        if let reason = unsafeReason(command) {
            note(run, "VM \(vmName) boots cold: \(reason)")
            return .cold(save: nil)
        }
        let inputs: SnapshotInputs
        do {
            inputs = try await store.inputs(qemuBinary: command.binary, files: command.filesQEMUOpens.map(\.path))
        } catch {
            note(run, "VM \(vmName) boots cold: cannot compute its snapshot key on \(host.label): \(error)")
            return .cold(save: nil)
        }
        let target = SnapshotTarget(store: store, key: SnapshotKey.make(command: command, inputs: inputs))
        if run.warmBoot.gaveUp(target.key.hex) {
            note(run, "VM \(vmName) boots cold: restoring a snapshot of its machine (\(target.key.short)) failed twice in this run")
            return .cold(save: nil)
        }
        if restoreAllowed, let entry = await store.entry(target.key.hex) { return .restore(target, entry) }
        run.logger.info("VM \(vmName): no snapshot \(target.key.short) of this machine yet (\(target.key.summary)); booting cold, then taking one")
        return .cold(save: target)
    }

    private static func note(_ run: Run, _ text: String) {
        if run.warmBoot.firstTime(text) { run.logger.notice("\(text)") }
    }

    /// How long a restore may take, from launching QEMU until the restored guest's agent answers,
    /// it is refreshed and its management address is seen: as long as the cold boot it replaces
    /// took when the snapshot was taken, plus a second, scaled by the run's deadline factor. So a
    /// restore is never slower than a cold boot plus a second: past that, dts stops it and boots
    /// cold. (A restore that fails outright, QEMU refusing the state, ends at once.)
    static func restoreBudget(_ entry: SnapshotEntry, factor: Double) -> Duration {
        Duration.milliseconds(Int64((entry.record.coldBootSeconds + 1) * 1000)).scaled(factor)
    }
}

extension QEMUCommandLine {
    /// The same machine, started to receive a saved state: `-incoming defer` (the state comes
    /// with QMP `migrate-incoming`), paused (`-S`) so that it is continued once loaded.
    func waitingForIncomingState() -> QEMUCommandLine {
        var command = self
        command.options.append(QEMUOption("-incoming", "defer", note: "warm boot: the guest's state is loaded from a snapshot over QMP"))
        if !command.startsPaused {
            command.options.append(QEMUOption("-S", note: "warm boot: paused once the state is loaded, continued by dts"))
            command.startsPaused = true
        }
        return command
    }
}
