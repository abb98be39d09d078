import Foundation

/// `query-migrate` (QAPI `MigrationInfo`): the state of the outgoing migration, or on a
/// destination (`-incoming`) of the incoming one.
public struct QMPMigrationInfo: Sendable, Hashable, Decodable {
    /// RAM transfer figures (QAPI `MigrationStats`), the members dts reads.
    public struct RAM: Sendable, Hashable, Decodable {
        /// Bytes sent so far.
        public var transferred: UInt64
        /// Bytes still to send.
        public var remaining: UInt64
        /// Guest RAM in bytes.
        public var total: UInt64
        /// Throughput in megabits per second.
        public var mbps: Double?
        /// Dirty pages per second, while iterating.
        public var dirtyPagesRate: UInt64?

        private enum CodingKeys: String, CodingKey {
            case transferred, remaining, total, mbps, dirtyPagesRate = "dirty-pages-rate"
        }
    }

    /// `none`, `setup`, `active`, `pre-switchover`, `device`, `postcopy-active`, `completed`,
    /// `failed`, `cancelling`, `cancelled`, `wait-unplug`, ...; `none` when no migration ran
    /// (QEMU then sends no status at all).
    public var status: String
    /// RAM figures, once a migration started.
    public var ram: RAM?
    /// Milliseconds since the migration started (or its total, once completed).
    public var totalTime: UInt64?
    /// Milliseconds the guest was stopped at the end (completed migrations).
    public var downtime: UInt64?
    /// QEMU's reason, when the status is `failed`.
    public var errorDescription: String?

    /// Whether the migration ended (completed, failed or cancelled).
    public var isFinished: Bool { ["completed", "failed", "cancelled"].contains(status) }

    private enum CodingKeys: String, CodingKey {
        case status, ram, totalTime = "total-time", downtime, errorDescription = "error-desc"
    }

    /// Decodes a `query-migrate` reply; an empty object (no migration yet) has status `none`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        status = try container.decodeIfPresent(String.self, forKey: .status) ?? "none"
        ram = try container.decodeIfPresent(RAM.self, forKey: .ram)
        totalTime = try container.decodeIfPresent(UInt64.self, forKey: .totalTime)
        downtime = try container.decodeIfPresent(UInt64.self, forKey: .downtime)
        errorDescription = try container.decodeIfPresent(String.self, forKey: .errorDescription)
    }

    /// One line for logs: `active, 41.0 MB of 268.4 MB sent, 1120 Mbit/s`.
    public var summary: String {
        var text = status
        if let ram {
            text += String(format: ", %.1f MB of %.1f MB sent", Double(ram.transferred) / 1e6, Double(ram.total) / 1e6)
            if let mbps = ram.mbps, mbps > 0 { text += String(format: ", %.0f Mbit/s", mbps) }
        }
        if let downtime { text += ", downtime \(downtime) ms" }
        if let errorDescription { text += ": \(errorDescription)" }
        return text
    }
}

/// A migration QEMU reports as `failed` or `cancelled`, with QEMU's own reason.
public struct MigrationFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The QMP socket of the QEMU that reported it.
    public var endpoint: ControlEndpoint
    /// `failed` or `cancelled`.
    public var status: String
    /// QEMU's `error-desc`, if it gave one.
    public var reason: String?

    public var description: String {
        "\(endpoint): migration \(status)" + (reason.map { ": \($0)" } ?? "")
    }
}

/// Migration over QMP: outgoing (`migrate`), incoming (`migrate-incoming` on a QEMU started with
/// `-incoming defer`), capabilities, and waiting for the end by following `MIGRATION` events.
extension QMPClient {
    /// `migrate-set-capabilities`: turns each named capability on or off (`events`, `x-ignore-shared`,
    /// `postcopy-ram`, `auto-converge`, ...).
    public func migrateSetCapabilities(_ capabilities: [String: Bool], timeout: Duration = .seconds(10)) async throws {
        let list: [JSONValue] = capabilities.sorted { $0.key < $1.key }.map { ["capability": .string($0.key), "state": .bool($0.value)] }
        try await execute("migrate-set-capabilities", arguments: ["capabilities": .array(list)], timeout: timeout)
    }

    /// `migrate`: starts an outgoing migration to `uri` (`tcp:HOST:PORT`, `exec:COMMAND`, `unix:PATH`)
    /// and returns at once; ``waitForMigration(timeout:progress:)`` follows it.
    public func migrate(uri: String, timeout: Duration = .seconds(10)) async throws {
        try await execute("migrate", arguments: ["uri": .string(uri)], timeout: timeout)
    }

    /// `migrate-incoming`: on a QEMU started with `-incoming defer`, starts receiving from `uri`
    /// (`tcp:HOST:PORT` to listen on, `exec:COMMAND` to read from); returns at once.
    public func migrateIncoming(uri: String, timeout: Duration = .seconds(10)) async throws {
        try await execute("migrate-incoming", arguments: ["uri": .string(uri)], timeout: timeout)
    }

    /// `migrate_cancel`: stops an outgoing migration; the source keeps running as before.
    public func migrateCancel(timeout: Duration = .seconds(10)) async throws {
        try await execute("migrate_cancel", timeout: timeout)
    }

    /// `query-migrate`.
    public func queryMigrate(timeout: Duration = .seconds(10)) async throws -> QMPMigrationInfo {
        try await execute("query-migrate", as: QMPMigrationInfo.self, timeout: timeout)
    }

    /// Waits until the migration on this QEMU ends: returns its info once `completed`, throws
    /// ``MigrationFailure`` (with QEMU's reason) once `failed` or `cancelled`.
    ///
    /// No fixed sleeps: it reads `query-migrate`, then waits for the next `MIGRATION` event
    /// (turn on the `events` capability to get them) or, at the latest, `poll`, and reads again.
    /// `progress` sees every reading.
    ///
    /// With `since` (a cursor taken before `migrate`), the status is the one of the last
    /// `MIGRATION` event after it, `setup` until there is one: the status `query-migrate`
    /// reports on a QEMU that was once a migration destination (a restored snapshot) is that
    /// incoming migration's `completed`, whatever its outgoing one does. The figures (RAM,
    /// downtime, QEMU's error) are the outgoing migration's either way.
    /// - Throws: ``ControlError/noReply(_:what:timeout:)`` (`migration end`) when `timeout` passes first.
    @discardableResult
    public func waitForMigration(timeout: Duration, poll: Duration = .milliseconds(500), since: QMPEventCursor? = nil,
                                 progress: (@Sendable (QMPMigrationInfo) -> Void)? = nil) async throws -> QMPMigrationInfo {
        let deadline = ContinuousClock.now + timeout
        while true {
            // The cursor before the reading: an event sent in between is not missed.
            let cursor = eventCursor()
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { throw ControlError.noReply(endpoint, what: "migration end", timeout: timeout) }
            var info = try await queryMigrate(timeout: max(remaining, .seconds(1)))
            if let since { info.status = lastMigrationStatus(after: since) ?? "setup" }
            progress?(info)
            switch info.status {
            case "completed": return try await finalFigures(info, since: since, deadline: deadline)
            case "failed", "cancelled": throw MigrationFailure(endpoint: endpoint, status: info.status, reason: info.errorDescription)
            default: break
            }
            let wait = min(poll, deadline - ContinuousClock.now)
            guard wait > .zero else { continue }
            do {
                try await waitForEvent(named: "MIGRATION", after: cursor, timeout: wait)
            } catch ControlError.noReply {
                // No event within `poll`: read the state again.
            }
        }
    }

    /// A completed migration's figures once QEMU has computed them. QEMU 7.2 announces
    /// `completed` (event and `query-migrate` status) before it computes the total time and the
    /// downtime, and a reading in between says 0 ms for both (seen here at the end of a packed-ring
    /// migration). Up to 50 more readings, 10 ms apart, wait for a non-zero total; after that the
    /// reading is returned as it is.
    private func finalFigures(_ first: QMPMigrationInfo, since: QMPEventCursor?, deadline: ContinuousClock.Instant) async throws -> QMPMigrationInfo {
        var info = first
        for _ in 0..<50 where (info.totalTime ?? 0) == 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
            var again = try await queryMigrate()
            // On a former migration destination, QEMU's own status is its incoming one's.
            if since != nil { again.status = info.status }
            guard again.status == "completed" else { continue }
            info = again
        }
        return info
    }

    /// The status of the last `MIGRATION` event after `cursor` (among the buffered events).
    public func lastMigrationStatus(after cursor: QMPEventCursor) -> String? {
        recentEvents().last { $0.name == "MIGRATION" && $0.sequence > cursor.sequence }?.data["status"]?.stringValue
    }
}
