import DTS
import DTSSession
import Foundation

/// `vhost_user_live_migration`: DTS's live migration of a guest whose virtio-net NIC sits on a
/// vhost-user backend, with traffic checked before and after. On one host: two `dpdk-testpmd`
/// backends (source and destination, each with its own socket, file prefix and a `net_tap` port
/// that stands in for DTS's tester NIC: `io` forwarding from the TAP to the vhost port); the
/// source VM `[host]` and the incoming VM `[backup]` of the same machine. A UDP stream sent with
/// scapy into the source side's TAP reaches the source guest; after the migration, one sent into
/// the destination side's TAP reaches the migrated guest, whose receiver (testpmd in `rxonly`, or
/// the kernel's UDP counter of its NIC) kept counting through the migration. See
/// docs/suites/vhost_user_live_migration.md.
final class VhostUserLiveMigration: TestSuite {
    static let name = "vhost_user_live_migration"
    static let cases: [TestCase<VhostUserLiveMigration>] = [
        .functional("test_migrate_with_split_ring_virtio_pmd") { try await $0.migrate(.init(receiver: .pmd)) },
        .functional("test_migrate_with_split_ring_virtio_pmd_enabled") { try await $0.migrate(.init(receiver: .pmd, forwardFirst: false)) },
        .functional("test_migrate_with_split_ring_virtio_net") { try await $0.migrate(.init(receiver: .kernel)) },
        .functional("test_adjust_split_ring_virtio_net_queue_numbers_while_migreting_with_virtio_net") {
            try await $0.migrate(.init(receiver: .kernel, queues: 4))
        },
        .functional("test_migrate_with_packed_ring_virtio_pmd") { try await $0.migrate(.init(receiver: .pmd, packed: true)) },
        .functional("test_migrate_with_packed_ring_virtio_pmd_enabled") {
            try await $0.migrate(.init(receiver: .pmd, packed: true, forwardFirst: false))
        },
        .functional("test_migrate_with_packed_ring_virtio_net") { try await $0.migrate(.init(receiver: .kernel, packed: true)) },
        .functional("test_adjust_packed_ring_virtio_net_queue_numbers_while_migreting_with_virtio_net") {
            try await $0.migrate(.init(receiver: .kernel, packed: true, queues: 4))
        },
    ]
    static var defaultCaseTimeout: Duration { .seconds(900) }

    /// What a case varies.
    struct Variant {
        enum Receiver { case pmd, kernel }
        /// testpmd in `rxonly` on the guest's NIC, or the guest kernel on its virtio-net interface.
        var receiver: Receiver
        var packed = false
        /// Queue pairs; with 4, `ethtool -L combined 4` runs in the guest while it migrates.
        var queues = 1
        /// Whether the backends forward before the guest's receiver starts (the `_enabled` cases
        /// start it after).
        var forwardFirst = true
    }

    /// DTS's MAC of the guest's virtio NIC, and the stream's addresses and ports.
    static let guestMAC = "52:54:00:00:00:01"
    static let frame = FrameSpec(ether: EthernetSpec(src: "00:00:00:00:01:01", dst: guestMAC),
                                 ip: IPv4Spec(src: "1.1.1.1", dst: "2.2.2.2"), l4: .udp(sport: 11, dport: 12),
                                 payload: Array(repeating: UInt8(ascii: "x"), count: 18))
    static let sides = ["src", "dst"]

    let context: TestContext
    private lazy var common = VirtioCommon(context: context, suite: Self.name)
    private var dir = ""
    private var tester: Tester?
    private var backends: [PmdOutput] = []
    private var kvms: [QEMUKvm] = []
    private var framesPerCheck = 10
    private var migrationTimeout = Duration.seconds(300)

    init(context: TestContext) { self.context = context }

    func setUpAll() async throws {
        framesPerCheck = try context.config.int("frames_per_check", default: 10)
        migrationTimeout = .seconds(try context.config.int("migration_timeout", default: 300))
        dir = try await common.makeWorkDirectory()
        let tester = Tester(session: context.dut.session, namespace: "dts-lm", workDirectory: dir, cleanup: .run(context.run))
        self.tester = tester
    }

    func tearDown() async throws { await stopAll() }

    func tearDownAll() async throws {
        await stopAll()
        await tester?.tearDown()
    }

    private func stopAll() async {
        for kvm in kvms { await kvm.stop() }
        kvms = []
        for pmd in backends { await pmd.quit() }
        backends = []
    }

    static func tap(_ side: String) -> String { "dtap-lm-" + side }

    // MARK: The case

    func migrate(_ variant: Variant) async throws {
        // The two backends: a vhost port (QEMU connects to its socket) and a TAP port each.
        for (index, side) in Self.sides.enumerated() {
            var options = TestpmdOptions(filePrefix: "vhost-\(side)", cores: .lcores(index == 0 ? "0@0,1@1" : "0@1,1@0"),
                                         memory: .noHuge(megabytes: 1024))
            options.noPCI = true
            options.vdevs = [.vhost(0, iface: dir + "/vhost-net-\(side)", queues: variant.queues), .tap(1, iface: Self.tap(side))]
            options.arguments = ["--nb-cores=1", "--rxq=\(variant.queues)", "--txq=\(variant.queues)"]
            options.workDirectory = dir
            let pmd = try await common.startHostTestpmd(options)
            backends.append(pmd)
            try await pmd.setForwardMode(.io)
            if variant.forwardFirst { try await pmd.startForwarding() }
            // No IPv6 chatter of the host's own on the TAP: only the stream reaches the guest.
            _ = try await context.dut.exec(argv: ["sysctl", "-qw", "net.ipv6.conf.\(Self.tap(side)).disable_ipv6=1"], timeout: .seconds(10))
            _ = try await context.dut.exec(argv: ["ip", "link", "set", Self.tap(side), "up"], timeout: .seconds(10))
        }

        // The source VM and the incoming VM, the same machine on the two sockets.
        var settings = "mrg_rxbuf=on"
        if variant.queues > 1 { settings += ",mq=on,vectors=\(2 * variant.queues + 2)" }
        if variant.packed { settings += ",packed=on" }
        for (name, side) in zip(["host", "backup"], Self.sides) {
            let kvm = try QEMUKvm(dut: context.dut, vmName: name, suite: Self.name)
            var device = ["driver": "vhost-user", "opt_path": dir + "/vhost-net-\(side)", "opt_mac": Self.guestMAC, "opt_settings": settings]
            if variant.queues > 1 {
                device["opt_queue"] = String(variant.queues)
                // Linux's virtio-net enables min(queue pairs, vCPUs) pairs: with one vCPU, the
                // frames the multi-queue TAP hashes to queues 1-3 would be dropped by the backend.
                try kvm.setVMParam("cpu", "model=host,number=\(variant.queues)")
            }
            try kvm.setVMDevice(device)
            kvms.append(kvm)
        }
        let source = try await kvms[0].start()
        try await backends[0].waitForLink(0, timeout: .seconds(120))
        let incoming = try await kvms[1].startIncoming()

        if variant.queues > 1, !(try await source.exec(argv: ["sh", "-c", "command -v ethtool"], timeout: .seconds(10)).succeeded) {
            try skip("the guest image has no ethtool (images built before scripts/build-guest-image.sh added it): rebuild it to change queue counts while migrating")
        }
        let receiver: GuestReceiver
        switch variant.receiver {
        case .pmd: receiver = try await startGuestTestpmd(source, queues: variant.queues)
        case .kernel: receiver = try await startGuestKernelCount(source)
        }
        if !variant.forwardFirst { for pmd in backends { try await pmd.startForwarding() } }

        // Before: the stream into the source side reaches the source guest.
        let before = try await receiver.count(source)
        let reached = try await sendUntilCounted(side: "src", vm: source, receiver: receiver, above: before)
        context.logger.info("before the migration: \(receiver.what) in \(source.vmName) counted \(before) → \(reached)")

        // The migration; with 4 queues, the guest changes its queue count while it migrates.
        try await kvms[0].migrate(to: incoming)
        if variant.queues > 1, let intf = receiver.interface {
            let result = try await source.exec(argv: ["ethtool", "-L", intf, "combined", String(variant.queues)], timeout: .seconds(60))
            try verify(result.succeeded && !result.output.contains("Error") && !result.output.contains("Failed"),
                       "ethtool -L \(intf) combined \(variant.queues) failed while migrating: \(result.output) \(result.errorOutput)")
        }
        let migration = try await kvms[0].waitMigration(timeout: migrationTimeout)
        let moved = try await kvms[1].migratedStart()

        // After: the receiver still runs in the migrated guest, and the stream into the
        // destination side reaches it.
        try verify(try await receiver.isRunning(moved), "\(receiver.what) no longer runs in the migrated guest")
        let after = try await receiver.count(moved)
        let arrived = try await sendUntilCounted(side: "dst", vm: moved, receiver: receiver, above: after)
        context.logger.info("after the migration: \(receiver.what) in \(moved.vmName) counted \(after) → \(arrived)")
        if variant.queues > 1, let intf = receiver.interface {
            let channels = try await moved.exec(argv: ["ethtool", "-l", intf], timeout: .seconds(30)).output
            context.logger.info("\(intf) channels after the migration:\n\(channels)")
        }

        var table = PerfTable(title: "migration", columns: ["receiver", "ring", "queues", "total (s)", "downtime (ms)", "RAM sent (MB)",
                                                           "counted before", "counted after"])
        table.add([variant.receiver == .pmd ? "virtio-pmd" : "virtio-net", variant.packed ? "packed" : "split", variant.queues,
                   String(format: "%.2f", migration.totalSeconds), migration.downtimeMilliseconds.map(String.init) ?? "?",
                   String(format: "%.1f", Double(migration.transferredBytes ?? 0) / 1e6), reached, arrived])
        context.recordPerformance(table)
        await stopAll()
    }

    /// Sends the stream's frames into `side`'s TAP until the receiver in `vm` counts at least
    /// `framesPerCheck` more than `above` (a few rounds: the first frames may meet a link still
    /// coming up); fails with the counts otherwise.
    private func sendUntilCounted(side: String, vm: VirtDut, receiver: GuestReceiver, above: Int) async throws -> Int {
        guard let tester else { throw TestFailure(message: "no tester") }
        var counted = above
        for _ in 0..<5 {
            try await tester.send(Self.frame, count: framesPerCheck, interval: .milliseconds(50), on: Self.tap(side), side: .host)
            // The guest may count a moment later (TCG).
            for _ in 0..<20 {
                counted = try await receiver.count(vm)
                if counted >= above + framesPerCheck { return counted }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        throw TestFailure(message: "\(receiver.what) in \(vm.vmName) counted \(counted - above) of the frames sent into \(Self.tap(side)) (\(5 * framesPerCheck) sent)")
    }

    // MARK: Receivers in the guest

    /// A receiver that runs in the guest detached from any SSH session (DTS used `screen`), so
    /// that it keeps running when the guest moves to another QEMU; it logs to a file there.
    struct GuestReceiver {
        var what: String
        var log: String
        /// The receiving process, if it is one.
        var pid: String?
        /// The kernel interface, for the kernel receiver.
        var interface: String?
        /// How many stream frames its log shows.
        var countLog: @Sendable (String) -> Int

        func count(_ vm: VirtDut) async throws -> Int {
            countLog(try await vm.exec(argv: ["cat", log], timeout: .seconds(30)).output)
        }

        func isRunning(_ vm: VirtDut) async throws -> Bool {
            guard let pid else { return true }
            return try await vm.exec(argv: ["kill", "-0", pid], timeout: .seconds(10)).succeeded
        }
    }

    /// testpmd in `rxonly` on the guest's NIC (bound to `def_driver`), not interactive, printing
    /// port statistics every second; counts its RX packets.
    private func startGuestTestpmd(_ vm: VirtDut, queues: Int) async throws -> GuestReceiver {
        let ports = try await vm.bindTestPorts(driver: try vm.defaultPortDriver())
        try await vm.reserveHugepages(64)
        var options = TestpmdOptions(filePrefix: "virtio", cores: .lcores("0@0,1@0"), memory: .hugepages(megabytes: 96))
        options.allowedDevices = ports.map(\.pci)
        options.arguments = ["--rxq=\(queues)", "--txq=\(queues)", "--nb-cores=1", "--total-num-mbufs=4096",
                             "--forward-mode=rxonly", "--stats-period=1"]
        // Not interactive: testpmd forwards at once and prints its statistics until signalled.
        let argv = options.argv.filter { $0 != "-i" }
        let log = "/tmp/dts-lm-testpmd.log"
        let pid = try await common.guestCommand(vm, ["sh", "-c", "log=$1; shift; setsid \"$@\" < /dev/null > \"$log\" 2>&1 & echo $!", "sh", log] + argv)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        context.logger.info("\(vm.vmName) # \(ShellQuoting.join(argv)) (detached, pid \(pid), log \(log))")
        let receiver = GuestReceiver(what: "testpmd (rxonly)", log: log, pid: pid, interface: nil, countLog: Self.testpmdRXPackets)
        try await waitFor(vm, receiver, "Forwarding statistics for port 0|NIC statistics for port 0", timeout: .seconds(180))
        return receiver
    }

    /// The guest's kernel NIC with the stream's destination address: the kernel counts each of
    /// the stream's datagrams (UDP to a port nobody listens on: `Udp: NoPorts` in
    /// `/proc/net/snmp`), a count that lives in the guest's memory and so moves with it.
    /// (DTS watched the stream with tcpdump: the guest images built before it was added have none.)
    private func startGuestKernelCount(_ vm: VirtDut) async throws -> GuestReceiver {
        let port = try await common.testPort(of: vm)
        let intf = try port.interface.orFail("\(vm.vmName)'s NIC \(port.pci) has no kernel interface")
        try await common.guestCommand(vm, ["ip", "addr", "flush", "dev", intf])
        try await common.guestCommand(vm, ["ip", "addr", "add", "2.2.2.2/24", "dev", intf])
        try await common.guestCommand(vm, ["ip", "link", "set", intf, "up"])
        try await common.waitForCarrier(vm, intf, timeout: .seconds(60))
        return GuestReceiver(what: "the kernel's UDP counter on \(intf)", log: "/proc/net/snmp", pid: nil, interface: intf,
                             countLog: Self.udpNoPorts)
    }

    /// Waits until the receiver's log has a line matching `pattern` (an extended regular expression).
    private func waitFor(_ vm: VirtDut, _ receiver: GuestReceiver, _ pattern: String, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await vm.exec(argv: ["grep", "-qE", pattern, receiver.log], timeout: .seconds(10)).succeeded { return }
            guard try await receiver.isRunning(vm) else { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        let text = try await vm.exec(argv: ["tail", "-n", "30", receiver.log], timeout: .seconds(10)).output
        throw TestFailure(message: "\(receiver.what) in \(vm.vmName) did not start:\n\(text)")
    }

    /// The last `RX-packets: N` of testpmd's periodic port statistics.
    static let testpmdRXPackets: @Sendable (String) -> Int = { text in
        var last = 0
        for line in TestpmdParser.lines(text) {
            let words = TestpmdParser.words(line)
            if let index = words.firstIndex(of: "RX-packets:"), index + 1 < words.count, let value = Int(words[index + 1]) { last = value }
        }
        return last
    }

    /// `NoPorts` of the `Udp:` lines of `/proc/net/snmp` (a header line, then a value line).
    static let udpNoPorts: @Sendable (String) -> Int = { text in
        let rows = TestpmdParser.lines(text).filter { $0.hasPrefix("Udp: ") }.map(TestpmdParser.words)
        guard rows.count >= 2, let column = rows[0].firstIndex(of: "NoPorts"), column < rows[1].count else { return 0 }
        return Int(rows[1][column]) ?? 0
    }
}
