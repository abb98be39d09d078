@testable import DTS
import DTSControl
import DTSTestSupport
import Foundation
import Logging
import Synchronization
import Testing

/// Warm boot without guests: the snapshot key, the safety rules, the boot plan, the caches on this
/// machine and (through a local shell) the remote one's scripts.
@Suite struct WarmBootUnitTests {
    /// A conf directory whose VM boots `kernel`/`initrd` files of the fixture (small stand-ins).
    struct Machine {
        let dir: TempDir
        var kernel: String { dir.file("vmlinux") }
        var initrd: String { dir.file("initrd.img") }

        init(extra: String = "") throws {
            dir = try TempDir("dts-warmkey")
            try dir.write("vmlinux", "kernel one")
            try dir.write("initrd.img", "initrd one")
            try dir.write("virt_global.cfg", "[KVM]\ncpu = model=host,number=1;\nmem = size=256;\ncontrol = type=qga;\n")
            try dir.write("m.cfg", """
                [vm0]
                enable_kvm = enable=no;
                kernel = kernel_img=\(dir.file("vmlinux")),initrd=\(dir.file("initrd.img")),console=ttyS0;
                login = user=root,password=tester;
                \(extra)
                """)
        }

        func kvm(run: Run, boot: BootMode? = nil) throws -> QEMUKvm {
            try QEMUKvm(dut: Dut(settings: RunSettings(confDirectory: dir.path, accelerator: .tcg, boot: boot), run: run), vmName: "vm0", suite: "m")
        }

        func command(root: String = "/run/dts/a", reserve: Int = 0, hugepages: String? = "/dev/hugepages", change: (QEMUKvm) throws -> Void = { _ in })
            throws -> QEMUCommandLine {
            let allocator = StaticAllocator(runtimeRoot: root, hugepageMount: hugepages)
            for _ in 0..<reserve { _ = try allocator.hostForwardPort(vm: "vm0", guestPort: 22); _ = try allocator.vncDisplay(vm: "vm0") }
            let kvm = try self.kvm(run: Run(root: dir.path + "/runs"))
            try change(kvm)
            return try kvm.commandLine(allocator: allocator)
        }

        func inputs(kernel: String = "k1", qemu: String = "7.2.22") -> SnapshotInputs {
            SnapshotInputs(qemu: QEMUIdentity(path: "/usr/bin/qemu-system-x86_64", version: "QEMU emulator version \(qemu)", sha256: "q-" + qemu),
                           digests: [self.kernel: kernel, initrd: "i1"])
        }
    }

    @Test func theKeyIgnoresWhatOnlyConcernsTheHost() throws {
        let machine = try Machine(extra: "vnc = displayNum=3;\nmem = size=256,hugepage=yes;\n")
        let vhost = "driver=vhost-user,opt_path=%@,opt_mac=00:00:20:00:00:20,opt_server=yes"
        let a = try machine.command { try $0.setVMDevice(vhost.replacingOccurrences(of: "%@", with: "/tmp/one/vhost0.sock")) }
        let b = try machine.command(root: "/run/dts/other-run", reserve: 3, hugepages: "/mnt/huge") {
            try $0.setVMDevice(vhost.replacingOccurrences(of: "%@", with: "/srv/two/vhost0.sock"))
        }
        #expect(a.ports.ssh != b.ports.ssh && a.paths.qmpSocket != b.paths.qmpSocket)
        let keyA = SnapshotKey.make(command: a, inputs: machine.inputs())
        let keyB = SnapshotKey.make(command: b, inputs: machine.inputs())
        #expect(keyA == keyB, "\(zip(keyA.lines, keyB.lines).filter { $0 != $1 })")
        // Restoring starts the same machine waiting for its state: the same key.
        #expect(SnapshotKey.make(command: a.waitingForIncomingState(), inputs: machine.inputs()).hex == keyA.hex)
        // Files appear as their digests, never as paths; host-only values as placeholders.
        let text = keyA.lines.joined(separator: "\n")
        #expect(!text.contains(machine.dir.path) && !text.contains("/run/dts/a") && !text.contains("6000"), "\(text)")
        #expect(text.contains("-kernel sha256:k1") && text.contains("hostfwd=tcp:<host>-:22") && text.contains("mac=00:00:20:00:00:20"), "\(text)")
        #expect(keyA.summary == "x86_64 pc tcg, 1 vCPU max, 256 MiB, kernel \(machine.dir.path.split(separator: "/").last!)/vmlinux")
    }

    @Test func theKeyCoversWhatShapesTheGuest() throws {
        let machine = try Machine()
        let base = try machine.command()
        let key = SnapshotKey.make(command: base, inputs: machine.inputs()).hex
        var changed: [String: String] = [
            "kernel content": SnapshotKey.make(command: base, inputs: machine.inputs(kernel: "k2")).hex,
            "QEMU version": SnapshotKey.make(command: base, inputs: machine.inputs(qemu: "8.0.0")).hex,
        ]
        var initrd = machine.inputs()
        initrd.digests[machine.initrd] = "i2"
        changed["initrd content"] = SnapshotKey.make(command: base, inputs: initrd).hex
        for (what, text) in [("memory", "mem = size=512;"), ("vCPUs", "cpu = model=host,number=2;"), ("CPU model", "cpu = model=qemu64,number=1;"),
                             ("kernel command line", "kernel = kernel_img=\(machine.kernel),initrd=\(machine.initrd),append=quiet;"),
                             ("a device", "device = driver=virtio-net-pci,opt_netdev=hostnet0;"),
                             ("raw QEMU arguments", "usercmd = cmd=\"-rtc base=utc\";")] {
            let (name, value) = (String(text.prefix { $0 != " " }), String(text.drop { $0 != "=" }.dropFirst().drop { $0 == " " }))
            let command = try machine.command { try $0.setVMParam(name, value) }
            changed[what] = SnapshotKey.make(command: command, inputs: machine.inputs()).hex
        }
        changed["a NIC's MAC"] = SnapshotKey.make(command: try machine.command {
            try $0.setVMParam("net", "type=nic,opt_addr=1f,opt_macaddr=00:11:22:33:44:55;type=user")
        }, inputs: machine.inputs()).hex
        for (what, other) in changed { #expect(other != key, "changing the \(what) kept the key") }
        #expect(Set(changed.values).count == changed.count)
    }

    @Test func unsafeMachinesAreNamedWithTheReason() throws {
        let machine = try Machine()
        #expect(WarmBoot.unsafeReason(try machine.command()) == nil)
        let disk = machine.dir.file("disk.img")
        try machine.dir.write("disk.img", "")
        let cases: [(String, String, String?)] = [
            ("disk", "file=\(disk),opt_format=raw", "disk \(disk) is writable"),
            ("disk", "file=\(disk),opt_format=raw,opt_media=cdrom", nil),
            ("usercmd", "cmd=\"-drive file=\(disk),format=raw,snapshot=on\"", "snapshot=on"),
            ("usercmd", "cmd=\"-drive file=\(disk),format=raw,readonly=on\"", nil),
            ("usercmd", "cmd=\"-hda \(disk)\"", "(-hda) is writable"),
            ("migration", "enable=yes,port=4444", "incoming live migration"),
            ("device", "driver=vfio-pci,opt_host=0000:08:00.0", "passthrough device pt_0"),
        ]
        for (param, value, expected) in cases {
            let reason = WarmBoot.unsafeReason(try machine.command { try $0.setVMParam(param, value) })
            if let expected {
                #expect(reason?.contains(expected) == true, "\(param) = \(value): \(reason ?? "safe")")
            } else {
                #expect(reason == nil, "\(param) = \(value): \(reason ?? "")")
            }
        }
        let agentless = try machine.command { try $0.setVMParam("control", "type=telnet") }
        #expect(WarmBoot.unsafeReason(agentless)?.contains("no guest agent") == true)
    }

    @Test func theBootChoiceSaysWhatChoseIt() throws {
        let machine = try Machine()
        let run = Run(root: machine.dir.path + "/runs")
        let allocator = StaticAllocator(runtimeRoot: "/run/dts/a")
        let byDefault = try machine.kvm(run: run).commandLine(allocator: allocator)
        #expect(byDefault.boot == .warm && byDefault.bootChoice == "the default")
        #expect(byDefault.argv.contains("vmgenid,guid=auto"))
        let kvm = try machine.kvm(run: run)
        try kvm.setVMParam("start", "warm=no")
        let off = try kvm.commandLine(allocator: allocator)
        #expect(off.boot == .cold && off.bootChoice.hasPrefix("start warm=no at <setVMParam>"), "\(off.bootChoice)")
        #expect(!off.argv.contains("vmgenid,guid=auto"))
        let forced = try machine.kvm(run: run, boot: .warm)
        try forced.setVMParam("start", "warm=no")
        let overridden = try forced.commandLine(allocator: allocator)
        #expect(overridden.boot == .warm && overridden.bootChoice.contains("--boot warm"))
    }

    /// The plan of successive starts: no snapshot → cold and take one; one there → restore; a
    /// changed kernel → a new key, cold again; unsafe → cold, said once; warm boot off → cold.
    @Test func thePlanFollowsTheCache() async throws {
        let machine = try Machine()
        let messages = Messages()
        let run = Run(root: machine.dir.path + "/runs", logger: messages.logger)
        defer { run.removeDirectory() }
        let cache = SnapshotCache(directory: machine.dir.file("snapshots"), capacity: 1_000_000)
        let host = LocalVMHost(allocator: try run.allocator, snapshots: cache)
        func plan(_ command: QEMUCommandLine, restore: Bool = true) async -> BootPlan {
            await WarmBoot.plan(vmName: "vm0", command: command, host: host, run: run, restoreAllowed: restore)
        }
        let command = try machine.command()

        guard case .cold(let target?) = await plan(command) else { Issue.record("no snapshot yet: expected a cold boot taking one"); return }
        #expect(target.key.lines.contains { $0.hasPrefix("qemu ") && $0.contains("QEMU emulator version") })
        // A snapshot of this machine in the cache: the next start restores it.
        try await save(target, in: cache, bytes: 1000)
        guard case .restore(let again, let entry) = await plan(command) else { Issue.record("expected a restore"); return }
        #expect(again.key == target.key && entry.record.stateBytes == 1000)
        // Not after a failed restore in the same start...
        guard case .cold(let fresh?) = await plan(command, restore: false), fresh.key == target.key else { Issue.record("expected cold, retaking"); return }
        // ...and not at all once the run gave up on the machine.
        run.warmBoot.restoreFailed(target.key.hex)
        run.warmBoot.restoreFailed(target.key.hex)
        guard case .cold(nil) = await plan(command) else { Issue.record("expected cold without a snapshot"); return }

        // A changed kernel file: another key, no snapshot of it yet.
        try machine.dir.write("vmlinux", "kernel two")
        guard case .cold(let changed?) = await plan(command) else { Issue.record("expected a cold boot for the new kernel"); return }
        #expect(changed.key != target.key)

        // A writable disk: cold, no snapshot, and the log says why, once.
        try machine.dir.write("disk.img", "")
        let withDisk = try machine.command { try $0.setVMParam("disk", "file=\(machine.dir.file("disk.img")),opt_format=raw") }
        for _ in 0..<2 {
            guard case .cold(nil) = await plan(withDisk) else { Issue.record("a writable disk must boot cold"); return }
        }
        let said = messages.lines.filter { $0.contains("boots cold") && $0.contains("disk.img is writable") }
        #expect(said.count == 1, "\(messages.lines)")
        // Warm boot turned off: cold, silently.
        let kvm = try machine.kvm(run: run, boot: .cold)
        guard case .cold(nil) = await plan(try kvm.commandLine(allocator: StaticAllocator(runtimeRoot: "/run/dts/a"))) else {
            Issue.record("--boot cold must boot cold"); return
        }
    }

    /// Writes a stand-in state file for `target` into `cache`.
    func save(_ target: SnapshotTarget, in cache: SnapshotCache, bytes: Int, vm: String = "vm0") async throws {
        let partial = cache.partialPath(for: target.key.hex)
        #expect(FileManager.default.createFile(atPath: partial, contents: Data(repeating: 7, count: bytes)))
        let record = SnapshotRecord(key: target.key.hex, vm: vm, summary: target.key.summary, keyLines: target.key.lines, created: Date(),
                                    stateBytes: 0, coldBootSeconds: 8, saveSeconds: 0.5)
        let stored = try await cache.commit(record, partial: partial)
        #expect(stored.stateBytes == Int64(bytes))
        #expect(!FileManager.default.fileExists(atPath: partial))
    }

    @Test func theCacheEvictsTheLeastRecentlyUsedFirst() async throws {
        let dir = try TempDir("dts-snapcache")
        // Room for two snapshots of 1000 bytes with their records, not three.
        let cache = SnapshotCache(directory: dir.path, capacity: 3300)
        func target(_ name: String) -> SnapshotTarget {
            let hex = SHA256Hex.of(Array(name.utf8))
            return SnapshotTarget(store: cache, key: SnapshotKey(hex: hex, lines: [name], summary: name))
        }
        try await save(target("a"), in: cache, bytes: 1000, vm: "a")
        try await save(target("b"), in: cache, bytes: 1000, vm: "b")
        // a used after b was taken: b is now the least recently used.
        utimes(dir.file(target("b").key.hex + ".json"), [timeval(tv_sec: 1000, tv_usec: 0), timeval(tv_sec: 1000, tv_usec: 0)])
        await cache.markUsed(target("a").key.hex)
        try await save(target("c"), in: cache, bytes: 1000, vm: "c")
        #expect(Set(cache.list().map(\.record.vm)) == ["a", "c"])
        #expect(cache.list().first?.record.vm == "c")
        // The one just taken stays even when it alone is over the cap.
        let small = SnapshotCache(directory: dir.path, capacity: 10)
        let partial = small.partialPath(for: target("d").key.hex)
        #expect(FileManager.default.createFile(atPath: partial, contents: Data(repeating: 1, count: 100)))
        _ = try await small.commit(SnapshotRecord(key: target("d").key.hex, vm: "d", summary: "d", keyLines: [], created: Date(), stateBytes: 0,
                                                  coldBootSeconds: 1, saveSeconds: 1), partial: partial)
        #expect(small.list().map(\.record.vm) == ["d"])
        #expect(cache.clear().map(\.record.vm) == ["d"])
        #expect(cache.list().isEmpty)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { !$0.hasPrefix(".") }.isEmpty)
    }

    @Test func incompleteSnapshotsAreNotEntries() async throws {
        let dir = try TempDir("dts-snapcache")
        let cache = SnapshotCache(directory: dir.path)
        let key = SnapshotKey(hex: String(repeating: "ab", count: 32), lines: ["x"], summary: "x")
        try await save(SnapshotTarget(store: cache, key: key), in: cache, bytes: 64)
        #expect(await cache.entry(key.hex) != nil)
        // A state file of another size than recorded (a copy cut short) is not the snapshot.
        let handle = try #require(FileHandle(forWritingAtPath: cache.statePath(key.hex)))
        try handle.truncate(atOffset: 10)
        try handle.close()
        #expect(await cache.entry(key.hex) == nil)
        // Nor is a record that does not parse, or one without its state file.
        try "{".write(toFile: cache.recordPath(key.hex), atomically: true, encoding: .utf8)
        #expect(await cache.entry(key.hex) == nil)
        await cache.remove(key.hex)
        #expect(!FileManager.default.fileExists(atPath: cache.statePath(key.hex)) && !FileManager.default.fileExists(atPath: cache.recordPath(key.hex)))
    }

    @Test func digestsAreSHA256AndRereadWhenAFileChanges() throws {
        let dir = try TempDir("dts-digest")
        let file = try dir.write("f", "hello\n")
        #expect(try SHA256Hex.ofFile(file) == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
        #expect(SHA256Hex.of(Array("".utf8)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let memo = DigestMemo(path: dir.file(".memo"))
        #expect(try memo.digests(of: [file])[file] == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
        try dir.write("f", "world\n")
        #expect(try memo.digests(of: [file])[file] == (try SHA256Hex.ofFile(file)))
        #expect(throws: ResourceError.self) { try memo.digests(of: [dir.file("missing")]) }
    }

    /// The remote store's shell scripts, run by a local shell on a scratch cache: what a DUT runs.
    @Test func theRemoteStoresScriptsWork() async throws {
        let dir = try TempDir("dts-remotecache")
        let kernel = try dir.write("vmlinux", "a kernel")
        let shell = LocalSession()
        let store = RemoteSnapshotStore(exec: { argv in try await shell.exec(argv: argv, timeout: .seconds(60)) },
                                        directory: dir.file("snapshots"), capacity: 1500, label: "a local shell")
        let inputs = try await store.inputs(qemuBinary: "qemu-system-x86_64", files: [kernel])
        let local = try await SnapshotCache(directory: dir.file("local")).inputs(qemuBinary: "qemu-system-x86_64", files: [kernel])
        #expect(inputs == local)
        // The second time from the memo, the same.
        #expect(try await store.inputs(qemuBinary: "qemu-system-x86_64", files: [kernel]) == inputs)
        await #expect(throws: ResourceError.self) { _ = try await store.inputs(qemuBinary: "qemu-system-x86_64", files: [dir.file("nope")]) }

        func commit(_ name: String, bytes: Int) async throws -> SnapshotRecord {
            let key = SHA256Hex.of(Array(name.utf8))
            let partial = store.partialPath(for: key)
            #expect(FileManager.default.createFile(atPath: partial, contents: Data(repeating: 3, count: bytes)))
            return try await store.commit(SnapshotRecord(key: key, vm: name, summary: name, keyLines: [name], created: Date(), stateBytes: 0,
                                                         coldBootSeconds: 1, saveSeconds: 1), partial: partial)
        }
        let first = try await commit("first", bytes: 700)
        #expect(first.stateBytes == 700)
        let entry = try #require(await store.entry(first.key))
        #expect(entry.record.key == first.key && entry.record.stateBytes == 700 && entry.statePath == store.statePath(first.key))
        utimes(store.recordPath(first.key), [timeval(tv_sec: 1000, tv_usec: 0), timeval(tv_sec: 1000, tv_usec: 0)])
        // Over the cap: the least recently used goes.
        let second = try await commit("second", bytes: 700)
        let (gone, kept) = (await store.entry(first.key), await store.entry(second.key))
        #expect(gone == nil && kept != nil)
        await store.remove(second.key)
        #expect(await store.entry(second.key) == nil)
    }

    @Test func migrationInfoDecodes() throws {
        let none = try JSONDecoder().decode(QMPMigrationInfo.self, from: Data("{}".utf8))
        #expect(none.status == "none" && !none.isFinished)
        let done = try JSONDecoder().decode(QMPMigrationInfo.self, from: Data("""
            {"status": "completed", "total-time": 613, "downtime": 7, "ram": {"transferred": 85583450, "remaining": 0, "total": 269230080,
             "mbps": 1121.68, "dirty-pages-rate": 0, "duplicate": 44975}}
            """.utf8))
        #expect(done.isFinished && done.downtime == 7 && done.ram?.transferred == 85_583_450)
        #expect(done.summary == "completed, 85.6 MB of 269.2 MB sent, 1122 Mbit/s, downtime 7 ms")
        let failed = try JSONDecoder().decode(QMPMigrationInfo.self, from: Data(#"{"status": "failed", "error-desc": "Unable to write to socket"}"#.utf8))
        #expect(failed.errorDescription == "Unable to write to socket" && failed.isFinished)
    }

    @Test func bootProgressWithoutATerminalIsPlainLines() {
        let out = Messages()
        let progress = TerminalProgress(interactive: false, write: { out.append($0) })
        for event in [VMStageEvent(vm: "vm0", stage: .restore, outcome: .started, at: 0.1, duration: nil),
                      VMStageEvent(vm: "vm0", stage: .restore, outcome: .passed, at: 0.5, duration: 0.42),
                      VMStageEvent(vm: "vm0", stage: .pinning, outcome: .skipped, at: 0.5, duration: nil)] {
            progress.vmStage(event)
        }
        #expect(out.lines == ["   vm0: restore passed (0.42 s)\n"])
    }

    /// On a terminal the live line shows the VM's stage and the time since its start began, and
    /// gives the case's line back once the start ended.
    @Test func bootProgressOnATerminalIsTheLiveLine() async throws {
        let out = Messages()
        let progress = TerminalProgress(interactive: true, write: { out.append($0) })
        progress.caseStarted("vxlan_sample", "test_vxlan_sample_encap", attempt: 1)
        progress.vmStage(VMStageEvent(vm: "vm0", stage: .guestAgent, outcome: .started, at: 3.0, duration: nil))
        let deadline = ContinuousClock.now + .seconds(20)
        while !out.lines.contains(where: { $0.hasPrefix("\r\u{1B}[K   vm0: guest-agent 3.") }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(out.lines.contains { $0.hasPrefix("\r\u{1B}[K   vm0: guest-agent 3.") && $0.hasSuffix(" s") }, "\(out.lines)")
        progress.vmStage(VMStageEvent(vm: "vm0", stage: .pciMap, outcome: .passed, at: 3.5, duration: 0.01))
        let lines = out.lines
        let lastVM = try #require(lines.lastIndex { $0.contains("vm0: guest-agent") })
        #expect(lines[(lastVM + 1)...].first?.hasPrefix("\r\u{1B}[K   vxlan_sample/test_vxlan_sample_encap ...") == true, "\(lines)")
        progress.note("done")
    }
}

/// Lines written by a logger or a progress printer.
final class Messages: Sendable {
    private let box = Mutex<[String]>([])

    func append(_ text: String) { box.withLock { $0.append(text) } }
    var lines: [String] { box.withLock { $0 } }

    /// A logger whose messages land here.
    var logger: Logger {
        var logger = Logger(label: "test") { _ in Handler(messages: self) }
        logger.logLevel = .info
        return logger
    }

    struct Handler: LogHandler {
        let messages: Messages
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            messages.append("\(event.level): \(event.message)")
        }
    }
}
