@testable import DTS
import DTSTestSupport
import Foundation
import Testing

/// `opt_settings` of vhost-user devices: checked against QEMU's virtio-net-pci properties, and
/// what dts derives from `opt_queue` (mq, vectors) yields to them, except MSI-X under TCG.
@Suite struct VirtioSettingsTests {
    @Test func tcgKeepsMSIXOffAndSaysSo() throws {
        guard case .success(let command) = try GoldenCase(name: "vhost_user_settings_tcg").build() else {
            Issue.record("vhost_user_settings_tcg does not build")
            return
        }
        let devices = command.options.filter { $0.name == "-device" && ($0.value ?? "").contains("vhostdev") }
        #expect(devices.count == 3)
        #expect(devices.allSatisfy { ($0.value ?? "").contains("vectors=0") && !($0.value ?? "").contains("vectors=10") })
        #expect(devices[0].note?.contains("opt_settings' vectors=10 dropped") == true, "\(devices[0].note ?? "no note")")
        #expect(devices[0].value?.contains("mq=on") == true)
    }

    @Test func propertyTable() {
        #expect(VirtioNetProperties.problem("mrg_rxbuf", "on") == nil)
        #expect(VirtioNetProperties.problem("disable-modern", "false") == nil)
        #expect(VirtioNetProperties.problem("disable-legacy", "auto") == nil)
        #expect(VirtioNetProperties.problem("host_mtu", "68") == nil && VirtioNetProperties.problem("host_mtu", "65535") == nil)
        #expect(VirtioNetProperties.problem("host_mtu", "67") != nil)
        #expect(VirtioNetProperties.problem("rx_queue_size", "512") == nil && VirtioNetProperties.problem("rx_queue_size", "768") != nil)
        #expect(VirtioNetProperties.problem("speed", "-1") == nil && VirtioNetProperties.problem("speed", "-2") != nil)
        #expect(VirtioNetProperties.problem("duplex", "full") == nil && VirtioNetProperties.problem("duplex", "FULL") != nil)
        #expect(VirtioNetProperties.problem("host_tso4", "on") == nil)
        #expect(VirtioNetProperties.problem("gest_csum", "on")?.contains("did you mean 'guest_csum'") == true)
        #expect(VirtioNetProperties.problem("mac", "00:00:00:00:00:01")?.contains("opt_mac") == true)
    }

    /// The table holds exactly the properties the installed QEMU lists for virtio-net-pci.
    @Test func tableMatchesQEMU() async throws {
        try requirePrograms(["qemu-system-x86_64"])
        let help = try await runProgram("qemu-system-x86_64", ["-device", "virtio-net-pci,help"])
        let listed = Set(help.stdout.split(separator: "\n").dropFirst().compactMap { line -> String? in
            let name = line.drop(while: { $0 == " " }).prefix(while: { $0 != "=" })
            return name.isEmpty || name == "virtio-backend" ? nil : String(name)
        })
        let known = Set(VirtioNetProperties.kinds.keys).union(VirtioNetProperties.dedicated.keys)
        #expect(listed.subtracting(known).isEmpty, "QEMU lists properties the table lacks: \(listed.subtracting(known).sorted())")
        // id and bus belong to every device (qdev), so the help leaves them out.
        let extra = known.subtracting(listed).subtracting(["id", "bus"])
        #expect(extra.isEmpty, "the table has properties QEMU does not list: \(extra.sorted())")
    }
}
