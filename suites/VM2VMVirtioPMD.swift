import DTS
import DTSSession
import Foundation

/// `vm2vm_virtio_pmd`: DTS's VM2VM vhost-user/virtio-pmd suite. Two VMs, each with one
/// vhost-user virtio-net NIC driven by testpmd in the guest (virtio PMD, bound to the VM's
/// `def_driver`), on two `net_vhost` ports of one host testpmd forwarding between them (`fwd mac`).
/// The path cases send 64-byte frames from VM1 (`txonly`) to VM0 (`rxonly`) and measure the rate
/// vhost receives from VM1; the payload cases send ten 8000-byte chained frames and check, from a
/// `dpdk-pdump` capture in VM0, that all ten arrived with the same payload.
/// See docs/suites/vm2vm_virtio_pmd.md.
final class VM2VMVirtioPMD: VirtioSuite, TestSuite {
    static let name = "vm2vm_virtio_pmd"
    static let cases: [TestCase<VM2VMVirtioPMD>] = [
        .functional("test_vm2vm_vhost_user_virtio95_pmd_with_vector_rx_path") { try await $0.pathCase(.virtio095, .vectorRX) },
        .functional("test_vm2vm_vhost_user_virtio95_pmd_with_normal_path") { try await $0.pathCase(.virtio095, .normal) },
        .functional("test_vm2vm_vhost_user_virtio10_pmd_with_vector_rx_path") { try await $0.pathCase(.virtio10, .vectorRX) },
        .functional("test_vm2vm_vhost_user_virito10_pmd_with_normal_path") { try await $0.pathCase(.virtio10, .normal) },
        .functional("test_vm2vm_vhost_user_virtio95_pmd_with_mergeable_path_with_payload_valid_check") { try await $0.payloadCase(.virtio095) },
        .functional("test_vm2vm_vhost_user_virtio10_pmd_with_mergeable_path_with_payload_valid_check") { try await $0.payloadCase(.virtio10) },
        .functional("test_vm2vm_vhost_user_virtio11_pmd_with_mergeable_path_with_payload_valid_check") { try await $0.payloadCase(.virtio11) },
        .functional("test_vm2vm_vhost_user_virito11_pmd_with_normal_path") { try await $0.pathCase(.virtio11, .normal) },
    ]
    static var defaultCaseTimeout: Duration { .seconds(900) }

    /// The virtio revision the VMs' NICs offer (DTS's `opt_settings` per case).
    enum Revision: String {
        case virtio095 = "virtio 0.95", virtio10 = "virtio 1.0", virtio11 = "virtio 1.1"

        func settings(mergeable: Bool) -> String {
            "disable-modern=\(self == .virtio095 ? "true" : "false"),mrg_rxbuf=\(mergeable ? "on" : "off"),"
                + "csum=on,guest_csum=on,host_tso4=on,guest_tso4=on,guest_ecn=on" + (self == .virtio11 ? ",packed=on" : "")
        }
    }

    /// The guest testpmd's virtio PMD path (DTS's `path_mode`).
    enum Path: String {
        case vectorRX = "vector_rx", normal, mergeable

        /// testpmd's application arguments for the path (DTS's per-path command lines).
        var arguments: [String] {
            switch self {
            case .mergeable: return ["--tx-offloads=0x00", "--rx-offloads=0x00002000", "--enable-hw-vlan-strip", "--txd=1024", "--rxd=1024", "--max-pkt-len=9600"]
            case .normal: return ["--tx-offloads=0x00", "--enable-hw-vlan-strip", "--txd=1024", "--rxd=1024"]
            case .vectorRX: return ["--txd=1024", "--rxd=1024"]
            }
        }
    }

    /// The `[suite]` settings.
    struct Settings {
        /// How long the rate is measured (DTS: ten 1 s samples).
        var measureSeconds: Int
        /// The least rate vhost must receive from VM1, Mpps (DTS: 4.5 on KVM).
        var minimumMpps: Double

        init(_ config: SuiteConfig) throws {
            measureSeconds = try config.int("measure_seconds", default: 10, in: 1...600)
            minimumMpps = try config.double("min_mpps", default: 4.5)
        }
    }

    private var settings: Settings?

    init(context: TestContext) { super.init(context: context, suite: Self.name) }

    func setUpAll() async throws {
        settings = try Settings(context.config)
        try await makeWorkDirectory()
    }

    // MARK: Cases

    /// Test Cases 1-4 and 8: VM1 txonly 64-byte frames, VM0 rxonly; vhost's rate from VM1.
    func pathCase(_ revision: Revision, _ path: Path) async throws {
        let s = try settings.orFail("settings not read")
        try await startVhostTestpmd()
        try await startVMs(settings: revision.settings(mergeable: false))
        let vm0 = try await startGuestTestpmd(vms[0], path)
        let vm1 = try await startGuestTestpmd(vms[1], path)
        try await vm0.setForwardMode(.rxonly)
        try await vm0.startForwarding()
        try await vm1.setForwardMode(.txonly)
        try await vm1.executeChecked("set txpkts 64")
        try await vm1.startForwarding(txFirst: 32)
        let host = try vhost.orFail("no vhost testpmd")
        let rates = try await host.measureRates([0, 1], over: .seconds(Int64(s.measureSeconds)))
        let fromVM1 = try rates[1].orFail("no rate for port 1"), toVM0 = try rates[0].orFail("no rate for port 0")
        let received = try await vm0.portStats(0).counters.rxPackets
        var table = PerfTable(title: "VM1 -> VM0 through vhost-user, 64-byte frames, TCG guests",
                              columns: ["FrameSize(B)", "Mode", "Throughput(Mpps)", "Queue Number", "Path", "to VM0 (Mpps)", "VM0 rx packets"])
        table.add([64, revision.rawValue + " " + path.rawValue, String(format: "%.4f", fromVM1.rxMpps), 1, path.rawValue,
                   String(format: "%.4f", toVM0.txMpps), Int(received)])
        context.recordPerformance(table)
        try verify(fromVM1.rxPackets > 0, "vhost port 1 received nothing from VM1 in \(s.measureSeconds) s")
        try verify(toVM0.txPackets > 0 && received > 0, "nothing reached VM0: vhost port 0 sent \(toVM0.txPackets), VM0 received \(received)")
        try verify(fromVM1.rxMpps >= s.minimumMpps,
                   "vhost received \(String(format: "%.4f", fromVM1.rxMpps)) Mpps from VM1, below min_mpps=\(s.minimumMpps)")
    }

    /// Test Cases 5-7: ten 8000-byte chained frames VM1 -> VM0, captured by dpdk-pdump in VM0;
    /// all ten arrive, each with the first one's payload.
    func payloadCase(_ revision: Revision) async throws {
        try await startVhostTestpmd()
        try await startVMs(settings: revision.settings(mergeable: true))
        let vm0 = try await startGuestTestpmd(vms[0], .mergeable)
        try await vm0.setForwardMode(.rxonly)
        try await vm0.startForwarding()
        let pcap = "/root/pdump-rx.pcap"
        let pdump = try await startPdump(in: vms[0], pcap: pcap)
        let vm1 = try await startGuestTestpmd(vms[1], .mergeable)
        try await vm1.executeChecked("set txpkts 2000,2000,2000,2000")
        try await vm1.executeChecked("set burst 1")
        try await vm1.startForwarding(txFirst: 10)
        // Wait until VM0's testpmd counted the ten frames before stopping the capture.
        let deadline = ContinuousClock.now + .seconds(60)
        var received: UInt64 = 0
        while ContinuousClock.now < deadline {
            received = try await vm0.portStats(0).counters.rxPackets
            if received >= 10 { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        try await Task.sleep(for: .seconds(1))
        await pdump.interruptAndClose(timeout: .seconds(30))
        await vm0.quit()
        let local = try context.artifactDirectory() + "/pdump-rx-\(revision.rawValue.replacingOccurrences(of: " ", with: "")).pcap"
        try await vms[0].download(remotePath: pcap, localPath: local, progress: nil)
        context.attach(local)
        let frames = try PcapFile.read(local)
        context.logger.info("VM0 testpmd received \(received) frames; pdump captured \(frames.count): lengths \(frames.map(\.count))")
        try verify(frames.count == 10, "VM0 captured \(frames.count) frames, expected 10 (testpmd counted \(received))")
        let payloads = frames.map { $0.dropFirst(42) }
        try verify(payloads[0].count == 8000 - 42, "the first frame carries \(payloads[0].count + 42) bytes, expected 8000")
        for (index, payload) in payloads.enumerated().dropFirst() {
            try verify(payload == payloads[0], "the payload of frame \(index + 1) differs from the first one's")
        }
    }

    // MARK: Steps

    private func startVhostTestpmd() async throws {
        // DTS: two cores of the socket for vhost, --nb-cores=1, fwd mac.
        let options = VirtioCommon.vhostOptions(dir: dir, ports: 2, arguments: ["--nb-cores=1", "--txd=1024", "--rxd=1024"])
        let pmd = try await common.startHostTestpmd(options)
        vhost = pmd
        try await pmd.setForwardMode(.mac)
        try await pmd.startForwarding()
    }

    private func startVMs(settings: String) async throws {
        kvms = try common.makeVMs(count: 2, dir: dir, settings: settings)
        vms = try await QEMUKvm.startAll(kvms)
        let pmd = try vhost.orFail("no vhost testpmd")
        for port in 0..<2 { try await pmd.waitForLink(port, timeout: .seconds(120)) }
        for vm in vms { try await common.requirePrograms(["dpdk-testpmd", "dpdk-pdump"], in: vm) }
    }

    private func startGuestTestpmd(_ vm: VirtDut, _ path: Path) async throws -> PmdOutput {
        let vectorized = path == .vectorRX
        // DTS sized the mbuf pool by testpmd's default (one pool for 32 ports: ~330 MB); a guest
        // here has 128 MB of hugepages, so the pool is given a size.
        let pmd = try await common.startGuestTestpmd(vm, allow: { vectorized ? $0.pci + ",vectorized=1" : $0.pci },
                                                     arguments: path.arguments + ["--total-num-mbufs=16384"], cores: .lcores("0@0,1@0"))
        guestPMDs.append(pmd)
        return pmd
    }

    /// DTS's `launch_pdump_to_capture_pkt`: dpdk-pdump as a secondary process of VM0's testpmd,
    /// on a shell of its own, capturing port 0's received frames into `pcap`. Its pool is given a
    /// size (pdump's default, 65535 mbufs of 8000 bytes, is 500 MB, and it takes no fewer than 1025; the guest has 128 MB of
    /// hugepages, most of them testpmd's).
    private func startPdump(in vm: VirtDut, pcap: String) async throws -> any InteractiveSession {
        let argv = ["dpdk-pdump", "-v", "--file-prefix=virtio", "--", "--pdump", "port=0,queue=*,rx-dev=\(pcap),mbuf-size=8000,ring-size=1024,total-num-mbufs=1100"]
        let shell = try await vm.openShell()
        do {
            // On the shell's terminal (pdump's output is line-buffered there, block-buffered into
            // a file); "Port" is its readiness line, as DTS expected, the marker its exit.
            let output = try await shell.sendExpect("rm -f \(pcap); " + ShellQuoting.join(argv) + "; echo dts-pdump-\"exited\"",
                                                    .regex("Port|dts-pdump-exited"), timeout: .seconds(90))
            context.logger.info("\(vm.vmName) # \(ShellQuoting.join(argv))\n\(output)")
            // sendExpect returns what came before the match: whether pdump still runs tells which matched.
            let running = try await vm.exec(argv: ["pidof", "dpdk-pdump"], timeout: .seconds(10)).succeeded
            if !running {
                throw TestFailure(message: "dpdk-pdump in \(vm.vmName) exited:\n\(output.suffix(3000))")
            }
            return shell
        } catch {
            await shell.interruptAndClose(timeout: .seconds(10))
            throw error
        }
    }
}

extension InteractiveSession {
    /// Ctrl-C to the foreground program, then waits (bounded) until the shell runs commands
    /// again (the program has exited and flushed its files); closes the shell.
    fileprivate func interruptAndClose(timeout: Duration) async {
        try? await sendControlC()
        _ = try? await sendExpect("echo dts-''pdump-done", .literal("dts-pdump-done"), timeout: timeout)
        await close()
    }
}

/// A classic pcap file's frames (what dpdk-pdump's net_pcap writes), read without scapy.
enum PcapFile {
    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    static func read(_ path: String) throws -> [[UInt8]] {
        try parse(Array(try Data(contentsOf: URL(fileURLWithPath: path))), name: path)
    }

    /// Frames of a pcap image (microsecond or nanosecond, either byte order).
    static func parse(_ bytes: [UInt8], name: String) throws -> [[UInt8]] {
        guard bytes.count >= 24 else { throw Malformed(description: "\(name): \(bytes.count) bytes, too short for a pcap header") }
        let magicLE = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
        let little: Bool
        switch magicLE {
        case 0xa1b2c3d4, 0xa1b23c4d: little = true
        case 0xd4c3b2a1, 0x4d3cb2a1: little = false
        default: throw Malformed(description: "\(name): not a pcap file (magic \(String(magicLE, radix: 16)))")
        }
        func u32(_ at: Int) -> Int {
            let b = bytes[at..<(at + 4)].map(UInt32.init)
            return Int(little ? b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24 : b[3] | b[2] << 8 | b[1] << 16 | b[0] << 24)
        }
        var frames: [[UInt8]] = [], offset = 24
        while offset < bytes.count {
            guard offset + 16 <= bytes.count else { throw Malformed(description: "\(name): truncated record header at byte \(offset)") }
            let length = u32(offset + 8)
            guard offset + 16 + length <= bytes.count else { throw Malformed(description: "\(name): truncated frame at byte \(offset)") }
            frames.append(Array(bytes[(offset + 16)..<(offset + 16 + length)]))
            offset += 16 + length
        }
        return frames
    }
}
