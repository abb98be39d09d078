@testable import DTS
import DTSProcess
import DTSTestSupport
import Foundation
import Testing

extension HostBackendTests {
@Suite struct TestpmdVhostTests {
    /// testpmd listens on two vhost-user sockets; a real guest (TCG) connects to both; port stats
    /// parse; quit leaves no process, no socket, no /var/run/dpdk/<prefix>.
    @Test func vhostBackendServesARealGuest() async throws {
        try requirePrograms(["dpdk-testpmd", "qemu-system-x86_64"])
        try VMFixture.requireGuestImage()
        let names = BackendNames()
        let dir = try TemporaryDirectory("dts-pmd")
        let dut = Dut(run: testRun())   // the local host DUT: its session is a LocalSession
        let run = dut.run
        let sockets = [dir.path + "/vhost-net0", dir.path + "/vhost-net1"]
        let pmd = TestpmdVhostBackend(session: dut.session,
                                      options: TestpmdVhostOptions(name: names.name("p"), workDirectory: dir.path,
                                                                   ports: sockets.map { VhostPortSpec(socketPath: $0) }),
                                      cleanup: .run(run))
        let fixture = try VMFixture(["vm0": VMFixture.guest + "\ndevice =\n" + sockets.enumerated().map { index, socket in
            "    driver=vhost-user,opt_path=\(socket),opt_mac=00:00:20:00:00:2\(index);"
        }.joined(separator: "\n")])
        let vm = try fixture.vm(run: run)
        var pid: Int32?
        try await withTearDown(run) {
          do {
            try await pmd.start()
            pid = await pmd.processID
            #expect(pid != nil)
            for socket in sockets { #expect(FileManager.default.fileExists(atPath: socket), "\(socket) not created") }
            let startup = await pmd.transcript
            #expect(startup.contains("vhost-user server: socket created"), "testpmd output: \(startup)")

            let guest = try await vm.start()
            try await pmd.waitForOutput("new device", timeout: .seconds(60))
            // The guest's first vhost NIC sends ARP requests and pings; testpmd forwards them (io) to port 1,
            // whose guest NIC receives them.
            let first = try #require(try await guestInterface(guest, mac: "00:00:20:00:00:20"))
            let second = try #require(try await guestInterface(guest, mac: "00:00:20:00:00:21"))
            for nic in [first, second] {
                _ = try await guest.exec(argv: ["ip", "link", "set", nic, "up"], timeout: .seconds(10))
            }
            try await pmd.waitForOutput("new device, handle is 1", timeout: .seconds(30))
            _ = try await guest.exec(argv: ["ip", "addr", "add", "10.10.9.3/24", "dev", first], timeout: .seconds(10))
            let rxBefore = try await guestRxPackets(guest, second)
            try await pmd.setForwardMode(.io)
            try await pmd.clearStatistics()
            try await pmd.startForwarding()
            _ = try await guest.exec(argv: ["arping", "-c", "5", "-w", "6", "-I", first, "10.10.9.4"], timeout: .seconds(20))
            try await pmd.stopForwarding()
            let stats = try await pmd.portStatistics()
            #expect(stats.keys.sorted() == [0, 1])
            #expect((stats[0]?.rxPackets ?? 0) >= 5, "port stats: \(stats)")
            #expect((stats[1]?.txPackets ?? 0) >= 5 && (stats[1]?.txPackets ?? 0) <= (stats[0]?.rxPackets ?? 0),
                    "io forwarding from port 0 to port 1: \(stats)")
            let rxAfter = try await guestRxPackets(guest, second)
            #expect(rxAfter - rxBefore == stats[1]?.txPackets, "guest \(second) received \(rxAfter - rxBefore)")
            await vm.stop()
            await pmd.quit()
            await pmd.quit()   // idempotent
          } catch {
            await vm.stop()
            throw error
          }
        }
        if let pid { #expect(!ProcessTable.isAlive(pid), "testpmd \(pid) still running") }
        #expect(processes(mentioning: pmd.filePrefix).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "/var/run/dpdk/" + pmd.filePrefix))
        for socket in sockets { #expect(!FileManager.default.fileExists(atPath: socket)) }
        #expect(qemuProcesses(matching: dir.path).isEmpty)
    }

    /// A testpmd that cannot start (a vdev argument it rejects) fails with its output and leaves nothing.
    @Test func startFailureCarriesOutput() async throws {
        try requirePrograms(["dpdk-testpmd"])
        let names = BackendNames()
        let dir = try TemporaryDirectory("dts-pmdf")
        var options = TestpmdVhostOptions(name: names.name("q"), workDirectory: dir.path,
                                          ports: [VhostPortSpec(socketPath: dir.path + "/s0")])
        options.memoryMB = 16   // too little for the mbuf pool: testpmd exits before its prompt
        options.startTimeout = .seconds(30)
        let pmd = TestpmdVhostBackend(session: Dut(run: Run()).session, options: options, cleanup: .none)
        let error = await #expect(throws: BackendError.self) { try await pmd.start() }
        #expect(error?.step == "start")
        #expect(processes(mentioning: pmd.filePrefix).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "/var/run/dpdk/" + pmd.filePrefix))
    }
}
}

/// The receive packet counter of a guest interface.
func guestRxPackets(_ guest: VirtDut, _ nic: String) async throws -> UInt64 {
    let text = try await guest.exec(argv: ["cat", "/sys/class/net/\(nic)/statistics/rx_packets"], timeout: .seconds(10)).output
    return try #require(UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)), "rx_packets of \(nic): \(text)")
}

/// The guest interface with `mac`, found through sysfs.
func guestInterface(_ guest: VirtDut, mac: String) async throws -> String? {
    let listing = try await guest.exec("for i in /sys/class/net/*; do echo \"${i##*/} $(cat $i/address)\"; done", timeout: .seconds(20))
    return listing.output.split(separator: "\n").first { $0.hasSuffix(" " + mac) }.map { String($0.split(separator: " ")[0]) }
}
