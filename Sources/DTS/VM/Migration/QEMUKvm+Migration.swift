import DTSControl
import Foundation

/// A VM waiting for an incoming live migration: QEMU runs with `-incoming` and reports
/// `inmigrate`. Made by ``QEMUKvm/startIncoming(_:)``; pass it to the source's
/// ``QEMUKvm/migrate(to:capabilities:)``.
public struct IncomingVM: Sendable {
    /// The incoming VM's name (its section in the suite config).
    public let vmName: String
    /// Where QEMU listens for the stream: `tcp:HOST:PORT` (the VM host's address).
    public let uri: String
    /// The running QEMU.
    public let instance: VMInstance
}

/// The figures of a completed migration, from the source's `query-migrate`.
public struct MigrationResult: Sendable, Equatable {
    /// QEMU's total time of the migration, in seconds.
    public var totalSeconds: Double
    /// How long the guest was stopped at the switch-over, in milliseconds.
    public var downtimeMilliseconds: UInt64?
    /// Bytes of RAM sent.
    public var transferredBytes: UInt64?
    /// Seconds dts waited, from ``QEMUKvm/waitMigration(timeout:)`` to the end.
    public var wallSeconds: Double

    init(info: QMPMigrationInfo, wallSeconds: Double) {
        totalSeconds = Double(info.totalTime ?? 0) / 1000
        downtimeMilliseconds = info.downtime
        transferredBytes = info.ram?.transferred
        self.wallSeconds = wallSeconds
    }
}

/// A migration that could not start or did not complete, naming both VMs and why (QEMU's own
/// error text when QEMU reported the failure).
public struct MigrationError: Error, Sendable, CustomStringConvertible {
    public var source: String
    public var destination: String
    public var reason: String

    public var description: String { "migration of VM \(source) to VM \(destination): \(reason)" }
}

/// Live migration (DTS's `start_migration`, `wait_migration_done`, `migrated_start`; see
/// docs/virtualization.md#live-migration).
///
/// ```swift
/// let backup = try QEMUKvm(dut: dut, vmName: "backup", suite: "vhost_user_live_migration")
/// let incoming = try await backup.startIncoming()
/// try await host.migrate(to: incoming)
/// let result = try await host.waitMigration(timeout: .seconds(120))   // the source is stopped
/// let vmDut = try await backup.migratedStart()                       // the same guest, via backup's QEMU
/// ```
extension QEMUKvm {
    /// The capabilities ``migrate(to:capabilities:)`` sets unless told otherwise: `events` only
    /// (QEMU's defaults otherwise), which fits vhost-user: precopy, RAM sent over the stream (the
    /// destination's backend has memory of its own, so no `x-ignore-shared`), no postcopy (it
    /// needs userfaultfd support in the vhost-user backend).
    public static let defaultMigrationCapabilities: [String: Bool] = ["events": true]

    /// Starts QEMU waiting for an incoming migration (DTS's VM with `migration = enable=yes`): the
    /// start ends once QMP reports `inmigrate`; no guest agent, no SSH. Without `migration` in
    /// the config, `migration = enable=yes;` is added (the port allocated like every port).
    nonisolated(nonsending) public func startIncoming(_ options: VMStartOptions = VMStartOptions()) async throws -> IncomingVM {
        if let running = instance, let uri = running.incomingURI { return IncomingVM(vmName: vmName, uri: uri, instance: running) }
        if !waitsForMigration { try setVMParam("migration", "enable=yes", source: "startIncoming") }
        let launched = try await launch(options, incoming: true)
        guard let uri = launched.incomingURI else {
            await stop()
            throw MigrationError(source: "?", destination: vmName, reason: "QEMU has no -incoming tcp: address")
        }
        return IncomingVM(vmName: vmName, uri: uri, instance: launched)
    }

    /// Whether the config makes this VM wait for an incoming migration (`migration = enable=yes`).
    public var waitsForMigration: Bool {
        params.last { $0.name == MigrationParameter.spec.name }?.entries.last?.bool("enable") == true
    }

    /// Starts migrating this running VM to `incoming` (QMP `migrate` to its address and port,
    /// after `migrate-set-capabilities` on both ends) and returns; ``waitMigration(timeout:)``
    /// follows it. Refused, before anything is sent, when the two are not the same machine: the
    /// error names each difference (``MigrationCompatibility``).
    nonisolated(nonsending) public func migrate(to incoming: IncomingVM,
                                                capabilities: [String: Bool] = QEMUKvm.defaultMigrationCapabilities) async throws {
        guard let source = instance, source.dut != nil else {
            throw MigrationError(source: vmName, destination: incoming.vmName, reason: "the source VM is not running (start() it first)")
        }
        let differences = MigrationCompatibility.differences(source: source.command, destination: incoming.instance.command)
        guard differences.isEmpty else {
            throw MigrationError(source: vmName, destination: incoming.vmName,
                                 reason: "the destination is not the same machine:\n  " + differences.joined(separator: "\n  "))
        }
        dut.run.logger.info("VM \(vmName) → \(incoming.vmName): migrating to \(incoming.uri) (capabilities \(capabilities.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value ? "on" : "off")" }.joined(separator: " ")))")
        do {
            try await source.startMigration(to: incoming.instance, uri: incoming.uri, capabilities: capabilities)
        } catch let error as MigrationError {
            throw error
        } catch {
            throw MigrationError(source: vmName, destination: incoming.vmName, reason: "QEMU refused to start it: \(error)")
        }
    }

    /// Waits until the migration started by ``migrate(to:capabilities:)`` ends, following QMP
    /// `query-migrate` and `MIGRATION` events (no fixed sleeps), with its progress in the run log.
    /// Once completed, this (source) VM is stopped: its guest runs on the incoming VM now. A
    /// failed migration throws ``MigrationError`` with QEMU's reason, and the source keeps running.
    @discardableResult
    nonisolated(nonsending) public func waitMigration(timeout: Duration = .seconds(300)) async throws -> MigrationResult {
        guard let source = instance else {
            throw MigrationError(source: vmName, destination: "?", reason: "the source VM is not running")
        }
        let destination = source.parts { $0.migratingTo } ?? "?"
        let result = try await source.followMigration(to: destination, timeout: timeout.scaled(dut.run.timeoutFactor))
        await stop()
        return result
    }

    /// On the incoming VM once migrated: waits for the migration to complete here, resumes the
    /// guest if needed, and returns its VM DUT, reached through this QEMU's own forward with the
    /// same login; nothing is set up in the guest.
    @discardableResult
    nonisolated(nonsending) public func migratedStart(timeout: Duration = .seconds(300)) async throws -> VirtDut {
        guard let running = instance else {
            throw MigrationError(source: "?", destination: vmName, reason: "no incoming VM: startIncoming() first")
        }
        if let dut = running.dut { return dut }
        do {
            try await running.migratedUp(timeout: timeout.scaled(dut.run.timeoutFactor))
        } catch {
            var moved = error
            await stop()
            moved.logDirectory = running.logDirectory
            throw moved
        }
        guard let vmDut = running.dut else { throw MigrationError(source: "?", destination: vmName, reason: "no VM DUT after the migration") }
        return vmDut
    }
}
