import DTSSession
import Foundation

/// The snapshot cache of a remote host DUT, `~/.cache/dts/snapshots` in the DUT user's home, with
/// the same files as this machine's ``SnapshotCache`` (saved disk overlays included), worked through the DUT's SSH connection
/// (`sh`, `stat`, `sha256sum`, `mv`, `rm` there). QEMU on the DUT writes and reads the state
/// files itself. Content digests are remembered in `.digests` there, by path, size, modification
/// time, inode and device, as on this machine.
struct RemoteSnapshotStore: SnapshotStore {
    /// Runs an argument vector on the DUT.
    let exec: @Sendable (_ argv: [String]) async throws -> ExecResult
    let directory: String
    let capacity: Int64
    /// The DUT, for messages.
    let label: String

    /// Prints `qemu PATH`, `version TEXT`, then `sha256 HASH PATH` for the binary and each file.
    static let inputsScript = #"""
        dir=$1; bin=$2; shift 2
        mkdir -p "$dir" || exit 1
        found=$(command -v "$bin") || { echo "no $bin on PATH" >&2; exit 2; }
        real=$(readlink -f "$found") || exit 2
        echo "qemu $real"
        printf 'version %s\n' "$("$real" --version | head -n 1)"
        memo="$dir/.digests"
        for f in "$real" "$@"; do
            id=$(stat -L -c '%s %Y %i %d' -- "$f") || exit 3
            h=$(ID="$id" F="$f" awk -F '\t' '$2 == ENVIRON["ID"] && $3 == ENVIRON["F"] { h = $1 } END { print h }' "$memo" 2>/dev/null)
            if [ -z "$h" ]; then
                h=$(sha256sum -- "$f" | cut -d ' ' -f 1) || exit 3
                printf '%s\t%s\t%s\n' "$h" "$id" "$f" >> "$memo"
            fi
            printf 'sha256 %s %s\n' "$h" "$f"
        done
        """#

    func inputs(qemuBinary: String, files: [String]) async throws -> SnapshotInputs {
        let result = try await exec(["sh", "-c", Self.inputsScript, "sh", directory, qemuBinary] + files)
        guard result.succeeded else {
            throw ResourceError("\(label): cannot read QEMU and the files it opens: \(result.errorOutput.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return try Self.parseInputs(result.output, files: files)
    }

    /// Reads what ``inputsScript`` prints.
    static func parseInputs(_ text: String, files: [String]) throws -> SnapshotInputs {
        var path = "", version = ""
        var digests: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            switch fields.first {
            case "qemu": path = fields.dropFirst().joined(separator: " ")
            case "version": version = fields.dropFirst().joined(separator: " ")
            case "sha256" where fields.count == 3: digests[fields[2]] = fields[1]
            default: continue
            }
        }
        guard !path.isEmpty, let binary = digests[path] else { throw ResourceError("unexpected output reading QEMU's identity: \(text)") }
        if !files.contains(path) { digests[path] = nil }
        for file in files where digests[file] == nil { throw ResourceError("no digest of \(file) in: \(text)") }
        return SnapshotInputs(qemu: QEMUIdentity(path: path, version: version, sha256: binary), digests: digests)
    }

    func entry(_ key: String) async -> SnapshotEntry? {
        let script = #"s=$(stat -c %s -- "$1") && r=$(stat -c '%s %Y' -- "$2") && echo "$s $r" && cat -- "$2""#
        guard let result = try? await exec(["sh", "-c", script, "sh", statePath(key), recordPath(key)]), result.succeeded,
              let newline = result.stdout.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let sizes = String(decoding: result.stdout[..<newline], as: UTF8.self).split(separator: " ").compactMap { Int64($0) }
        guard sizes.count == 3, let record = SnapshotRecord.decode(Data(result.stdout[(newline + 1)...])),
              record.key == key, record.stateBytes == sizes[0] else { return nil }
        let overlayBytes = record.overlayBytes ?? []
        let overlayPaths = overlayBytes.indices.map { overlayPath(key, $0) }
        if !overlayPaths.isEmpty {
            guard let stat = try? await exec(["stat", "-c", "%s", "--"] + overlayPaths), stat.succeeded,
                  stat.output.split(separator: "\n").compactMap({ Int64($0) }) == overlayBytes else { return nil }
        }
        return SnapshotEntry(record: record, statePath: statePath(key), bytes: sizes[0] + sizes[1] + overlayBytes.reduce(0, +),
                             lastUsed: Date(timeIntervalSince1970: Double(sizes[2])), overlayPaths: overlayPaths)
    }

    func partialPath(for key: String) -> String {
        "\(directory)/\(key).state.partial-\(UInt32.random(in: 0...UInt32.max))"
    }

    func commit(_ record: SnapshotRecord, partial: String, overlays: [String]) async throws -> SnapshotRecord {
        var record = record
        let size = try await exec(["stat", "-c", "%s", "--", partial])
        guard size.succeeded, let bytes = Int64(size.output.trimmingCharacters(in: .whitespacesAndNewlines)), bytes > 0 else {
            throw ResourceError("\(label): QEMU wrote no state file \(partial): \(size.errorOutput)")
        }
        record.stateBytes = bytes
        if !overlays.isEmpty {
            // Copies of the overlays as they are now, moved in place below; their sizes go into the record.
            let pairs = overlays.enumerated().flatMap { [$0.element, overlayPath(record.key, $0.offset) + ".partial"] }
            let script = #"while [ $# -gt 0 ]; do cp -f -- "$1" "$2" && stat -c %s -- "$2" || exit 1; shift 2; done"#
            let copied = try await exec(["sh", "-c", script, "sh"] + pairs)
            let sizes = copied.output.split(separator: "\n").compactMap { Int64($0) }
            guard copied.succeeded, sizes.count == overlays.count else {
                _ = try? await exec(["rm", "-f", "--"] + overlays.indices.map { overlayPath(record.key, $0) + ".partial" })
                throw ResourceError("\(label): cannot save the disk overlays with the snapshot: \(copied.errorOutput)")
            }
            record.overlayBytes = sizes
        }
        // The record goes last: an entry is complete only once everything else is in place.
        let script = #"""
            p=$1 s=$2 j=$3 r=$4 n=$5; shift 5
            i=0; while [ $i -lt "$n" ]; do mv -f -- "$p.overlay$i.qcow2.partial" "$p.overlay$i.qcow2" || exit 1; i=$((i + 1)); done
            mv -f -- "$s" "$p.state" && printf '%s' "$j" > "$r.partial" && mv -f -- "$r.partial" "$r"
            """#
        let moved = try await exec(["sh", "-c", script, "sh", "\(directory)/\(record.key)", partial,
                                    String(decoding: record.encoded(), as: UTF8.self), recordPath(record.key), String(overlays.count)])
        guard moved.succeeded else { throw ResourceError("\(label): cannot move the snapshot into place: \(moved.errorOutput)") }
        await evict(keep: record.key)
        return record
    }

    func discard(partial: String) async { _ = try? await exec(["rm", "-f", "--", partial]) }

    func markUsed(_ key: String) async { _ = try? await exec(["touch", "-c", "--", recordPath(key)]) }

    func remove(_ key: String) async {
        _ = try? await exec(["sh", "-c", #"rm -f -- "$1.state" "$1.json" "$1".overlay*.qcow2"#, "sh", "\(directory)/\(key)"])
    }

    /// Removes the least recently used snapshots until the cache fits under ``capacity`` (never
    /// `keep`), and partial files older than an hour.
    func evict(keep: String?) async {
        let script = #"""
            for r in "$1"/*.json; do
                [ -f "$r" ] || continue
                k=${r##*/}; k=${k%.json}
                s=$(stat -c %s -- "$1/$k.state" 2>/dev/null) || continue
                o=$(stat -c %s -- "$1/$k".overlay*.qcow2 2>/dev/null | awk '{ t += $1 } END { print t + 0 }')
                echo "$k $((s + o)) $(stat -c '%s %Y' -- "$r")"
            done
            find "$1" -maxdepth 1 -name '*.partial*' -mmin +60 -exec rm -f -- {} + 2>/dev/null
            true
            """#
        guard let listing = try? await exec(["sh", "-c", script, "sh", directory]), listing.succeeded else { return }
        let snapshots = listing.output.split(separator: "\n").compactMap { line -> SnapshotUsage? in
            let fields = line.split(separator: " ")
            guard fields.count == 4, let state = Int64(fields[1]), let record = Int64(fields[2]), let used = Double(fields[3]) else { return nil }
            return SnapshotUsage(key: String(fields[0]), bytes: state + record, lastUsed: Date(timeIntervalSince1970: used))
        }
        for victim in SnapshotEviction.victims(snapshots, capacity: capacity, keep: keep) { await remove(victim.key) }
    }
}
