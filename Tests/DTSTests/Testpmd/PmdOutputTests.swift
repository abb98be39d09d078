@testable import DTS
import DTSProcess
import DTSTestSupport
import Foundation
import Testing

extension HostBackendTests {
/// ``PmdOutput`` against real testpmds on this host: a `net_vhost` testpmd and a
/// `net_virtio_user` testpmd connected through a vhost-user socket (no VM, no hugepages).
@Suite struct PmdOutputTests {
    /// Two testpmds on a 2-core host: the vhost one on `-l 0,1`, the virtio-user one with its
    /// main lcore on CPU 1 and its forwarding lcore on CPU 0.
    static func loopback(_ dir: String, names: BackendNames, hook: CleanupHook) -> (vhost: PmdOutput, virtio: PmdOutput) {
        let socket = dir + "/vhost-net0"
        var vhost = TestpmdOptions(filePrefix: names.name("pv"), cores: .list("0,1"), memory: .noHuge(megabytes: 1024))
        vhost.noPCI = true
        vhost.vdevs = [.vhost(0, iface: socket, queues: 1, [.init("tso", "1")])]
        vhost.arguments = ["--total-num-mbufs=4096"]
        vhost.workDirectory = dir
        var virtio = TestpmdOptions(filePrefix: names.name("pu"), cores: .lcores("0@1,1@0"), memory: .noHuge(megabytes: 1024))
        virtio.noPCI = true
        virtio.vdevs = [.virtioUser(0, path: socket, mac: "00:01:02:03:04:05")]
        virtio.arguments = ["--total-num-mbufs=4096"]
        virtio.workDirectory = dir
        let session = Dut(run: Run()).session
        return (PmdOutput(session: session, options: vhost, cleanup: hook), PmdOutput(session: session, options: virtio, cleanup: hook))
    }

    /// Start, link up on both ends, typed stats and xstats of real traffic (every frame the
    /// virtio-user side sent arrives at the vhost side, counted alike), a refusal, link down when
    /// the peer quits, and nothing left after quit: no process, socket or /var/run/dpdk/<prefix>.
    @Test func vhostAndVirtioUserLoopback() async throws {
        try requirePrograms(["dpdk-testpmd"])
        let names = BackendNames()
        let dir = try TemporaryDirectory("dts-pmdl")
        let run = testRun()
        let (vhost, virtio) = Self.loopback(dir.path, names: names, hook: .run(run))
        var pids: [Int32] = []
        try await withTearDown(run) {
            let banner = try await vhost.start()
            #expect(banner.contains("vhost-user server: socket created"), "\(banner)")
            #expect(FileManager.default.fileExists(atPath: dir.path + "/vhost-net0"))
            #expect(TestpmdParser.startupPorts(banner) == [0: "56:48:4F:53:54:00"])
            #expect(try await vhost.linkStatus(0) == .down, "no peer yet")
            try await virtio.start()
            pids = [await vhost.processID, await virtio.processID].compactMap { $0 }
            #expect(pids.count == 2)
            try await vhost.waitForLink(0, timeout: .seconds(30))
            let info = try await virtio.portInfo(0)
            #expect(info.linkStatus == .up && info.driverName == "net_virtio_user" && info.mac == "00:01:02:03:04:05")

            try await vhost.setForwardMode(.rxonly)
            try await vhost.startForwarding()
            try await virtio.setForwardMode(.txonly)
            try await virtio.executeChecked("set txpkts 64,1500")       // 1564-byte frames in two segments
            try await virtio.startForwarding()
            let rates = try await vhost.measureRates([0], over: .seconds(1))
            let rate = try #require(rates[0])
            #expect(rate.rxPackets > 0 && rate.rxPPS > 0, "\(rate)")
            let sent = try await virtio.stopForwarding()
            #expect((sent.ports[0]?.txPackets ?? 0) > 0, "\(sent)")
            // Everything virtio-user put into the ring reaches the vhost port.
            let txTotal = try await virtio.portStats(0).counters.txPackets
            var rxTotal: UInt64 = 0
            let deadline = ContinuousClock.now + .seconds(10)
            while rxTotal < txTotal, ContinuousClock.now < deadline {
                rxTotal = try await vhost.portStats(0).counters.rxPackets
            }
            #expect(rxTotal == txTotal, "virtio-user sent \(txTotal), vhost received \(rxTotal)")
            let x = try await vhost.xstats(0)
            #expect(x["rx_q0_size_1519_max_packets"] == rxTotal, "every frame is 1564 bytes: \(x.values)")
            #expect(x.sum("rx", "good_packets") == rxTotal)
            try await vhost.stopForwarding()

            await #expect(throws: BackendError.self) { try await vhost.executeChecked("set fwd nonsense") }
            await #expect(throws: BackendError.self) { _ = try await vhost.portInfo(7) }

            await virtio.quit()
            try await vhost.waitForLink(0, .down, timeout: .seconds(30))
            await vhost.quit()
            await vhost.quit()   // idempotent
        }
        for pid in pids { #expect(!ProcessTable.isAlive(pid), "testpmd \(pid) still runs") }
        for prefix in [vhost.options.filePrefix, virtio.options.filePrefix] {
            #expect(processes(mentioning: "--file-prefix=" + prefix).isEmpty)
            #expect(!FileManager.default.fileExists(atPath: "/var/run/dpdk/" + prefix))
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/dts-testpmd-\(prefix).pid"))
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/vhost-net0"))
    }

    /// The reconnect pattern: the backend interrupted (SIGINT, as DTS's `killall -s INT`) and
    /// started again with the same options; the virtio-user peer (a server here) sees the link
    /// come back, and the framework waits for it instead of sleeping.
    @Test func interruptedBackendReconnects() async throws {
        try requirePrograms(["dpdk-testpmd"])
        let names = BackendNames()
        let dir = try TemporaryDirectory("dts-pmdr")
        let run = testRun()
        let socket = dir.path + "/vhost-net0"
        var vhostOptions = TestpmdOptions(filePrefix: names.name("rv"), cores: .list("0,1"), memory: .noHuge(megabytes: 1024))
        vhostOptions.noPCI = true
        vhostOptions.vdevs = [.vhost(0, iface: socket, client: true)]
        vhostOptions.workDirectory = dir.path
        var userOptions = TestpmdOptions(filePrefix: names.name("ru"), cores: .lcores("0@1,1@0"), memory: .noHuge(megabytes: 1024))
        userOptions.noPCI = true
        userOptions.vdevs = [.virtioUser(0, path: socket, server: true)]
        userOptions.workDirectory = dir.path
        let session = Dut(run: run).session
        let vhost = PmdOutput(session: session, options: vhostOptions, cleanup: .run(run))
        let user = PmdOutput(session: session, options: userOptions, cleanup: .run(run))
        try await withTearDown(run) {
            // A virtio-user server waits for its client before its prompt: start both at once.
            async let serving: String = user.start()
            try await vhost.start()                      // client=1 connects to the socket once it exists
            _ = try await serving
            try await vhost.waitForLink(0, timeout: .seconds(30))
            let first = await vhost.processID
            await vhost.interrupt()
            if let first { #expect(!ProcessTable.isAlive(first)) }
            #expect(!FileManager.default.fileExists(atPath: "/var/run/dpdk/" + vhostOptions.filePrefix))
            try await user.waitForLink(0, .down, timeout: .seconds(30))
            try await vhost.start()
            #expect(await vhost.processID != first)
            try await vhost.waitForLink(0, timeout: .seconds(30))
            try await user.waitForLink(0, timeout: .seconds(30))
            // restart() is the same relaunch in one call; ports(named:) finds the vhost port.
            let second = await vhost.processID
            try await vhost.restart()
            #expect(await vhost.processID != second)
            #expect(try await vhost.ports(named: "net_vhost") == [0])
            #expect(try await vhost.ports(named: "net_null").isEmpty)
            try await vhost.waitForLinks([0], timeout: .seconds(30))
            try await user.waitForLinks([0], timeout: .seconds(30))
            await vhost.quit()
            await user.quit()
        }
        #expect(processes(mentioning: vhostOptions.filePrefix).isEmpty && processes(mentioning: userOptions.filePrefix).isEmpty)
    }

    /// With hugepages, quit also removes the instance's hugepage files from the hugetlbfs mount.
    @Test func quitRemovesHugepageFiles() async throws {
        try requirePrograms(["dpdk-testpmd"])
        let mount = try #require(HostFacts.hugetlbfsMount(), "no hugetlbfs mounted")
        let names = BackendNames()
        let dir = try TemporaryDirectory("dts-pmdh")
        let run = testRun()
        let hold = HugepageHold(session: Dut(run: run).session)
        await run.register("test hugepages") { await hold.release() }
        var options = TestpmdOptions(filePrefix: names.name("ph"), cores: .list("0,1"), memory: .hugepages(megabytes: 64))
        options.noPCI = true
        options.vdevs = [.null(0)]
        options.arguments = ["--total-num-mbufs=2048"]
        options.workDirectory = dir.path
        let pmd = PmdOutput(session: Dut(run: run).session, options: options, cleanup: .run(run))
        func mapFiles() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: mount)) ?? []).filter { $0.hasPrefix(options.filePrefix + "map_") }
        }
        try await withTearDown(run) {
            _ = try await hold.reserve(48)
            try await pmd.start()
            #expect(!mapFiles().isEmpty, "testpmd holds hugepage files in \(mount)")
            // net_null receives endlessly: io forwarding moves frames without a peer.
            try await pmd.setForwardMode(.io)
            try await pmd.startForwarding()
            let rate = try #require(try await pmd.measureRates([0], over: .milliseconds(500))[0])
            #expect(rate.rxPackets > 0 && rate.txPackets > 0, "\(rate)")
            await pmd.quit()
            #expect(mapFiles().isEmpty, "hugepage files left: \(mapFiles())")
        }
    }

    /// A testpmd that exits before its prompt fails with its output and leaves nothing.
    @Test func startFailureCarriesOutput() async throws {
        try requirePrograms(["dpdk-testpmd"])
        let names = BackendNames()
        let dir = try TemporaryDirectory("dts-pmdf")
        var options = TestpmdOptions(filePrefix: names.name("pf"), cores: .list("0,1"), memory: .noHuge(megabytes: 16))
        options.noPCI = true          // 16 MB cannot hold the mbuf pool: testpmd exits
        options.vdevs = [.vhost(0, iface: dir.path + "/s0")]
        options.workDirectory = dir.path
        options.startTimeout = .seconds(30)
        let pmd = PmdOutput(session: Dut(run: Run()).session, options: options, cleanup: .none)
        let error = await #expect(throws: BackendError.self) { try await pmd.start() }
        #expect(error?.step == "start")
        #expect(error?.detail.contains("exited before its prompt") == true, "\(error.map { "\($0)" } ?? "")")
        #expect(processes(mentioning: "--file-prefix=" + options.filePrefix).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "/var/run/dpdk/" + options.filePrefix))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/s0"))
    }

    /// Invalid options are refused before anything runs.
    @Test func invalidOptionsAreRefusedUpFront() async throws {
        var options = TestpmdOptions(filePrefix: "bad prefix", cores: .list("0,1"), memory: .noHuge(megabytes: 1024))
        options.noPCI = true
        let pmd = PmdOutput(session: Dut(run: Run()).session, options: options, cleanup: .none)
        let error = await #expect(throws: BackendError.self) { try await pmd.start() }
        #expect(error?.detail.contains("invalid file prefix") == true)
        #expect(await pmd.isRunning == false)
    }
}
}
