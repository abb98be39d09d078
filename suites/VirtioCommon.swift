import DTS
import DTSSession
import Foundation

/// What DTS's vhost/virtio suites share (DTS's `tests/virtio_common.py` and the helpers each of
/// them repeated): the vhost-user testpmd on the host, the VMs on its sockets, the guests' kernel
/// NICs with static addresses, iperf between two guests, testpmd in a guest.
struct VirtioCommon {
    let context: TestContext
    let suite: String

    /// DTS's addresses of the two VMs' virtio NICs.
    static let vmIPs = ["1.1.1.1", "1.1.1.2"]
    static let vmMACs = ["52:54:00:00:00:01", "52:54:00:00:00:02"]

    // MARK: Work directory

    /// A private directory on the DUT for the suite's vhost-user sockets and logs (short: a socket
    /// path must stay under 108 bytes), removed by the run's cleanups.
    func makeWorkDirectory() async throws -> String {
        let dut = context.dut
        let made = try await dut.exec(argv: ["mktemp", "-d", "/tmp/dts-\(suite.prefix(12))-XXXXXX"], timeout: .seconds(10))
        guard made.succeeded else { throw BackendError(component: suite, step: "mktemp -d", detail: made.errorOutput) }
        let dir = made.output.trimmingCharacters(in: .whitespacesAndNewlines)
        await context.run.register("\(suite) work directory \(dir)") { [dut] in
            _ = try? await dut.exec(argv: ["rm", "-rf", dir], timeout: .seconds(20))
        }
        return dir
    }

    /// Stops what a case started, guests first: the guests' testpmd, the VMs, the host's vhost
    /// testpmd (each idempotent, each also registered with the run's cleanups).
    nonisolated(nonsending) func stopAll(guestPMDs: [PmdOutput] = [], kvms: [QEMUKvm], vhost: PmdOutput?) async {
        for pmd in guestPMDs { await pmd.quit() }
        for kvm in kvms { await kvm.stop() }
        await vhost?.quit()
    }

    // MARK: The host's vhost-user testpmd

    /// The vhost testpmd's options: `ports` net_vhost vdevs on `<dir>/vhost-net<N>` (QEMU as
    /// server when `client`), no PCI, no hugepages, `-l 0,1` (main lcore and one forwarding lcore:
    /// the two cores of this host).
    static func vhostOptions(dir: String, ports: Int, client: Bool = false, queues: Int = 1, extra: [Vdev.Argument] = [],
                             cores: TestpmdCores = .list("0,1"), arguments: [String]) -> TestpmdOptions {
        var options = TestpmdOptions(filePrefix: "vhost-user", cores: cores, memory: .noHuge(megabytes: 1024))
        options.noPCI = true
        options.vdevs = (0..<ports).map { .vhost($0, iface: socket(dir, $0), queues: queues, client: client, extra) }
        options.arguments = arguments
        options.workDirectory = dir
        return options
    }

    static func socket(_ dir: String, _ index: Int) -> String { dir + "/vhost-net\(index)" }

    /// Starts testpmd with `options` on the host DUT; its quit is registered with the run.
    func startHostTestpmd(_ options: TestpmdOptions) async throws -> PmdOutput {
        let pmd = PmdOutput(session: context.dut.session, options: options, cleanup: .run(context.run))
        let banner = try await pmd.start()
        context.logger.info("host # \(ShellQuoting.join(options.argv))\n\(banner)")
        return pmd
    }

    // MARK: VMs

    /// VMs `vm0`...`vm<count-1>` of the suite's config, each with one vhost-user NIC on
    /// `<dir>/vhost-net<i>` and DTS's MAC `52:54:00:00:00:0<i+1>`.
    func makeVMs(count: Int, dir: String, settings: String, server: Bool = false, queues: Int = 1) throws -> [QEMUKvm] {
        try (0..<count).map { index in
            let kvm = try QEMUKvm(dut: context.dut, vmName: "vm\(index)", suite: suite)
            var device = ["driver": "vhost-user", "opt_path": Self.socket(dir, index), "opt_mac": Self.vmMACs[index]]
            if !settings.isEmpty { device["opt_settings"] = settings }
            if server { device["opt_server"] = "yes" }
            if queues > 1 { device["opt_queue"] = String(queues) }
            try kvm.setVMDevice(device)
            return kvm
        }
    }

    /// Each VM's one test NIC (DTS's `vm_dut.ports_info[0]`), failing unless there is exactly one.
    func testPort(of vm: VirtDut) async throws -> GuestPort {
        let ports = try await vm.portsInfo()
        guard ports.count == 1, let port = ports.first else {
            throw TestFailure(message: "\(vm.vmName) has \(ports.count) test NICs, expected one: \(ports)")
        }
        return port
    }

    /// Fails with a clear error unless the guest has `programs` (an image built before the guest
    /// image gained them lacks them: rebuild it with scripts/build-guest-image.sh).
    func requirePrograms(_ programs: [String], in vm: VirtDut) async throws {
        let found = try await vm.exec(argv: ["sh", "-c", "for p in \"$@\"; do command -v \"$p\" >/dev/null || echo \"$p\"; done", "sh"] + programs,
                                      timeout: .seconds(10))
        let missing = TestpmdParser.words(found.output)
        guard missing.isEmpty else {
            throw BackendError(component: "VM \(vm.vmName)", step: "check the guest image",
                               detail: "the guest has no \(missing.joined(separator: ", ")); rebuild the image (scripts/build-guest-image.sh, docs/guest-image.md)")
        }
    }

    // MARK: Kernel NICs

    /// DTS's `config_2_vms_ip`: each VM's NIC gets its address (/24) and is brought up, each has a
    /// static ARP entry for the other; returns the interfaces once both carriers are up.
    func configureIPs(_ vms: [VirtDut]) async throws -> [String] {
        var interfaces: [String] = []
        for (index, vm) in vms.enumerated() {
            let port = try await testPort(of: vm)
            guard let intf = port.interface else { throw TestFailure(message: "\(vm.vmName)'s NIC \(port.pci) has no kernel interface") }
            let peer = 1 - index
            try await guestCommand(vm, ["ip", "addr", "flush", "dev", intf])
            try await guestCommand(vm, ["ip", "addr", "add", Self.vmIPs[index] + "/24", "dev", intf])
            try await guestCommand(vm, ["ip", "link", "set", intf, "up"])
            try await guestCommand(vm, ["arp", "-i", intf, "-s", Self.vmIPs[peer], Self.vmMACs[peer]])
            interfaces.append(intf)
        }
        for (vm, intf) in zip(vms, interfaces) { try await waitForCarrier(vm, intf, timeout: .seconds(60)) }
        return interfaces
    }

    /// Runs `argv` in the guest; a failure is an error naming the VM.
    @discardableResult
    func guestCommand(_ vm: VirtDut, _ argv: [String], timeout: Duration = .seconds(30)) async throws -> String {
        let result = try await vm.exec(argv: argv, timeout: timeout)
        guard result.succeeded else {
            throw BackendError(component: "VM \(vm.vmName)", step: ShellQuoting.join(argv),
                               detail: "exit status \(result.status): \(result.output) \(result.errorOutput)")
        }
        return result.output
    }

    /// Waits until the guest interface has carrier (its vhost-user backend is connected).
    func waitForCarrier(_ vm: VirtDut, _ intf: String, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let carrier = try await vm.exec(argv: ["cat", "/sys/class/net/\(intf)/carrier"], timeout: .seconds(10))
            if carrier.output.trimmingCharacters(in: .whitespacesAndNewlines) == "1" { return }
            guard ContinuousClock.now < deadline else {
                throw TestFailure(message: "\(vm.vmName) \(intf) has no carrier after \(timeout): its vhost-user link did not come up")
            }
            try await Task.sleep(for: .milliseconds(300))
        }
    }

    // MARK: iperf

    /// DTS's `run_iperf_test_between_2_vms` and `check_iperf_result_between_2_vms`: an iperf server
    /// in `server` (at `serverIP`), an iperf client in `client` for `seconds`; the client's log is
    /// copied back to the case's artifacts and its summary read. Fails unless iperf reports a rate.
    func runIperf(server: VirtDut, client: VirtDut, serverIP: String, seconds: Int, port: Int = 5001) async throws -> IperfResult {
        let serverLog = "/tmp/iperf_server.log", clientLog = "/tmp/iperf_client.log"
        try await guestCommand(server, ["sh", "-c", "killall iperf 2>/dev/null; setsid iperf -s -p \"$1\" -i 1 < /dev/null > \"$2\" 2>&1 &", "sh",
                                        String(port), serverLog])
        var ready = false
        for _ in 0..<50 where !ready {
            ready = try await server.exec("netstat -ltn 2>/dev/null | grep -q ':\(port) '", timeout: .seconds(10)).succeeded
            if !ready { try await Task.sleep(for: .milliseconds(200)) }
        }
        guard ready else { throw TestFailure(message: "the iperf server in \(server.vmName) does not listen on port \(port)") }
        // iperf -c waits forever on a stalled connection: `timeout` ends it (status 124), so a
        // path that stopped carrying traffic is a failure with the log, not a hung session.
        let run = try await client.exec(argv: ["sh", "-c", "timeout \"$5\" iperf -c \"$1\" -p \"$2\" -i 1 -t \"$3\" > \"$4\" 2>&1", "sh",
                                               serverIP, String(port), String(seconds), clientLog, String(seconds + 30)],
                                        timeout: .seconds(Int64(seconds) + 60))
        _ = try? await server.exec("killall iperf", timeout: .seconds(10))
        let artifacts = try context.artifactDirectory()
        let local = artifacts + "/iperf_client-\(client.vmName)-\(UUID().uuidString.prefix(8)).log"
        try await client.download(remotePath: clientLog, localPath: local, progress: nil)
        context.attach(local)
        let text = (try? String(contentsOfFile: local, encoding: .utf8)) ?? ""
        context.logger.info("iperf \(client.vmName) -> \(server.vmName) (exit \(run.status)):\n\(text)")
        _ = try? await client.exec(argv: ["rm", "-f", clientLog], timeout: .seconds(10))
        _ = try? await server.exec(argv: ["rm", "-f", serverLog], timeout: .seconds(10))
        guard run.succeeded, let result = Self.parseIperf(text) else {
            throw TestFailure(message: "iperf from \(client.vmName) to \(server.vmName) reported no rate (exit status \(run.status)): \(text.suffix(600))")
        }
        return result
    }

    /// The summary of an iperf 2 client log: the last `... [KMG]bits/sec` before the server
    /// report (DTS read the same line).
    static func parseIperf(_ text: String) -> IperfResult? {
        var body = text
        if let report = text.range(of: "Server Report") { body = String(text[..<report.lowerBound]) }
        var last: IperfResult?
        for line in TestpmdParser.lines(body) {
            let words = TestpmdParser.words(line)
            guard let unitIndex = words.lastIndex(where: { $0.hasSuffix("bits/sec") }), unitIndex > 0,
                  let value = Double(words[unitIndex - 1]) else { continue }
            let scale: Double
            switch words[unitIndex] {
            case "bits/sec": scale = 1
            case "Kbits/sec": scale = 1e3
            case "Mbits/sec": scale = 1e6
            case "Gbits/sec": scale = 1e9
            default: continue
            }
            last = IperfResult(bitsPerSecond: value * scale, summary: line.scalarTrimmedLine)
        }
        return last
    }

    // MARK: testpmd in a guest

    /// Starts testpmd in `vm` on its test NIC (bound to the VM's `def_driver`, `uio_pci_generic`
    /// when the config names none), with hugepages reserved in the guest.
    func startGuestTestpmd(_ vm: VirtDut, allow: @Sendable (GuestPort) -> String = { $0.pci }, arguments: [String],
                           hugepages: Int = 64, cores: TestpmdCores = .list("0-1")) async throws -> PmdOutput {
        let ports = try await vm.bindTestPorts(driver: try vm.defaultPortDriver())
        try await vm.reserveHugepages(hugepages)
        var options = TestpmdOptions(filePrefix: "virtio", cores: cores, memory: .hugepages(megabytes: hugepages * 2 - 16))
        options.allowedDevices = ports.map(allow)
        options.arguments = arguments
        options.startTimeout = .seconds(180)
        let pmd = PmdOutput(session: vm, options: options, cleanup: .run(context.run))
        let banner = try await pmd.start()
        context.logger.info("\(vm.vmName) # \(ShellQuoting.join(options.argv))\n\(banner)")
        guard TestpmdParser.startupPorts(banner).count == ports.count else {
            throw TestFailure(message: "testpmd in \(vm.vmName) did not take its \(ports.count) NIC(s):\n\(banner.suffix(1500))")
        }
        return pmd
    }
}

/// What iperf reported.
struct IperfResult: Sendable, Equatable {
    /// The summary rate, bits per second.
    var bitsPerSecond: Double
    /// The summary line as iperf printed it.
    var summary: String

    var mbits: Double { bitsPerSecond / 1e6 }
}

extension String {
    fileprivate var scalarTrimmedLine: String {
        var scalars = Substring(self).unicodeScalars[...]
        while let first = scalars.first, first.properties.isWhitespace { scalars = scalars.dropFirst() }
        return String(String.UnicodeScalarView(scalars))
    }
}
