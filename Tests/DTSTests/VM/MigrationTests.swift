@testable import DTS
import DTSControl
import DTSTestSupport
import Foundation
import Glibc
import Testing

extension RealGuestTests {
    /// Live migration between two QEMUs on this machine, with the dts guest.
    @Suite struct MigrationTests {
        static let incoming = VMFixture.guest + "\nmigration = enable=yes;"

        func vm(_ fixture: VMFixture, _ name: String, run: Run, logs: String) throws -> QEMUKvm {
            let settings = RunSettings(confDirectory: fixture.confDirectory, accelerator: .tcg, vmLogDirectory: logs, boot: .cold)
            return try QEMUKvm(dut: Dut(settings: settings, run: run), vmName: name, suite: fixture.suite)
        }

        /// An incoming VM reaches `inmigrate` (and no further); the migration completes; the
        /// incoming VM is the same guest (a file kept, its uptime grew), reached through its own
        /// forward; the source is stopped; both ends' logs are in the log directory; nothing is left.
        @Test func aMigrationMovesTheGuestToTheIncomingVM() async throws {
            try VMFixture.requireGuestImage()
            let fixture = try VMFixture(["host": VMFixture.guest, "backup": Self.incoming])
            let logs = fixture.dir.path + "/vms"
            let run = testRun()
            var pids: [Int32] = []
            try await withTearDown(run) {
                let host = try vm(fixture, "host", run: run, logs: logs)
                let backup = try vm(fixture, "backup", run: run, logs: logs)
                // A VM waiting for a migration cannot be booted.
                await #expect(throws: VMStartError.self) { try await backup.start() }
                let source = try await host.start()
                let marker = UUID().uuidString
                #expect(try await source.exec("echo \(marker) > /root/marker && cat /proc/uptime", timeout: .seconds(20)).succeeded)
                let uptimeBefore = try await Self.uptime(source)

                let incoming = try await backup.startIncoming()
                let stages = incoming.instance.stageEvents
                #expect(stages.contains { $0.stage == .incoming && $0.outcome == .passed }, "\(stages)")
                #expect(!stages.contains { $0.stage == .guestAgent || $0.stage == .ssh }, "\(stages)")
                #expect(try await #require(incoming.instance.parts { $0.qmp }).queryStatus().status == "inmigrate")
                #expect(incoming.uri.hasPrefix("tcp:127.0.0.1:"), "\(incoming.uri)")
                pids = [try #require(host.instance).pid, incoming.instance.pid]

                try await host.migrate(to: incoming)
                let result = try await host.waitMigration(timeout: .seconds(120))
                #expect(result.downtimeMilliseconds != nil && (result.transferredBytes ?? 0) > 1_000_000, "\(result)")
                // The source is stopped: its guest runs on the incoming VM now.
                #expect(host.instance == nil)
                #expect(kill(pids[0], 0) != 0)

                let moved = try await backup.migratedStart()
                #expect(try await moved.exec("cat /root/marker", timeout: .seconds(20)).output == marker + "\n")
                let uptimeAfter = try await Self.uptime(moved)
                #expect(uptimeAfter > uptimeBefore, "uptime \(uptimeBefore) → \(uptimeAfter)")
                #expect(try #require(backup.instance).command.ports.ssh != nil)
                await backup.stop()
            }
            for pid in pids { #expect(kill(pid, 0) != 0, "QEMU \(pid) still runs") }
            // Both ends' logs (console, QEMU stderr, QMP transcript).
            for end in ["host", "backup"] {
                for file in ["console.log", "qemu.stderr", "qmp.log"] {
                    #expect(FileManager.default.fileExists(atPath: "\(logs)/\(end)/\(file)"), "\(end)/\(file)")
                }
            }
            let qmp = try String(contentsOfFile: logs + "/host/qmp.log", encoding: .utf8)
            #expect(qmp.contains("\"migrate\"") && qmp.contains("completed"))
        }

        /// A source restored from a snapshot (warm boot) migrates too: its QEMU was once a
        /// migration destination, whose `query-migrate` keeps saying `completed`; the wait follows
        /// the outgoing migration's own events and returns only once it really completed.
        @Test func aRestoredVMMigrates() async throws {
            try VMFixture.requireGuestImage()
            let fixture = try VMFixture(["host": VMFixture.guest, "backup": Self.incoming])
            let logs = fixture.dir.path + "/vms"
            let cache = SnapshotCache(directory: fixture.dir.path + "/snapshots")
            func warm(_ name: String, run: Run) throws -> QEMUKvm {
                let settings = RunSettings(confDirectory: fixture.confDirectory, accelerator: .tcg, vmLogDirectory: logs, boot: .warm, snapshots: cache)
                return try QEMUKvm(dut: Dut(settings: settings, run: run), vmName: name, suite: fixture.suite)
            }
            let first = testRun()
            try await withTearDown(first) {
                let host = try warm("host", run: first)
                _ = try await host.start()
                await host.stop()
            }
            #expect(cache.list().count == 1)
            let run = testRun()
            try await withTearDown(run) {
                let host = try warm("host", run: run)
                let source = try await host.start()
                let stages = try #require(host.instance).stageEvents
                try #require(stages.contains { $0.stage == .restore && $0.outcome == .passed }, "not restored: \(stages)")
                #expect(try await #require(host.instance?.parts { $0.qmp }).queryMigrate().status == "completed")
                let marker = UUID().uuidString
                #expect(try await source.exec("echo \(marker) > /root/marker", timeout: .seconds(20)).succeeded)
                let backup = try warm("backup", run: run)
                let incoming = try await backup.startIncoming()
                try await host.migrate(to: incoming)
                let result = try await host.waitMigration(timeout: .seconds(120))
                #expect(result.downtimeMilliseconds != nil && (result.transferredBytes ?? 0) > 1_000_000 && result.totalSeconds > 0, "\(result)")
                let moved = try await backup.migratedStart()
                #expect(try await moved.exec("cat /root/marker", timeout: .seconds(20)).output == marker + "\n")
                await backup.stop()
            }
        }

        /// A destination that is not the same machine is refused before anything is sent, naming
        /// the difference; a destination that dies mid-way fails the migration with QEMU's error;
        /// either way the source keeps running and usable, and nothing is left afterwards.
        @Test func aMismatchedOrDyingDestinationLeavesTheSourceRunning() async throws {
            try VMFixture.requireGuestImage()
            let fixture = try VMFixture(["host": VMFixture.guest, "bigger": Self.incoming + "\nmem = size=512;", "backup": Self.incoming])
            let logs = fixture.dir.path + "/vms"
            let run = testRun()
            var pids: [Int32] = []
            try await withTearDown(run) {
                let host = try vm(fixture, "host", run: run, logs: logs)
                let source = try await host.start()
                pids.append(try #require(host.instance).pid)

                let bigger = try vm(fixture, "bigger", run: run, logs: logs)
                let other = try await bigger.startIncoming()
                pids.append(other.instance.pid)
                do {
                    try await host.migrate(to: other)
                    Issue.record("a 512 MiB destination for a 256 MiB source was accepted")
                } catch let error as MigrationError {
                    #expect(error.description.contains("memory (-m): source -m 256, destination -m 512"), "\(error)")
                }
                #expect(try await #require(host.instance?.parts { $0.qmp }).queryMigrate().status == "none")
                await bigger.stop()

                let backup = try vm(fixture, "backup", run: run, logs: logs)
                let incoming = try await backup.startIncoming()
                pids.append(incoming.instance.pid)
                // Slow enough (8 MB/s for ~90 MB) that the destination dies while RAM is sent.
                let qmp = try #require(host.instance?.parts { $0.qmp })
                try await qmp.execute("migrate-set-parameters", arguments: ["max-bandwidth": .int(8_000_000)])
                try await host.migrate(to: incoming)
                while try await qmp.queryMigrate().ram?.transferred ?? 0 < 5_000_000 {
                    try await Task.sleep(for: .milliseconds(100))
                }
                kill(incoming.instance.pid, SIGKILL)
                do {
                    try await host.waitMigration(timeout: .seconds(60))
                    Issue.record("the migration to a killed destination completed")
                } catch let error as MigrationError {
                    #expect(error.description.contains("QEMU reports the migration failed"), "\(error)")
                }
                // The source runs on, usable.
                #expect(host.instance != nil)
                #expect(try await qmp.queryStatus().status == "running")
                #expect(try await source.exec("uname -n", timeout: .seconds(20)).output == "dts-guest\n")
                await backup.stop()
                await host.stop()
            }
            for pid in pids { #expect(kill(pid, 0) != 0, "QEMU \(pid) still runs") }
        }

        /// The incoming VM on a remote DUT (the namespace host): QEMU there listens on the DUT's
        /// address, the local source migrates to it, and the guest answers through the DUT's forward.
        @Test func aMigrationToAVMOnARemoteDUT() async throws {
            try VMFixture.requireGuestImage()
            let namespace = try RemoteNamespaceHost()
            defer { namespace.tearDown() }
            let fixture = try VMFixture(["host": VMFixture.guest, "backup": Self.incoming])
            let scratch = try TempDir("dts-remote-migration")
            let logs = scratch.path + "/vms"
            let run = testRun()
            try await withTearDown(run) {
                let remote = try await Dut.remote(namespace.crb("ns-dut"),
                                                  settings: RunSettings(confDirectory: fixture.confDirectory, accelerator: .tcg, vmLogDirectory: logs, boot: .cold),
                                                  run: run, knownHostsPath: scratch.path + "/known_hosts")
                let host = try vm(fixture, "host", run: run, logs: logs)
                let backup = try QEMUKvm(dut: remote, vmName: "backup", suite: fixture.suite)
                let source = try await host.start()
                let marker = UUID().uuidString
                #expect(try await source.exec("echo \(marker) > /root/marker", timeout: .seconds(20)).succeeded)

                let incoming = try await backup.startIncoming()
                #expect(incoming.uri.hasPrefix("tcp:\(remote.address):"), "\(incoming.uri)")
                #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(incoming.instance.pid)/ns/net") == namespace.namespaceInode)
                try await host.migrate(to: incoming)
                try await host.waitMigration(timeout: .seconds(120))
                let moved = try await backup.migratedStart()
                #expect(try await moved.exec("cat /root/marker", timeout: .seconds(20)).output == marker + "\n")
                #expect(try #require(backup.instance).command.ports.sshAddress == remote.address)
                await backup.stop()
            }
            for file in ["host/qmp.log", "backup/qmp.log", "backup/console.log", "backup/qemu.stderr"] {
                #expect(FileManager.default.fileExists(atPath: "\(logs)/\(file)"), "\(file)")
            }
            #expect(qemuProcesses(matching: "dts-remote-migration").isEmpty)
        }

        static func uptime(_ dut: VirtDut) async throws -> Double {
            let text = try await dut.exec("cat /proc/uptime", timeout: .seconds(20)).output
            return try #require(Double(text.split(separator: " ").first.map(String.init) ?? ""), "\(text)")
        }
    }
}
