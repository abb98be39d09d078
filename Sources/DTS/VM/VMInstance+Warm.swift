import DTSControl
import DTSSession
import Foundation

/// The warm-boot steps (docs/virtualization.md#warm-boot): restoring a snapshot in place of the
/// guest's boot, refreshing a restored guest, and taking the snapshot on a machine's first boot.
extension VMInstance {
    /// A restore: QEMU started with `-incoming defer`, the saved state loaded, the guest continued
    /// and refreshed, then the readiness stages of a cold boot. Until the management address is
    /// seen the stages share one budget (``WarmBoot/restoreBudget(_:factor:)``).
    func restoreUp(_ entry: SnapshotEntry) async throws(VMStartError) {
        parts { $0.restoreDeadline = started + WarmBoot.restoreBudget(entry, factor: run.timeoutFactor) }
        try await spawnQEMU()
        try await connectQMP()
        try await restoreSnapshot(entry)
        try await pinVCPUs()
        try await awaitGuestAgent()
        try await refreshGuest()
        try await awaitManagementAddress()
        parts { $0.restoreDeadline = nil }
        try await loginSSH()
        try await readPCIMap()
        makeVirtDut()
    }

    /// `restore`: QMP `migrate-incoming` from the snapshot's state file (read by `cat` on the VM's
    /// host), until QEMU reports the migration completed; QEMU then waits paused. A state QEMU
    /// cannot load makes it exit, which ends the stage at once with QEMU's error.
    func restoreSnapshot(_ entry: SnapshotEntry) async throws(VMStartError) {
        guard let qmp = parts({ $0.qmp }) else { return }
        let deadline = budgeted(deadlines.snapshot)
        let begin = ContinuousClock.now
        try await stage(.restore, deadline) {
            try await qmp.migrateSetCapabilities(["events": true])
            try await qmp.migrateIncoming(uri: "exec:" + ShellQuoting.join(["cat", entry.statePath]))
            try await qmp.waitForMigration(timeout: deadline)
        }
        await target?.store.markUsed(entry.record.key)
        run.logger.info("VM \(vmName): restored snapshot \(String(entry.record.key.prefix(12))) (\(SnapshotCache.size(entry.record.stateBytes)) in \(String(format: "%.2f", (ContinuousClock.now - begin).seconds)) s) in place of its boot")
    }

    private var target: SnapshotTarget? {
        if case .restore(let target, _) = plan { return target }
        return nil
    }

    /// `guest-refresh`: a restored guest's clock is the snapshot's; it is set to the host's time,
    /// and 64 bytes of host randomness are written to its `/dev/urandom` (mixed into its entropy
    /// pool, for guests without the vmgenid driver; with it, the new generation ID has already
    /// made the kernel reseed). Through the guest agent.
    func refreshGuest() async throws(VMStartError) {
        guard let agent = parts({ $0.guestAgent }) else { return skip(.guestRefresh) }
        try await stage(.guestRefresh, budgeted(deadlines.guest)) {
            try await Self.setClock(agent)
            var generator = SystemRandomNumberGenerator()
            let noise = (0..<64).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            try await agent.writeFile(path: "/dev/urandom", data: Data(noise))
        }
    }

    /// `snapshot`: the guest paused, its state migrated to a file in the host's snapshot cache
    /// (`exec:cat > FILE`), the file moved in place with copies of the disk overlays (QEMU
    /// flushed them when it paused the guest) and its record, the guest continued and its clock
    /// set again (it stood still while paused). Only ever costs time: a save that fails is
    /// logged and the start goes on with the guest running.
    func saveSnapshot(_ target: SnapshotTarget) async {
        guard let qmp = parts({ $0.qmp }) else { return }
        let partial = target.store.partialPath(for: target.key.hex)
        let readySeconds = elapsed
        let agent = parts { $0.guestAgent }
        do {
            let record = try await stage(.snapshot, deadlines.snapshot) { [self] in
                let begin = ContinuousClock.now
                try await qmp.migrateSetCapabilities(["events": true])
                try await qmp.stop()
                try await qmp.migrate(uri: "exec:cat > " + ShellQuoting.quote(partial))
                try await qmp.waitForMigration(timeout: deadlines.snapshot)
                let draft = SnapshotRecord(key: target.key.hex, vm: vmName, summary: target.key.summary, keyLines: target.key.lines,
                                           created: Date(), stateBytes: 0, coldBootSeconds: readySeconds,
                                           saveSeconds: (ContinuousClock.now - begin).seconds)
                let stored = try await target.store.commit(draft, partial: partial, overlays: command.overlays.map(\.path))
                try await qmp.cont()
                if let agent { try await Self.setClock(agent) }
                return stored
            }
            run.logger.info("VM \(vmName): took snapshot \(target.key.short) (\(SnapshotCache.size(record.stateBytes)), guest paused \(String(format: "%.2f", record.saveSeconds)) s) in \(target.store.directory): \(target.key.summary)")
        } catch {
            // The guest must run on whatever happened.
            await target.store.discard(partial: partial)
            _ = try? await qmp.migrateCancel(timeout: .seconds(2))
            _ = try? await qmp.cont(timeout: .seconds(5))
            run.logger.warning("VM \(vmName): no snapshot taken; later starts boot cold too: \(error)")
        }
    }

    /// After a failed restore: the snapshot is removed (the cold boot that follows takes a fresh
    /// one, unless this machine's snapshots already failed before in the run), and QEMU's error
    /// goes to the run log.
    func dropSnapshot(_ target: SnapshotTarget, after error: VMStartError) async {
        // QEMU's own words, also when QEMU reported the failure over QMP before it exited.
        let text = "\(error)"
        let words = text.contains("qemu stderr:") ? "" : QEMUExit.lastWords(error.qemuStderr)
        run.logger.warning("VM \(vmName): restoring snapshot \(target.key.short) failed, so it is removed and the VM boots cold: \(text)\(words)")
        await target.store.remove(target.key.hex)
        run.warmBoot.restoreFailed(target.key.hex)
    }

    /// `deadline`, or what is left of the restore's budget while restoring, whichever is shorter.
    func budgeted(_ deadline: Duration) -> Duration {
        guard let end = parts({ $0.restoreDeadline }) else { return deadline }
        return max(.zero, min(deadline, end - ContinuousClock.now))
    }

    /// Sets the guest's clock to the host's. An agent that sets the time but cannot write the
    /// hardware clock reports an error: the clock then counts as set if the guest's time agrees.
    static func setClock(_ agent: GuestAgentClient) async throws {
        do {
            try await agent.setTime(Date())
        } catch {
            guard let guest = try? await agent.time(), abs(guest.timeIntervalSinceNow) < 1 else { throw error }
        }
    }
}
