@testable import DTS
import DTSControl
import DTSTestSupport
import Foundation
import Logging
import Testing

extension RealGuestTests {
    /// Warm boot with real guests: a snapshot taken on the first boot, restored on the next ones,
    /// and the fallbacks.
    @Suite struct WarmBootTests {
        static func run(_ messages: Messages? = nil) -> Run {
            Run.isolated(prefix: "dts-test-run", timeoutFactor: 1.5, logger: messages?.logger ?? Logger(label: "test"))
        }

        /// A cold boot in warm mode: the guest is saved once ready.
        static func takeSnapshot(_ fixture: VMFixture, _ cache: SnapshotCache) async throws {
            let run = run()
            try await withTearDown(run) {
                let vm = try fixture.vm(run: run, boot: .warm, snapshots: cache)
                _ = try await vm.start()
                let stages = try #require(vm.instance).stageEvents
                #expect(stages.contains { $0.stage == .snapshot && $0.outcome == .passed }, "\(stages)")
                #expect(!stages.contains { $0.stage == .restore })
                await vm.stop()
            }
            #expect(cache.list().count == 1)
        }

        static func restored(_ vm: QEMUKvm) throws -> Bool {
            let stages = try #require(vm.instance).stageEvents
            return stages.contains { $0.stage == .restore && $0.outcome == .passed } && !stages.contains { $0.outcome == .failed }
                && !stages.contains { $0.stage == .snapshot }
        }

        @Test func aWarmStartIsAUsableVMWithTheHostsClock() async throws {
            try VMFixture.requireGuestImage()
            let fixture = try VMFixture(["vm0": VMFixture.guest])
            let cache = SnapshotCache(directory: fixture.dir.path + "/snapshots")
            try await Self.takeSnapshot(fixture, cache)
            // Long enough that a guest clock left as the snapshot has it would be off by more than 2 s.
            try await Task.sleep(for: .seconds(3))

            let run = Self.run()
            try await withTearDown(run) {
                let vm = try fixture.vm(run: run, boot: .warm, snapshots: cache)
                let dut = try await vm.start()
                #expect(try Self.restored(vm), "\(vm.instance?.stageEvents ?? [])")
                let uname = try await dut.exec("uname -n", timeout: .seconds(20))
                #expect(uname.output == "dts-guest\n")
                // A file copy both ways.
                let scratch = try TempDir("dts-warm-copy")
                let payload = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
                #expect(FileManager.default.createFile(atPath: scratch.file("up"), contents: payload))
                try await dut.upload(localPath: scratch.file("up"), remotePath: "/tmp/copied", mode: 0o644, progress: nil)
                try await dut.download(remotePath: "/tmp/copied", localPath: scratch.file("down"), progress: nil)
                #expect(FileManager.default.contents(atPath: scratch.file("down")) == payload)
                // The guest's clock is the host's, not the snapshot's.
                // (busybox's date has whole seconds only.)
                let date = try await dut.exec("date +%s", timeout: .seconds(10))
                let guest = try #require(Double(date.output.trimmingCharacters(in: .whitespacesAndNewlines)))
                #expect(abs(guest - Date().timeIntervalSince1970) < 2, "guest clock \(guest), host \(Date().timeIntervalSince1970)")
                // The restored guest has the vmgenid driver: its kernel reseeded when the generation changed.
                let dmesg = try await dut.exec("dmesg | grep -c 'crng reseeded due to virtual machine fork'", timeout: .seconds(10))
                #expect(Int(dmesg.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 >= 1, "\(dmesg.output)")
                await vm.stop()
            }
        }

        @Test func twoWarmStartsAtOnceGetTheirOwnPortsAndRandomness() async throws {
            try VMFixture.requireGuestImage()
            let fixture = try VMFixture(["vm0": VMFixture.guest])
            let cache = SnapshotCache(directory: fixture.dir.path + "/snapshots")
            try await Self.takeSnapshot(fixture, cache)

            let runs = [Self.run(), Self.run()]
            try await withTearDown(runs[0]) {
                try await withTearDown(runs[1]) {
                    // Each VM made and started in its own task; the runs' tear-downs stop them.
                    @Sendable func start(_ run: Run) async throws -> (VirtDut, Bool, [VMStageEvent]) {
                        let vm = try fixture.vm(run: run, boot: .warm, snapshots: cache)
                        let dut = try await vm.start()
                        return (dut, try Self.restored(vm), vm.instance?.stageEvents ?? [])
                    }
                    async let first = start(runs[0])
                    async let second = start(runs[1])
                    let started = try await [first, second]
                    for (_, restored, stages) in started { #expect(restored, "\(stages)") }
                    let duts = started.map(\.0)
                    #expect(duts[0].command.ports.ssh != duts[1].command.ports.ssh)
                    var samples: [String] = []
                    for dut in duts {
                        let sample = try await dut.exec("head -c 16 /dev/urandom | od -An -tx1", timeout: .seconds(10))
                        samples.append(sample.output.filter { !$0.isWhitespace })
                    }
                    #expect(samples[0].count == 32 && samples[1].count == 32, "\(samples)")
                    #expect(samples[0] != samples[1], "two guests restored from one snapshot read the same random bytes")
                }
            }
        }

        @Test func aCorruptedSnapshotFallsBackToAColdBootAndIsReplaced() async throws {
            try VMFixture.requireGuestImage()
            let fixture = try VMFixture(["vm0": VMFixture.guest])
            let cache = SnapshotCache(directory: fixture.dir.path + "/snapshots")
            try await Self.takeSnapshot(fixture, cache)
            let state = try #require(cache.list().first).statePath
            // Not a migration stream any more (same size: the cache cannot tell).
            let handle = try #require(FileHandle(forWritingAtPath: state))
            try handle.write(contentsOf: Data(repeating: 0x5A, count: 64))
            try handle.close()

            let messages = Messages()
            let run = Self.run(messages)
            try await withTearDown(run) {
                let vm = try fixture.vm(run: run, boot: .warm, snapshots: cache)
                let dut = try await vm.start()
                #expect(try await dut.exec("true", timeout: .seconds(10)).status == 0)
                // The restore failed, then the same start booted cold and took a fresh snapshot.
                let stages = try #require(vm.instance).stageEvents
                #expect(stages.contains { $0.stage == .guestAgent && $0.outcome == .passed }, "\(stages)")
                #expect(stages.contains { $0.stage == .snapshot && $0.outcome == .passed }, "\(stages)")
                let fallback = messages.lines.first { $0.contains("restoring snapshot") && $0.contains("failed") }
                #expect(fallback?.contains("failed at stage 'restore'") == true, "\(messages.lines)")
                #expect(fallback?.contains("load of migration failed") == true, "QEMU's error is not in the log: \(fallback ?? "")")
                let timeline = run.timeline.events.map(\.stage)
                #expect(timeline.contains("restore (failed)") && timeline.contains("snapshot"), "\(timeline)")
                await vm.stop()
            }
            // The corrupted file is gone; the snapshot there now is a real one.
            let entries = cache.list()
            #expect(entries.count == 1)
            let head = FileManager.default.contents(atPath: try #require(entries.first).statePath)?.prefix(4)
            #expect(head == Data("QEVM".utf8))
        }

        @Test func aWritableDiskBootsColdAndSaysWhy() async throws {
            try VMFixture.requireGuestImage()
            let scratch = try TempDir("dts-warm-disk")
            let disk = scratch.file("disk.img")
            #expect(FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20)))
            let fixture = try VMFixture(["vm0": VMFixture.guest + "\ndisk = file=\(disk),opt_format=raw;"])
            let cache = SnapshotCache(directory: fixture.dir.path + "/snapshots")
            let messages = Messages()
            let run = Self.run(messages)
            try await withTearDown(run) {
                let vm = try fixture.vm(run: run, boot: .warm, snapshots: cache)
                _ = try await vm.start()
                let stages = try #require(vm.instance).stageEvents
                #expect(!stages.contains { $0.stage == .snapshot || $0.stage == .restore }, "\(stages)")
                let why = messages.lines.filter { $0.contains("vm0 boots cold") }
                #expect(why.count == 1 && why.first?.contains("disk \(disk) is writable") == true, "\(messages.lines)")
                await vm.stop()
            }
            #expect(cache.list().isEmpty)
        }

        /// A writable disk through a dts overlay: the snapshot holds the overlay as it was, every
        /// warm start writes to a fresh copy, so what one start wrote is gone in the next; the
        /// base image is never written, and no overlay outlives its VM.
        @Test func aDiskOverlayWarmStartsAndForgetsWhatTheGuestWrote() async throws {
            try VMFixture.requireGuestImage()
            let scratch = try TempDir("dts-warm-overlay")
            let base = scratch.file("base.img")
            var content = Data(count: 1 << 20)
            content.replaceSubrange(0..<8, with: Data("BASEDISK".utf8))
            #expect(FileManager.default.createFile(atPath: base, contents: content))
            let baseDigest = try SHA256Hex.ofFile(base)
            let fixture = try VMFixture(["vm0": VMFixture.guest + "\ndisk = file=\(base),opt_format=raw,opt_if=virtio,overlay=yes;"])
            let cache = SnapshotCache(directory: fixture.dir.path + "/snapshots")
            try await Self.takeSnapshot(fixture, cache)
            let saved = try #require(cache.list().first?.overlayPaths.first)
            let savedDigest = try SHA256Hex.ofFile(saved)
            let readHead = "head -c 8 /dev/vda"

            /// A warm start: what the disk holds at first, then (when `write` is given) writes it
            /// to the disk and checks it reached the overlay. Returns the first 8 bytes seen and the overlay's path.
            func warmStart(writing write: String?) async throws -> (String, String) {
                let run = Self.run()
                var seen = ("", "")
                try await withTearDown(run) {
                    let vm = try fixture.vm(run: run, boot: .warm, snapshots: cache)
                    let dut = try await vm.start()
                    #expect(try Self.restored(vm), "\(vm.instance?.stageEvents ?? [])")
                    let overlay = try #require(vm.instance?.command.overlays.first).path
                    #expect(FileManager.default.fileExists(atPath: overlay))
                    let head = try await dut.exec(readHead, timeout: .seconds(20)).output
                    if let write {
                        let wrote = try await dut.exec("printf \(write) | dd of=/dev/vda conv=notrunc,fsync 2>&1 && sync", timeout: .seconds(20))
                        #expect(wrote.status == 0, "\(wrote.output)")
                        let onHost = try #require(FileManager.default.contents(atPath: overlay))
                        #expect(onHost.range(of: Data(write.utf8)) != nil, "the guest's write is not in the overlay \(overlay)")
                    }
                    await vm.stop()
                    #expect(!FileManager.default.fileExists(atPath: overlay), "the overlay \(overlay) outlived its VM")
                    let left = (try? FileManager.default.contentsOfDirectory(atPath: (overlay as NSString).deletingLastPathComponent)) ?? []
                    #expect(!left.contains { $0.hasSuffix(".qcow2") }, "\(left)")
                    seen = (head, overlay)
                }
                return seen
            }
            let (first, _) = try await warmStart(writing: "WRITTEN1")
            #expect(first == "BASEDISK")
            // The next warm start sees the disk as the snapshot has it, not as the last start left it.
            let (second, _) = try await warmStart(writing: nil)
            #expect(second == "BASEDISK", "a warm start saw what an earlier one wrote: \(second)")
            #expect(try SHA256Hex.ofFile(base) == baseDigest, "the base image changed")
            #expect(try SHA256Hex.ofFile(saved) == savedDigest, "the saved overlay changed: a start wrote to it")
        }
    }
}
