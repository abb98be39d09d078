import DTSControl
import Foundation
import Synchronization

/// The live-migration steps (docs/virtualization.md#live-migration): a VM waiting for an incoming
/// migration, the outgoing migration of a running VM, and the incoming VM taking over the guest.
extension VMInstance {
    /// The start of an incoming VM: QEMU up (with `-incoming`), QMP, and QEMU waiting for the stream.
    func incomingUp() async throws(VMStartError) {
        try await spawnQEMU()
        try await connectQMP()
        try await awaitIncoming()
    }

    /// `incoming`: QMP `query-status` reports `inmigrate`.
    func awaitIncoming() async throws(VMStartError) {
        guard let qmp = parts({ $0.qmp }) else { return }
        try await stage(.incoming, deadlines.qmp) {
            while true {
                let status = try await qmp.queryStatus()
                if status.status == "inmigrate" { return }
                guard status.status == "prelaunch" else {
                    throw VMStartError.Reason.failed("QEMU is '\(status.status)', not waiting for an incoming migration ('inmigrate')")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// The incoming VM after the migration: the migration seen completed here, the guest running
    /// (continued, after vCPU pinning, when QEMU started paused), then the readiness stages of a
    /// cold boot through this QEMU's own forward: guest agent, management address, SSH, PCI map;
    /// from then on QEMU and the console are watched as for any VM that is up.
    func migratedUp(timeout: Duration) async throws(VMStartError) {
        try await awaitMigrated(timeout: timeout)
        try await pinVCPUs()
        try await awaitGuestAgent()
        try await awaitManagementAddress()
        try await loginSSH()
        try await readPCIMap()
        makeVirtDut()
        await watchWhileUp()
    }

    /// `migrated`: `query-migrate` on this QEMU says `completed` (QEMU's error when it failed);
    /// a guest left paused (the source was paused) is continued, unless `pinning` does that.
    func awaitMigrated(timeout: Duration) async throws(VMStartError) {
        guard let qmp = parts({ $0.qmp }) else { return }
        let startsPaused = command.startsPaused
        try await stage(.migrated, timeout) {
            try await qmp.migrateSetCapabilities(["events": true])
            try await qmp.waitForMigration(timeout: timeout)
            if !startsPaused, try await qmp.queryStatus().isPaused { try await qmp.cont() }
        }
    }

    /// The address and port QEMU listens on for the migration stream (`-incoming tcp:HOST:PORT`).
    var incomingURI: String? {
        command.options.last { $0.name == "-incoming" }?.value.flatMap { $0.hasPrefix("tcp:") ? $0 : nil }
    }

    /// Starts the outgoing migration to `uri` with `capabilities` set on both ends (some, such as
    /// `x-ignore-shared` or `postcopy-ram`, must agree); returns once QEMU accepted `migrate`.
    func startMigration(to destination: VMInstance, uri: String, capabilities: [String: Bool]) async throws {
        guard let qmp = parts({ $0.qmp }), let incoming = destination.parts({ $0.qmp }) else {
            throw MigrationError(source: vmName, destination: destination.vmName, reason: "a QMP connection is missing (is either VM stopped?)")
        }
        var all = capabilities
        all["events"] = true
        try await incoming.migrateSetCapabilities(all)
        try await qmp.migrateSetCapabilities(all)
        // The migration's state is followed by its events from here (see followMigration).
        let cursor = qmp.eventCursor()
        try await qmp.migrate(uri: uri)
        parts { $0.migratingTo = destination.vmName; $0.migrationEvents = cursor }
    }

    /// Follows the outgoing migration until it ends: every reading goes to the run log, status
    /// changes to the run's timeline (`migration setup`, `migration active`, `migration
    /// downtime`). Returns the completed migration's figures; throws ``MigrationError`` with
    /// QEMU's reason when it failed.
    func followMigration(to destination: String, timeout: Duration) async throws -> MigrationResult {
        guard let qmp = parts({ $0.qmp }) else {
            throw MigrationError(source: vmName, destination: destination, reason: "the source VM is stopped")
        }
        let phases = Mutex<(status: String, since: Date)?>(nil)
        let (vm, logger, timeline) = (vmName, run.logger, run.timeline)
        let started = ContinuousClock.now
        let since = parts { $0.migrationEvents }
        do {
            let info = try await qmp.waitForMigration(timeout: timeout, since: since) { info in
                logger.info("VM \(vm) → \(destination): migration \(info.progressSummary)")
                let now = Date()
                phases.withLock { phase in
                    if let current = phase, current.status != info.status {
                        timeline.record(vm: vm, stage: "migration \(current.status)", start: current.since, end: now)
                    }
                    if phase?.status != info.status { phase = (info.status, now) }
                }
            }
            let end = Date()
            if let downtime = info.downtime {
                timeline.record(vm: vm, stage: "migration downtime \(downtime) ms", start: end.addingTimeInterval(-Double(downtime) / 1000), end: end)
            }
            parts { $0.migratedAway = true }
            let result = MigrationResult(info: info, wallSeconds: (ContinuousClock.now - started).seconds)
            logger.info("VM \(vm) → \(destination): migration completed in \(String(format: "%.2f", result.totalSeconds)) s, downtime \(info.downtime.map(String.init) ?? "?") ms")
            return result
        } catch let failure as MigrationFailure {
            throw MigrationError(source: vmName, destination: destination,
                                 reason: "QEMU reports the migration \(failure.status)" + (failure.reason.map { ": \($0)" } ?? ""))
        } catch let error as ControlError {
            if case .noReply = error {
                _ = try? await qmp.migrateCancel(timeout: .seconds(5))
                throw MigrationError(source: vmName, destination: destination, reason: "not completed within \(timeout.secondsText); cancelled")
            }
            throw MigrationError(source: vmName, destination: destination, reason: "\(error)")
        }
    }
}

extension QMPMigrationInfo {
    /// ``summary`` with what is left to send and the dirty-page rate while the migration runs.
    var progressSummary: String {
        var text = summary
        if let ram = ram, !isFinished {
            text += String(format: ", %.1f MB remaining", Double(ram.remaining) / 1e6)
            if let rate = ram.dirtyPagesRate, rate > 0 { text += ", \(rate) dirty pages/s" }
        }
        return text
    }
}
