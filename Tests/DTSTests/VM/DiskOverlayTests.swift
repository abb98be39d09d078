@testable import DTS
import DTSSession
import DTSTestSupport
import Foundation
import Testing

/// Throw-away disk overlays (`disk = ...,overlay=yes;`) without guests: the command line, warm
/// boot's view of them, the overlays saved with a snapshot in both caches, and making and
/// removing them with `qemu-img` on this machine.
@Suite struct DiskOverlayTests {
    typealias Machine = WarmBootUnitTests.Machine

    static let hasQEMUImg = SnapshotCache.resolve("qemu-img") != nil

    @Test func anOverlayIsWhatQEMUWritesAndKeepsWarmBootPossible() throws {
        let machine = try Machine()
        let disk = try machine.dir.write("disk.img", "base")
        let command = try machine.command { try $0.setVMParam("disk", "file=\(disk),opt_format=raw,opt_if=virtio,overlay=yes") }
        let overlay = QEMUCommandLine.DiskOverlay(path: "/run/dts/a/vm0/disk0.qcow2", base: disk, baseFormat: "raw")
        #expect(command.overlays == [overlay])
        #expect(command.argv.contains("file=/run/dts/a/vm0/disk0.qcow2,format=qcow2,if=virtio"), "\(command.argv)")
        #expect(!command.argv.contains { $0.contains("file=\(disk)") })
        // The base must exist before QEMU starts; the overlay is dts's to make.
        #expect(command.filesQEMUOpens.map(\.path).contains(disk))
        #expect(overlay.createArgv == ["qemu-img", "create", "-q", "-f", "qcow2", "-b", disk, "-F", "raw", "/run/dts/a/vm0/disk0.qcow2"])
        #expect(WarmBoot.unsafeReason(command) == nil)
        // The same disk without an overlay is writable: no warm boot, and the reason names the way out.
        let plain = try machine.command { try $0.setVMParam("disk", "file=\(disk),opt_format=raw,opt_if=virtio") }
        #expect(WarmBoot.unsafeReason(plain)?.contains("overlay=yes") == true)
        // Two overlays get two files.
        let two = try machine.command { try $0.setVMParam("disk", "file=\(disk),opt_format=raw,overlay=yes;file=\(disk),opt_format=raw,overlay=yes") }
        #expect(two.overlays.map(\.path) == ["/run/dts/a/vm0/disk0.qcow2", "/run/dts/a/vm0/disk1.qcow2"])
    }

    @Test func anOverlayNeedsTheBasesFormatAndAWritableMedium() throws {
        let machine = try Machine()
        let disk = try machine.dir.write("disk.img", "base")
        for (value, expected) in [("file=\(disk),overlay=yes", "needs opt_format"), ("file=\(disk),opt_format=raw,opt_media=cdrom,overlay=yes", "CD-ROM")] {
            do {
                _ = try machine.command { try $0.setVMParam("disk", value) }
                Issue.record("\(value) was accepted")
            } catch {
                #expect("\(error)".contains(expected), "\(error)")
            }
        }
    }

    @Test func theKeyCoversTheOverlaysBaseContent() throws {
        let machine = try Machine()
        let disk = try machine.dir.write("disk.img", "base")
        let command = try machine.command { try $0.setVMParam("disk", "file=\(disk),opt_format=raw,overlay=yes") }
        var inputs = machine.inputs()
        inputs.digests[disk] = "d1"
        let key = SnapshotKey.make(command: command, inputs: inputs)
        #expect(key.lines.contains("arg overlay <run>/disk0.qcow2 backing=sha256:d1 backing-format=raw"), "\(key.lines)")
        #expect(!key.lines.joined().contains(machine.dir.path))
        inputs.digests[disk] = "d2"
        #expect(SnapshotKey.make(command: command, inputs: inputs) != key)
        // Another run directory is the same machine.
        let elsewhere = try machine.command(root: "/run/dts/b") { try $0.setVMParam("disk", "file=\(disk),opt_format=raw,overlay=yes") }
        inputs.digests[disk] = "d1"
        #expect(SnapshotKey.make(command: elsewhere, inputs: inputs) == key)
    }

    /// Writes a stand-in state file and overlays, commits them to `store`, and returns the record.
    static func commit(to store: any SnapshotStore, key: String, overlays: [String: Int], in dir: TempDir) async throws -> SnapshotRecord {
        let partial = store.partialPath(for: key)
        #expect(FileManager.default.createFile(atPath: partial, contents: Data(repeating: 7, count: 500)))
        let paths = overlays.keys.sorted().map { dir.file($0) }
        for (name, bytes) in overlays { #expect(FileManager.default.createFile(atPath: dir.file(name), contents: Data(repeating: 1, count: bytes))) }
        return try await store.commit(SnapshotRecord(key: key, vm: "vm0", summary: "m", keyLines: [], created: Date(), stateBytes: 0,
                                                     coldBootSeconds: 1, saveSeconds: 1), partial: partial, overlays: paths)
    }

    @Test func theCacheKeepsTheOverlaysWithTheSnapshot() async throws {
        let dir = try TempDir("dts-overlaycache")
        let cache = SnapshotCache(directory: dir.file("snapshots"))
        try FileManager.default.createDirectory(atPath: cache.directory, withIntermediateDirectories: true)
        let key = String(repeating: "cd", count: 32)
        let record = try await Self.commit(to: cache, key: key, overlays: ["a.qcow2": 300, "b.qcow2": 200], in: dir)
        #expect(record.overlayBytes == [300, 200])
        let entry = try #require(await cache.entry(key))
        #expect(entry.overlayPaths == [cache.overlayPath(key, 0), cache.overlayPath(key, 1)])
        #expect(entry.bytes > 1000 && entry.machine == "m; 2 disk overlays saved (0.0 MB)")
        // The live overlays are copied, not moved.
        #expect(FileManager.default.fileExists(atPath: dir.file("a.qcow2")))
        // A saved overlay cut short makes the snapshot incomplete.
        try FileHandle(forWritingAtPath: cache.overlayPath(key, 1)).map { try $0.truncate(atOffset: 10); try $0.close() }
        #expect(await cache.entry(key) == nil)
        await cache.remove(key)
        let left = try FileManager.default.contentsOfDirectory(atPath: cache.directory).filter { !$0.hasPrefix(".") }
        #expect(left.isEmpty, "\(left)")
        // A missing overlay fails the commit and leaves no files behind.
        let partial = cache.partialPath(for: key)
        #expect(FileManager.default.createFile(atPath: partial, contents: Data(repeating: 7, count: 10)))
        await #expect(throws: ResourceError.self) {
            _ = try await cache.commit(SnapshotRecord(key: key, vm: "vm0", summary: "m", keyLines: [], created: Date(), stateBytes: 0,
                                                      coldBootSeconds: 1, saveSeconds: 1), partial: partial, overlays: [dir.file("missing")])
        }
        #expect(await cache.entry(key) == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache.directory).filter { $0.contains("overlay") }.isEmpty)
    }

    /// The remote store's scripts, run by a local shell, with overlays.
    @Test func theRemoteStoreKeepsTheOverlaysWithTheSnapshot() async throws {
        let dir = try TempDir("dts-overlayremote")
        let shell = LocalSession()
        try FileManager.default.createDirectory(atPath: dir.file("snapshots"), withIntermediateDirectories: true)
        let store = RemoteSnapshotStore(exec: { argv in try await shell.exec(argv: argv, timeout: .seconds(60)) },
                                        directory: dir.file("snapshots"), capacity: 10_000, label: "a local shell")
        let key = String(repeating: "ef", count: 32)
        let record = try await Self.commit(to: store, key: key, overlays: ["a.qcow2": 300], in: dir)
        #expect(record.overlayBytes == [300])
        let entry = try #require(await store.entry(key))
        #expect(entry.overlayPaths == [store.overlayPath(key, 0)] && entry.bytes >= 800)
        #expect(FileManager.default.contents(atPath: store.overlayPath(key, 0)) == Data(repeating: 1, count: 300))
        await store.remove(key)
        let left = try FileManager.default.contentsOfDirectory(atPath: store.directory).filter { !$0.hasPrefix(".") }
        #expect(left.isEmpty, "\(left)")
    }

    /// On this machine: a fresh overlay over its base, a restore's copy of a saved one, and neither left after removal.
    @Test(.enabled(if: hasQEMUImg, "qemu-img is not installed")) func theHostMakesAndRemovesOverlays() async throws {
        let dir = try TempDir("dts-overlayhost")
        let machine = try Machine()
        let base = try machine.dir.write("base.img", String(repeating: "b", count: 65536))
        let command = try machine.command(root: dir.path) { try $0.setVMParam("disk", "file=\(base),opt_format=raw,overlay=yes") }
        try FileManager.default.createDirectory(atPath: command.paths.runtimeDirectory, withIntermediateDirectories: true)
        let run = Run(root: dir.file("runs"))
        defer { run.removeDirectory() }
        let host = LocalVMHost(allocator: try run.allocator)
        let overlay = try #require(command.overlays.first)

        try await host.makeOverlays(of: command, restoring: nil)
        let info = try await LocalSession().exec(argv: ["qemu-img", "info", "--output=json", overlay.path], timeout: .seconds(30))
        #expect(info.output.contains("\"backing-filename\": \"\(base)\"") && info.output.contains("\"backing-filename-format\": \"raw\""), "\(info.output)")

        // A restore starts from a copy of the saved overlay.
        let saved = try dir.write("saved.qcow2", "saved overlay")
        let entry = SnapshotEntry(record: SnapshotRecord(key: "k", vm: "vm0", summary: "", keyLines: [], created: Date(), stateBytes: 1,
                                                         coldBootSeconds: 1, saveSeconds: 1, overlayBytes: [13]),
                                  statePath: "", bytes: 0, lastUsed: Date(), overlayPaths: [saved])
        try await host.makeOverlays(of: command, restoring: entry)
        #expect(FileManager.default.contents(atPath: overlay.path) == Data("saved overlay".utf8))
        try "written".write(toFile: overlay.path, atomically: false, encoding: .utf8)
        #expect(FileManager.default.contents(atPath: saved) == Data("saved overlay".utf8))

        await host.removeOverlays(of: command)
        #expect(!FileManager.default.fileExists(atPath: overlay.path))
        // A base that is not there: an error naming the overlay, and nothing left.
        let missing = try machine.command(root: dir.path) { try $0.setVMParam("disk", "file=\(dir.file("nope.img")),opt_format=raw,overlay=yes") }
        await #expect(throws: ResourceError.self) { try await host.makeOverlays(of: missing, restoring: nil) }
        #expect(!FileManager.default.fileExists(atPath: overlay.path))
    }
}
