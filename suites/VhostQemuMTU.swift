import DTS
import Foundation

/// `vhost_qemu_mtu`: DTS's check that QEMU's `host_mtu` reaches both ends of a vhost-user link.
/// For each MTU, a host testpmd serves one `net_vhost` port, a VM's virtio-net NIC has
/// `host_mtu=N`; the guest's kernel reports MTU N for its interface and testpmd's
/// `show port info` reports `MTU: N` for the vhost port. See docs/suites/vhost_qemu_mtu.md.
final class VhostQemuMTU: TestSuite {
    static let name = "vhost_qemu_mtu"
    static let cases: [TestCase<VhostQemuMTU>] = [
        .functional("test_mtu_in_virtio_net") { try await $0.testMTUInVirtioNet() },
    ]
    static var defaultCaseTimeout: Duration { .seconds(600) }

    let context: TestContext
    private lazy var common = VirtioCommon(context: context, suite: Self.name)
    private var dir = ""
    private var mtus: [Int] = []
    private var vhost: PmdOutput?
    private var kvm: QEMUKvm?

    init(context: TestContext) { self.context = context }

    func setUpAll() async throws {
        let texts = context.config.list("mtus", default: ["9000", "68", "65535"])
        mtus = try texts.map { text in
            guard let mtu = Int(text), (68...65535).contains(mtu) else {
                throw ConfigError(SourceLocation(file: context.config.path, line: 0, section: "suite"), key: "mtus",
                                  "'\(text)' is not an MTU from 68 to 65535")
            }
            return mtu
        }
        dir = try await common.makeWorkDirectory()
    }

    func tearDown() async throws { await stopAll() }

    private func stopAll() async {
        await kvm?.stop()
        kvm = nil
        await vhost?.quit()
        vhost = nil
    }

    func testMTUInVirtioNet() async throws {
        var table = PerfTable(title: "host_mtu seen by the guest and by the vhost testpmd", columns: ["host_mtu", "guest MTU", "testpmd MTU"])
        defer { context.recordPerformance(table) }
        for mtu in mtus {
            // DTS: --txd=512 --rxd=128 --nb-cores=1 --port-topology=chained, fwd mac, started.
            let options = VirtioCommon.vhostOptions(dir: dir, ports: 1,
                                                    arguments: ["--txd=512", "--rxd=128", "--nb-cores=1", "--port-topology=chained"])
            let pmd = try await common.startHostTestpmd(options)
            vhost = pmd
            try await pmd.setForwardMode(.mac)
            try await pmd.startForwarding()
            let kvm = try common.makeVMs(count: 1, dir: dir, settings: "mrg_rxbuf=on,host_mtu=\(mtu)")[0]
            self.kvm = kvm
            let vm = try await kvm.start()
            try await pmd.waitForLink(0, timeout: .seconds(120))

            let port = try await common.testPort(of: vm)
            let intf = try port.interface.orFail("\(vm.vmName)'s NIC has no kernel interface")
            let guestMTU = Int(try await common.guestCommand(vm, ["cat", "/sys/class/net/\(intf)/mtu"])
                .trimmingCharacters(in: .whitespacesAndNewlines))
            let info = try await pmd.portInfo(0)
            context.logger.info("host_mtu=\(mtu): guest \(intf) MTU \(guestMTU.map(String.init) ?? "?"), testpmd port 0 MTU \(info.mtu.map(String.init) ?? "?")")
            table.add([mtu, guestMTU.map(String.init) ?? "?", info.mtu.map(String.init) ?? "?"])
            try verify(guestMTU == mtu, "host_mtu=\(mtu): the guest's \(intf) has MTU \(guestMTU.map(String.init) ?? "unreadable")")
            try verify(info.mtu == mtu, "host_mtu=\(mtu): testpmd's show port info 0 says MTU \(info.mtu.map(String.init) ?? "nothing")")
            await stopAll()
        }
    }
}
