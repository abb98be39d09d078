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
    /// The sizes of the VM's disk overlays saved with the state (`<key>.overlay<N>.qcow2`, in
    /// ``QEMUCommandLine/overlays`` order); `nil` for a VM without overlays.
    public var overlayBytes: [Int64]?

    public init(key: String, vm: String, summary: String, keyLines: [String], created: Date, stateBytes: Int64,
                coldBootSeconds: Double, saveSeconds: Double, overlayBytes: [Int64]? = nil) {
        self.key = key
        self.vm = vm
        self.summary = summary
        self.keyLines = keyLines
        self.created = created
        self.stateBytes = stateBytes
        self.coldBootSeconds = coldBootSeconds
        self.saveSeconds = saveSeconds
        self.overlayBytes = overlayBytes
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
    /// Bytes on disk (state file, record and saved disk overlays).
    public var bytes: Int64
    /// When a start last used it (or it was taken): the eviction order.
    public var lastUsed: Date
    /// The saved disk overlays on the cache's host, in ``QEMUCommandLine/overlays`` order: a
    /// restore starts from copies of them, never from these files.
    public var overlayPaths: [String] = []

    var usage: SnapshotUsage { SnapshotUsage(key: record.key, bytes: bytes, lastUsed: lastUsed) }

    /// The machine for listings: the key's summary, and the disk overlays saved with the state
    /// (`x86_64 pc tcg, 1 vCPU max, 256 MiB, kernel dts-guest/vmlinux, 1 disk; 1 disk overlay saved (0.2 MB)`).
    public var machine: String {
        guard let overlays = record.overlayBytes, !overlays.isEmpty else { return record.summary }
        let count = overlays.count == 1 ? "1 disk overlay" : "\(overlays.count) disk overlays"
        return record.summary + "; \(count) saved (\(SnapshotCache.size(overlays.reduce(0, +))))"
    }
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
