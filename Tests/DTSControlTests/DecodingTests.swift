import Foundation
import Testing

@testable import DTSControl

/// The `Decodable` reply types on replies captured from QEMU 7.2 and qemu-ga 7.2 (Debian 12), and
/// the protocol errors a malformed reply gives.
@Suite struct DecodingTests {
    static let endpoint = ControlEndpoint(kind: .qmp, path: "/run/dts/vm0.qmp")

    /// Decodes `reply`'s `return` as the client does.
    func decode<Value: Decodable>(_ reply: String, as type: Value.Type, command: String = "query-x") throws -> Value {
        let data = Data(reply.utf8)
        guard case .object(let members) = try JSONValue.parse(data) else { throw ControlError.closed(Self.endpoint) }
        return try ControlMessage(members: members, text: data).decode(ReturnMember<Value>.self, on: Self.endpoint, what: "\(command) reply").value
    }

    @Test func greeting() throws {
        let text = #"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}"#
        let greeting = try JSONDecoder().decode(QMPGreeting.self, from: Data(text.utf8))
        #expect(greeting.version == "7.2.22")
        #expect(greeting.package == "Debian 1:7.2+dfsg-7+deb12u18+b3")
        #expect(greeting.capabilities == ["oob"])
    }

    @Test func statusCPUsChardevsMemdevs() throws {
        let status = try decode(#"{"return": {"status": "prelaunch", "singlestep": false, "running": false}}"#, as: QMPStatus.self)
        #expect(status == QMPStatus(running: false, status: "prelaunch"))

        let cpus = try decode(#"{"return": [{"thread-id": 8766, "props": {"core-id": 0, "thread-id": 0, "node-id": 0, "socket-id": 0}, "qom-path": "/machine/unattached/device[0]", "cpu-index": 0, "target": "x86_64"}, {"thread-id": 8767, "qom-path": "/machine/unattached/device[2]", "cpu-index": 1, "target": "x86_64"}]}"#, as: [QMPCPU].self)
        #expect(cpus.map(\.cpuIndex) == [0, 1] && cpus.map(\.threadID) == [8766, 8767])
        #expect(cpus[0].qomPath == "/machine/unattached/device[0]" && cpus[0].target == "x86_64")
        #expect(cpus[0].props == ["core-id": 0, "thread-id": 0, "node-id": 0, "socket-id": 0])
        #expect(cpus[1].props.isEmpty)

        let chardevs = try decode(#"{"return": [{"frontend-open": true, "filename": "unix:/tmp/qmpcap.sock,server=on", "label": "compat_monitor0"}, {"frontend-open": false, "filename": "disconnected:unix:/tmp/qgacap.sock,server=on", "label": "qga0"}]}"#, as: [QMPChardev].self)
        #expect(chardevs == [
            QMPChardev(label: "compat_monitor0", filename: "unix:/tmp/qmpcap.sock,server=on", frontendOpen: true),
            QMPChardev(label: "qga0", filename: "disconnected:unix:/tmp/qgacap.sock,server=on", frontendOpen: false),
        ])

        let memdevs = try decode(#"{"return": [{"share": true, "reserve": true, "prealloc": false, "host-nodes": [], "size": 18446744073709551615, "merge": true, "dump": true, "policy": "default", "id": "mem"}]}"#, as: [QMPMemdev].self)
        #expect(memdevs == [QMPMemdev(id: "mem", size: .max, share: true, prealloc: false, merge: true, dump: true,
                                      policy: "default", hostNodes: [], reserve: true)])
    }

    @Test func pciFlattensBridgesAndKeepsOptionalIDs() throws {
        let reply = #"{"return": [{"bus": 0, "devices": [{"irq_pin": 0, "bus": 0, "qdev_id": "", "slot": 0, "class_info": {"class": 1536, "desc": "Host bridge"}, "id": {"device": 4663, "subsystem-vendor": 6900, "vendor": 32902, "subsystem": 4352}, "function": 0, "regions": []}, {"irq_pin": 1, "bus": 0, "qdev_id": "", "irq": 0, "slot": 2, "class_info": {"class": 1920}, "id": {"device": 4099, "subsystem-vendor": 6900, "vendor": 6900, "subsystem": 3}, "function": 0, "regions": []}, {"irq_pin": 1, "bus": 0, "pci_bridge": {"bus": {"number": 0, "secondary": 1, "subordinate": 1}, "devices": [{"bus": 1, "qdev_id": "nic1", "slot": 3, "class_info": {"class": 512, "desc": "Ethernet controller"}, "id": {"device": 4110, "vendor": 32902}, "function": 0, "regions": []}]}, "qdev_id": "br0", "irq": 0, "slot": 4, "class_info": {"class": 1540, "desc": "PCI bridge"}, "id": {"device": 1, "vendor": 6966}, "function": 0, "regions": []}]}]}"#
        let devices = QMPPCIBus.devices(try decode(reply, as: [QMPPCIBus].self))
        #expect(devices.map(\.address.description) == ["0000:00:00.0", "0000:00:02.0", "0000:00:04.0", "0000:01:03.0"])
        #expect(devices[0].qdevID == nil && devices[0].classDescription == "Host bridge" && devices[0].classCode == 0x600)
        #expect(devices[0].vendorDevice == "8086:1237" && devices[0].subsystemVendorID == 0x1af4 && devices[0].subsystemID == 0x1100)
        #expect(devices[1].classDescription == nil && devices[1].classCode == 0x780)
        #expect(devices[2].qdevID == "br0" && devices[2].subsystemID == nil)
        #expect(devices[3].qdevID == "nic1" && devices[3].vendorDevice == "8086:100e")
        #expect(PCIMap(devices: devices)["nic1"]?.description == "0000:01:03.0")
    }

    @Test func guestAgentReplies() throws {
        let interfaces = try decode(#"{"return": [{"name": "lo", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}, {"ip-address-type": "ipv6", "ip-address": "::1", "prefix": 128}], "statistics": {"tx-packets": 40638, "tx-errs": 0}, "hardware-address": "00:00:00:00:00:00"}, {"name": "ifb0", "hardware-address": "26:19:4d:b0:f9:4e"}]}"#, as: [GuestNetworkInterface].self)
        #expect(interfaces.map(\.name) == ["lo", "ifb0"])
        #expect(interfaces[0].ipv4Addresses == [GuestIPAddress(family: .ipv4, address: "127.0.0.1", prefix: 8)])
        #expect(interfaces[0].ipv6Addresses.map(\.address) == ["::1"])
        #expect(interfaces[1].addresses.isEmpty && interfaces[1].hardwareAddress == "26:19:4d:b0:f9:4e")

        let status = try decode(#"{"return": {"exitcode": 3, "err-data": "ZXJyCg==", "out-data": "aGkK", "err-truncated": false, "out-truncated": false, "exited": true}}"#, as: GuestExecStatus.self)
        #expect(status.exited && status.exitCode == 3 && status.signal == nil)
        #expect(status.stdoutText == "hi\n" && status.stderrText == "err\n" && !status.stdoutTruncated)
        let running = try decode(#"{"return": {"exited": false}}"#, as: GuestExecStatus.self)
        #expect(!running.exited && running.stdout.isEmpty && running.exitCode == nil)

        let info = try decode(#"{"return": {"version": "7.2.22", "supported_commands": [{"enabled": true, "name": "guest-ping", "success-response": true}, {"enabled": false, "name": "guest-shutdown", "success-response": false}]}}"#, as: GuestAgentInfo.self)
        #expect(info.version == "7.2.22" && info.isEnabled("guest-ping") && !info.isEnabled("guest-shutdown"))
        #expect(info.supportedCommands[1].successResponse == false)

        let read = try decode(#"{"return": {"count": 3, "buf-b64": "YWJj", "eof": true}}"#, as: GuestAgentReply.FileRead.self)
        #expect(read.data == Data("abc".utf8) && read.eof)
    }

    @Test func malformedRepliesNameTheMember() {
        func problem<Value: Decodable>(_ reply: String, as type: Value.Type, command: String) -> String {
            do {
                _ = try decode(reply, as: type, command: command)
                return "decoded"
            } catch {
                return "\(error)"
            }
        }
        #expect(problem(#"{"return": {"status": "running"}}"#, as: QMPStatus.self, command: "query-status")
            == "QMP socket /run/dts/vm0.qmp: protocol error: query-status reply: return.running is missing")
        #expect(problem(#"{"return": [{"cpu-index": "0", "thread-id": 1, "qom-path": "/x"}]}"#, as: [QMPCPU].self, command: "query-cpus-fast")
            == "QMP socket /run/dts/vm0.qmp: protocol error: query-cpus-fast reply: return[0].cpu-index is not Int")
        #expect(problem(#"{"return": [{"name": "eth0", "ip-addresses": [{"ip-address-type": "ipv7", "ip-address": "x", "prefix": 1}]}]}"#,
                        as: [GuestNetworkInterface].self, command: "guest-network-get-interfaces")
            .hasPrefix("QMP socket /run/dts/vm0.qmp: protocol error: guest-network-get-interfaces reply: return[0].ip-addresses[0].ip-address-type: "))
        #expect(problem(#"{"return": {"exited": true, "out-data": "not base64!"}}"#, as: GuestExecStatus.self, command: "guest-exec-status")
            .hasPrefix("QMP socket /run/dts/vm0.qmp: protocol error: guest-exec-status reply: return.out-data: "))
    }

    @Test func eventsKeepTheirDataGeneric() throws {
        let text = #"{"timestamp": {"seconds": 1790000000, "microseconds": 250000}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}"#
        let event = try JSONDecoder().decode(QMPEventMessage.self, from: Data(text.utf8))
        #expect(event.event == "SHUTDOWN")
        #expect(event.data?["reason"] == "guest-shutdown")
        #expect(event.date == Date(timeIntervalSince1970: 1_790_000_000.25))
    }
}
