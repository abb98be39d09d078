import Foundation

/// What dts records next to a snapshot's state file (`<key>.json`).
public struct SnapshotRecord: Codable, Sendable, Equatable {
    /// The key (``SnapshotKey/hex``): also the name of the state file, `<key>.state`.
    public var key: String
    /// The VM it was taken of.
    public var vm: String
    /// ``SnapshotKey/summary``.
    public var summary: String
    /// ``SnapshotKey/lines``: what the key covers, for `dts image snapshots` and for telling why two keys differ.
    public var keyLines: [String]
    /// When it was taken.
    public var created: Date
    /// The size of the state file; a state file of another size is not this snapshot.
    public var stateBytes: Int64
    /// Seconds the cold boot took from launching QEMU until the guest was ready (agent and
    /// management address), for comparing with a restore.
    public var coldBootSeconds: Double
    /// Seconds the save took (guest paused).
    public var saveSeconds: Double

    public init(key: String, vm: String, summary: String, keyLines: [String], created: Date, stateBytes: Int64,
                coldBootSeconds: Double, saveSeconds: Double) {
        self.key = key
        self.vm = vm
        self.summary = summary
        self.keyLines = keyLines
        self.created = created
        self.stateBytes = stateBytes
        self.coldBootSeconds = coldBootSeconds
        self.saveSeconds = saveSeconds
    }

    static func decode(_ data: Data) -> SnapshotRecord? {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(SnapshotRecord.self, from: data)
    }

    func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? encoder.encode(self)) ?? Data()
    }
}

/// One snapshot in a cache: its record and what the files say.
public struct SnapshotEntry: Sendable, Equatable {
    /// The record.
    public var record: SnapshotRecord
    /// The state file's path on the cache's host.
    public var statePath: String
    /// Bytes on disk (state file and record).
    public var bytes: Int64
    /// When a start last used it (or it was taken): the eviction order.
    public var lastUsed: Date

    var usage: SnapshotUsage { SnapshotUsage(key: record.key, bytes: bytes, lastUsed: lastUsed) }
}

/// What eviction needs to know of a snapshot.
struct SnapshotUsage: Sendable, Equatable {
    var key: String
    var bytes: Int64
    var lastUsed: Date
}

/// Which snapshots go when a cache is over its size cap: the least recently used first, until
/// the rest fits; `keep` (the one just taken) never goes.
enum SnapshotEviction {
    static func victims(_ snapshots: [SnapshotUsage], capacity: Int64, keep: String?) -> [SnapshotUsage] {
        var total = snapshots.reduce(Int64(0)) { $0 + $1.bytes }
        var victims: [SnapshotUsage] = []
        for snapshot in snapshots.sorted(by: { ($0.lastUsed, $0.key) < ($1.lastUsed, $1.key) }) where total > capacity {
            if snapshot.key == keep { continue }
            victims.append(snapshot)
            total -= snapshot.bytes
        }
        return victims
    }
}
