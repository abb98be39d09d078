import DTSProcess
import DTSSession
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where a VM's host keeps snapshots, and what warm boot does there: this machine's
/// ``SnapshotCache``, or the cache of a remote DUT (``RemoteSnapshotStore``). Paths are on the
/// VM's host: QEMU writes and reads the state files itself (`exec:cat`).
protocol SnapshotStore: Sendable {
    /// The cache directory on the VM's host.
    var directory: String { get }
    /// The QEMU identity and the digests of `files`, read on the host.
    func inputs(qemuBinary: String, files: [String]) async throws -> SnapshotInputs
    /// The snapshot with `key`, if a complete one is there.
    func entry(_ key: String) async -> SnapshotEntry?
    /// A path of its own in the cache for QEMU to write a state file to, before ``commit(_:partial:)``.
    func partialPath(for key: String) -> String
    /// Moves a written state file in place with copies of the VM's disk `overlays` (as they are
    /// now: the guest is paused) and its record (sizes filled in), then evicts what no longer
    /// fits under the cap; returns the record as stored.
    func commit(_ record: SnapshotRecord, partial: String, overlays: [String]) async throws -> SnapshotRecord
    /// Removes a partial state file.
    func discard(partial: String) async
    /// Records that a start used the snapshot (the eviction order).
    func markUsed(_ key: String) async
    /// Removes a snapshot.
    func remove(_ key: String) async
}

extension SnapshotStore {
    /// `<directory>/<key>.state`.
    func statePath(_ key: String) -> String { "\(directory)/\(key).state" }
    /// `<directory>/<key>.json`.
    func recordPath(_ key: String) -> String { "\(directory)/\(key).json" }
    /// `<directory>/<key>.overlay<index>.qcow2`: the VM's disk overlay `index` as it was when the snapshot was taken.
    func overlayPath(_ key: String, _ index: Int) -> String { "\(directory)/\(key).overlay\(index).qcow2" }

    /// Commits a snapshot of a VM without disk overlays.
    func commit(_ record: SnapshotRecord, partial: String) async throws -> SnapshotRecord {
        try await commit(record, partial: partial, overlays: [])
    }
}

/// The snapshot cache on this machine: `~/.cache/dts/snapshots` (`DTS_SNAPSHOT_DIR`), one
/// `<key>.state` (QEMU's migration stream), `<key>.json` (``SnapshotRecord``) and a
/// `<key>.overlay<N>.qcow2` per disk overlay of the VM per snapshot, at most ``capacity`` bytes,
/// the least recently used evicted first.
///
/// Changes (commit, eviction, removal) hold an exclusive `flock` on `<directory>/.lock`, so
/// concurrent dts processes never evict under each other; a state file QEMU is reading stays
/// readable after it is removed.
public struct SnapshotCache: SnapshotStore {
    /// The cache directory.
    public let directory: String
    /// The size cap in bytes.
    public let capacity: Int64

    /// `DTS_SNAPSHOT_DIR`, else `~/.cache/dts/snapshots`.
    public static var defaultDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["DTS_SNAPSHOT_DIR"], !dir.isEmpty { return dir }
        return NSHomeDirectory() + "/.cache/dts/snapshots"
    }

    /// `DTS_SNAPSHOT_CACHE_MB` megabytes, else 4096 MB.
    public static var defaultCapacity: Int64 {
        let megabytes = ProcessInfo.processInfo.environment["DTS_SNAPSHOT_CACHE_MB"].flatMap { Int64($0) } ?? 4096
        return max(0, megabytes) * 1_000_000
    }

    public init(directory: String = SnapshotCache.defaultDirectory, capacity: Int64 = SnapshotCache.defaultCapacity) {
        self.directory = directory
        self.capacity = capacity
    }

    /// A size for messages: `85.9 MB`.
    public static func size(_ bytes: Int64) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }

    // MARK: Listing and clearing (dts image snapshots)

    /// Every complete snapshot, most recently used first.
    public func list() -> [SnapshotEntry] {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }
            .compactMap { entry(key: String($0.dropLast(5))) }
            .sorted { ($0.lastUsed, $0.record.key) > ($1.lastUsed, $1.record.key) }
    }

    /// Removes every snapshot (and any partial or stray file in the cache); returns what was removed.
    @discardableResult
    public func clear() -> [SnapshotEntry] {
        withLock {
            let entries = list()
            let fm = FileManager.default
            for name in (try? fm.contentsOfDirectory(atPath: directory)) ?? [] where !name.hasPrefix(".") || name.hasPrefix(".digests") {
                try? fm.removeItem(atPath: directory + "/" + name)
            }
            return entries
        }
    }

    /// Removes snapshots, least recently used first, until the cache fits under ``capacity``
    /// (never `keep`); also partial files older than an hour (a save that died). Returns what went.
    @discardableResult
    public func evict(keep: String? = nil) -> [SnapshotEntry] {
        withLock {
            let entries = list()
            let victims = Set(SnapshotEviction.victims(entries.map(\.usage), capacity: capacity, keep: keep).map(\.key))
            for key in victims { removeFiles(key) }
            removeStalePartials()
            return entries.filter { victims.contains($0.record.key) }
        }
    }

    // MARK: SnapshotStore

    func inputs(qemuBinary: String, files: [String]) async throws -> SnapshotInputs {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let memo = DigestMemo(path: directory + "/.digests.json")
        guard let binary = Self.resolve(qemuBinary) else { throw ResourceError("\(qemuBinary): not found on this host's PATH") }
        let real = URL(fileURLWithPath: binary).resolvingSymlinksInPath().path
        var digests = try memo.digests(of: files + [real])
        let sha256 = digests[real] ?? ""
        if !files.contains(real) { digests[real] = nil }
        let version = try await Self.versions.value(for: sha256) { try await Self.version(of: real) }
        return SnapshotInputs(qemu: QEMUIdentity(path: real, version: version, sha256: sha256), digests: digests)
    }

    func entry(_ key: String) async -> SnapshotEntry? { entry(key: key) }

    func partialPath(for key: String) -> String {
        "\(directory)/\(key).state.partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    func commit(_ record: SnapshotRecord, partial: String, overlays: [String]) async throws -> SnapshotRecord {
        var record = record
        record.stateBytes = Self.fileSize(partial) ?? 0
        guard record.stateBytes > 0 else { throw ResourceError("QEMU wrote an empty state file \(partial)") }
        // Copied under names of their own first; whatever is not moved in place goes.
        let copies = overlays.indices.map { overlayPath(record.key, $0) + ".partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }
        defer { for copy in copies { unlink(copy) } }
        for (overlay, copy) in zip(overlays, copies) {
            do { try FileManager.default.copyItem(atPath: overlay, toPath: copy) } catch {
                throw ResourceError("cannot save the disk overlay \(overlay) with the snapshot: \(error.localizedDescription)")
            }
        }
        record.overlayBytes = overlays.isEmpty ? nil : copies.map { Self.fileSize($0) ?? 0 }
        try withLock {
            removeOverlays(record.key)
            for (index, copy) in copies.enumerated() where rename(copy, overlayPath(record.key, index)) != 0 {
                throw ResourceError("cannot move \(copy) into place: \(String(cString: strerror(errno)))")
            }
            // The record goes last: an entry is complete only once everything else is in place.
            guard rename(partial, statePath(record.key)) == 0 else {
                throw ResourceError("cannot move \(partial) into place: \(String(cString: strerror(errno)))")
            }
            let temporary = recordPath(record.key) + ".partial-\(getpid())"
            guard FileManager.default.createFile(atPath: temporary, contents: record.encoded()),
                  rename(temporary, recordPath(record.key)) == 0 else {
                unlink(temporary)
                throw ResourceError("cannot write \(recordPath(record.key))")
            }
        }
        evict(keep: record.key)
        return record
    }

    func discard(partial: String) async { unlink(partial) }

    func markUsed(_ key: String) async { utimes(recordPath(key), nil) }

    func remove(_ key: String) async { withLock { removeFiles(key) } }

    // MARK: Internals

    func entry(key: String) -> SnapshotEntry? {
        let fm = FileManager.default
        guard let data = fm.contents(atPath: recordPath(key)), let record = SnapshotRecord.decode(data), record.key == key,
              let recordAttributes = try? fm.attributesOfItem(atPath: recordPath(key)),
              let stateAttributes = try? fm.attributesOfItem(atPath: statePath(key)),
              let stateBytes = (stateAttributes[.size] as? NSNumber)?.int64Value, stateBytes == record.stateBytes
        else { return nil }
        let overlayBytes = record.overlayBytes ?? []
        let overlayPaths = overlayBytes.indices.map { overlayPath(key, $0) }
        guard zip(overlayPaths, overlayBytes).allSatisfy({ Self.fileSize($0) == $1 }) else { return nil }
        let used = recordAttributes[.modificationDate] as? Date ?? record.created
        return SnapshotEntry(record: record, statePath: statePath(key), bytes: stateBytes + Int64(data.count) + overlayBytes.reduce(0, +),
                             lastUsed: used, overlayPaths: overlayPaths)
    }

    private func removeFiles(_ key: String) {
        unlink(statePath(key))
        unlink(recordPath(key))
        removeOverlays(key)
    }

    /// Removes the saved disk overlays of the snapshot with `key` (not partial copies).
    private func removeOverlays(_ key: String) {
        let prefix = key + ".overlay"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        where name.hasPrefix(prefix) && name.hasSuffix(".qcow2") {
            unlink(directory + "/" + name)
        }
    }

    /// The size of file `path`, if it is there.
    static func fileSize(_ path: String) -> Int64? {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value
    }

    private func removeStalePartials() {
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: directory)) ?? [] where name.contains(".partial-") {
            let path = directory + "/" + name
            if let modified = (try? fm.attributesOfItem(atPath: path))?[.modificationDate] as? Date, modified.timeIntervalSinceNow < -3600 {
                unlink(path)
            }
        }
    }

    /// Runs `body` holding the cache's lock (made with the directory on first use).
    private func withLock<T>(_ body: () throws -> T) rethrows -> T {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let fd = open(directory + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd >= 0 { flock(fd, LOCK_EX) }
        defer { if fd >= 0 { close(fd) } }
        return try body()
    }

    /// `name` found on `PATH` (or itself, if it holds a `/`).
    static func resolve(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// `--version` lines by binary digest, read once per process.
    static let versions = OnceCache<String, String>()

    /// The first line of `binary --version`.
    static func version(of binary: String) async throws -> String {
        let result = try await LocalSession(endpoint: "localhost").exec(argv: [binary, "--version"], timeout: .seconds(20))
        guard result.succeeded, let line = result.output.split(separator: "\n").first else {
            throw ResourceError("\(binary) --version failed (status \(result.status)): \(result.errorOutput)")
        }
        return String(line)
    }
}

/// Values computed once per key and process (concurrent callers of one key may both compute it).
final class OnceCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let values = Mutex<[Key: Value]>([:])

    func value(for key: Key, _ make: () async throws -> Value) async rethrows -> Value {
        if let known = values.withLock({ $0[key] }) { return known }
        let made = try await make()
        values.withLock { $0[key] = made }
        return made
    }
}
