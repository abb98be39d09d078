import ArgumentParser
import DTS
import Foundation

/// `dts image`: what dts keeps in its cache besides results.
struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Work with dts's image cache.",
        subcommands: [Snapshots.self])

    struct Snapshots: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List (or remove) the VM snapshots warm boot restores, with their size and what their key covers.",
            discussion: """
                Snapshots live in $DTS_SNAPSHOT_DIR, else ~/.cache/dts/snapshots, at most $DTS_SNAPSHOT_CACHE_MB \
                megabytes (default 4096), the least recently used evicted first. A remote DUT keeps its own \
                in its ~/.cache/dts/snapshots. See docs/virtualization.md#warm-boot.
                """)

        @Flag(name: .long, help: "Remove every snapshot.") var clear = false
        @Flag(name: .long, help: "Also print every line of each snapshot's key.") var verbose = false
        @Option(name: .long, help: "The snapshot directory (default: $DTS_SNAPSHOT_DIR, else ~/.cache/dts/snapshots).")
        var directory: String?

        func run() throws {
            let cache = SnapshotCache(directory: directory ?? SnapshotCache.defaultDirectory)
            if clear {
                let removed = cache.clear()
                let bytes = removed.reduce(Int64(0)) { $0 + $1.bytes }
                print("removed \(removed.count) snapshot\(removed.count == 1 ? "" : "s") (\(SnapshotCache.size(bytes))) from \(cache.directory)")
                return
            }
            let entries = cache.list()
            let total = entries.reduce(Int64(0)) { $0 + $1.bytes }
            print("\(entries.count) snapshot\(entries.count == 1 ? "" : "s") in \(cache.directory), \(SnapshotCache.size(total)) of \(SnapshotCache.size(cache.capacity))")
            guard !entries.isEmpty else { return }
            let dates = DateFormatter()
            dates.dateFormat = "yyyy-MM-dd HH:mm"
            var rows = [["key", "size", "vm", "taken", "last used", "cold boot", "machine"]]
            for entry in entries {
                rows.append([String(entry.record.key.prefix(12)), SnapshotCache.size(entry.bytes), entry.record.vm, dates.string(from: entry.record.created),
                             dates.string(from: entry.lastUsed), String(format: "%.1f s", entry.record.coldBootSeconds), entry.machine])
            }
            let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
            for row in rows {
                print(row.enumerated().map { $0.offset == row.count - 1 ? $0.element : $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                    .joined(separator: "  "))
            }
            if verbose {
                for entry in entries {
                    print("\n\(entry.record.key):")
                    for line in entry.record.keyLines { print("  " + line) }
                }
            }
        }
    }
}
