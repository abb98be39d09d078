import Foundation
import Testing

@testable import DTSControl

/// Parsers and value types, on text captured from QEMU 7.2 (Debian 12).
@Suite struct ParserTests {
    /// `info pci` of `-machine pc -nodefaults` with a virtio-net `pt_0` and an e1000 `mgmt` at 0x1f.
    static let infoPCI =
        "  Bus  0, device   0, function 0:\r\n    Host bridge: PCI device 8086:1237\r\n      PCI subsystem 1af4:1100\r\n      id \"\"\r\n  Bus  0, device   1, function 0:\r\n    ISA bridge: PCI device 8086:7000\r\n      PCI subsystem 1af4:1100\r\n      id \"\"\r\n  Bus  0, device   1, function 1:\r\n    IDE controller: PCI device 8086:7010\r\n      PCI subsystem 1af4:1100\r\n      BAR4: I/O at 0xffffffffffffffff [0x000e].\r\n      id \"\"\r\n  Bus  0, device   1, function 3:\r\n    Bridge: PCI device 8086:7113\r\n      PCI subsystem 1af4:1100\r\n      IRQ 0, pin A\r\n      id \"\"\r\n  Bus  0, device   2, function 0:\r\n    Ethernet controller: PCI device 1af4:1000\r\n      PCI subsystem 1af4:0001\r\n      IRQ 0, pin A\r\n      BAR0: I/O at 0xffffffffffffffff [0x001e].\r\n      BAR1: 32 bit memory at 0xffffffffffffffff [0x00000ffe].\r\n      BAR4: 64 bit prefetchable memory at 0xffffffffffffffff [0x00003ffe].\r\n      BAR6: 32 bit memory at 0xffffffffffffffff [0x0003fffe].\r\n      id \"pt_0\"\r\n  Bus  0, device  31, function 0:\r\n    Ethernet controller: PCI device 8086:100e\r\n      PCI subsystem 1af4:1100\r\n      IRQ 0, pin A\r\n      BAR0: 32 bit memory at 0xffffffffffffffff [0x0001fffe].\r\n      BAR1: I/O at 0xffffffffffffffff [0x003e].\r\n      BAR6: 32 bit memory at 0xffffffffffffffff [0x0003fffe].\r\n      id \"mgmt\"\r\n"

    static let infoUsernet =
        "Hub -1 (n0):\r\n  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n  TCP[HOST_FORWARD]   8       127.0.0.1 36389       10.0.2.15    22     0     0\r\nHub -1 (n1):\r\n  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n"

    @Test func infoPCIParses() throws {
        let devices = HMPParser.infoPCI(Self.infoPCI)
        #expect(devices.count == 6)
        #expect(devices.map(\.address.description) == [
            "0000:00:00.0", "0000:00:01.0", "0000:00:01.1", "0000:00:01.3", "0000:00:02.0", "0000:00:1f.0",
        ])
        let pt0 = devices[4]
        #expect(pt0.qdevID == "pt_0")
        #expect(pt0.classDescription == "Ethernet controller")
        #expect(pt0.vendorID == 0x1af4)
        #expect(pt0.deviceID == 0x1000)
        #expect(pt0.subsystemVendorID == 0x1af4)
        #expect(pt0.subsystemID == 0x0001)
        #expect(devices[5].vendorDevice == "8086:100e")
        #expect(devices[5].qdevID == "mgmt")
        #expect(devices[0].qdevID == nil)
        #expect(devices[2].classDescription == "IDE controller")

        let map = PCIMap(infoPCI: Self.infoPCI)
        #expect(map.ids == ["mgmt", "pt_0"])
        #expect(map["pt_0"]?.description == "0000:00:02.0")
        #expect(map["mgmt"]?.description == "0000:00:1f.0")
        #expect(map["pt_1"] == nil)
        #expect(throws: PCIMapError.unknownDevice(id: "pt_1", known: ["mgmt", "pt_0"])) {
            try map.address(of: "pt_1")
        }
    }

    @Test func infoPCIHandlesUnnamedClassesAndBridges() {
        let text = """
              Bus  0, device   3, function 0:
                PCI bridge: PCI device 1b36:0001
                  IRQ 0, pin A
                  BUS 0.
                  secondary bus 1.
                  subordinate bus 1.
                  IO range [0xf000, 0x0fff]
                  memory range [0xfff00000, 0x000fffff]
                  prefetchable memory range [0xfff00000, 0x000fffff]
                  BAR0: 32 bit memory at 0xffffffffffffffff [0x000000fe].
                  id "br0"
              Bus  1, device   7, function 2:
                Class 0255: PCI device 1234:abcd
                  id "odd"

            """
        let devices = HMPParser.infoPCI(text)
        #expect(devices.count == 2)
        #expect(devices[0].classDescription == "PCI bridge")
        #expect(devices[0].qdevID == "br0")
        #expect(devices[1].address == PCIAddress(bus: 1, slot: 7, function: 2))
        #expect(devices[1].classCode == 255)
        #expect(devices[1].classDescription == nil)
        #expect(devices[1].vendorDevice == "1234:abcd")
        #expect(PCIMap(devices: devices)["odd"]?.description == "0000:01:07.2")
        #expect(HMPParser.infoPCI("").isEmpty)
        #expect(HMPParser.infoPCI("unknown command: 'info pcix'\r\n").isEmpty)
    }

    @Test func infoUsernetParses() {
        let forwards = HMPParser.infoUsernet(Self.infoUsernet)
        #expect(forwards == [
            UsernetForward(
                transport: "TCP", netdev: "n0", hostAddress: "127.0.0.1", hostPort: 36389, guestAddress: "10.0.2.15",
                guestPort: 22)
        ])
        let mixed = """
            Hub -1 (mgmt):
              Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ
              TCP[ESTABLISHED]   12       10.0.2.15 51234       10.0.2.2  8080     0     0
              UDP[HOST_FORWARD]  10               * 50000       10.0.2.15  5000     0     0
              TCP[HOST_FORWARD]  11       127.0.0.1 40022       10.0.2.15    22     0     0

            """
        let parsed = HMPParser.infoUsernet(mixed)
        #expect(parsed.count == 2)
        #expect(parsed[0].transport == "UDP")
        #expect(parsed[0].hostAddress == "*")
        #expect(parsed[0].hostPort == 50000)
        #expect(parsed[1].hostPort == 40022)
        #expect(parsed.allSatisfy { $0.netdev == "mgmt" })
    }

    @Test func infoCPUsParses() {
        let cpus = HMPParser.infoCPUs("* CPU #0: thread_id=9779\r\n  CPU #1: thread_id=9780\r\n")
        #expect(cpus == [
            HMPCPU(index: 0, threadID: 9779, isCurrent: true), HMPCPU(index: 1, threadID: 9780, isCurrent: false),
        ])
    }

    @Test func pciAddressParsesAndPrints() {
        #expect(PCIAddress("0000:00:04.0") == PCIAddress(bus: 0, slot: 4, function: 0))
        #expect(PCIAddress("00:1f.7") == PCIAddress(bus: 0, slot: 31, function: 7))
        #expect(PCIAddress("0001:0a:1f.3")?.description == "0001:0a:1f.3")
        #expect(PCIAddress("00:20.0") == nil)
        #expect(PCIAddress("00:1f.8") == nil)
        #expect(PCIAddress("garbage") == nil)
        #expect(PCIAddress(bus: 0, slot: 4, function: 0) < PCIAddress(bus: 0, slot: 31, function: 0))
    }

    @Test func jsonValueRoundTrips() throws {
        let text = #"{"a": [1, 2.5, "x", true, null, {"b": -7}], "big": 134217728, "s": "q\"/"}"#
        let value = try JSONValue.parse(text)
        #expect(value["a"]?[0] == .int(1))
        #expect(value["a"]?[1] == .double(2.5))
        #expect(value["a"]?[3] == .bool(true))
        #expect(value["a"]?[4] == .null)
        #expect(value["a"]?[5]?["b"]?.intValue == -7)
        #expect(value["big"]?.intValue == 134_217_728)
        #expect(value["s"]?.stringValue == "q\"/")
        #expect(try JSONValue.parse(value.jsonText()) == value)
        #expect(!value.jsonText().contains("\n"))
        let literal: JSONValue = ["command-line": "info pci", "n": 3, "f": false, "l": [1, "two"]]
        #expect(literal.jsonText() == #"{"command-line":"info pci","f":false,"l":[1,"two"],"n":3}"#)
    }

    @Test func errorMessagesSayWhatAndWhere() {
        let qmp = ControlEndpoint(kind: .qmp, path: "/run/dts/vm0.qmp")
        let qga = ControlEndpoint(kind: .guestAgent, path: "/run/dts/vm0.qga")
        #expect(ControlError.noReply(qmp, what: "greeting", timeout: .seconds(5)).description
            == "QMP socket /run/dts/vm0.qmp: no greeting within 5 s")
        #expect(ControlError.noReply(qga, what: "reply to guest-ping", timeout: .seconds(3)).description
            == "guest agent at /run/dts/vm0.qga: no reply to guest-ping within 3 s")
        #expect(ControlError.peerClosed(qmp).description == "peer closed QMP socket /run/dts/vm0.qmp")
        #expect(ControlError.commandFailed(
            qmp, command: "query-foo", errorClass: "CommandNotFound", message: "The command query-foo has not been found"
        ).description
            == "QMP command query-foo failed: CommandNotFound: The command query-foo has not been found (QMP socket /run/dts/vm0.qmp)")
    }
}
