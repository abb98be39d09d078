@testable import DTS
import Foundation
import Testing

@Suite struct BackendParserTests {
    @Test func ovsStatisticsMap() {
        let c = OVSDPDKBackend.parseStatistics("{collisions=0, rx_bytes=4200, rx_crc_err=0, rx_dropped=3, rx_errors=1, rx_packets=42, tx_bytes=100, tx_dropped=0, tx_errors=2, tx_packets=1}")
        #expect(c.rxPackets == 42 && c.rxBytes == 4200 && c.rxDropped == 3 && c.rxErrors == 1)
        #expect(c.txPackets == 1 && c.txBytes == 100 && c.txErrors == 2)
        #expect(c.raw["rx_crc_err"] == 0 && c.raw.count == 10)
        #expect(OVSDPDKBackend.parseStatistics("{}") == PortCounters())
    }

    @Test func ipLinkJSON() throws {
        let json = #"[{"ifindex":5,"ifname":"vu0","stats64":{"rx":{"bytes":1000,"packets":10,"errors":0,"dropped":1},"tx":{"bytes":2000,"packets":20,"errors":3,"dropped":0}}}]"#
        let c = try #require(Tester.parseLinkStatistics(json))
        #expect(c.rxPackets == 10 && c.rxBytes == 1000 && c.rxDropped == 1)
        #expect(c.txPackets == 20 && c.txBytes == 2000 && c.txErrors == 3)
        #expect(Tester.parseLinkStatistics("not json") == nil)
    }
}

@Suite struct OVSDumpPortsParserTests {
    @Test func dumpPorts() throws {
        let text = """
            OFPST_PORT reply (xid=0x4): 1 ports
              port  dbx1: rx pkts=23, bytes=1610, drop=?, errs=?, frame=?, over=?, crc=?
                       tx pkts=3, bytes=294, drop=1, errs=0, coll=?
            """
        let c = try #require(OVSDPDKBackend.parseDumpPorts(text))
        #expect(c.rxPackets == 23 && c.rxBytes == 1610 && c.rxDropped == 0)
        #expect(c.txPackets == 3 && c.txBytes == 294 && c.txDropped == 1)
        #expect(OVSDPDKBackend.parseDumpPorts("ovs-ofctl: br0 is not a bridge") == nil)
    }
}

@Suite struct FrameSpecTests {
    @Test func encodesForTheHelper() throws {
        let spec = FrameSpec(ether: EthernetSpec(dst: "00:00:20:00:00:20"), ip: IPv4Spec(src: "10.0.0.1", dst: "10.0.0.2"),
                             l4: .udp(sport: 1, dport: 2, checksum: 0x1234), payload: [0xde, 0xad],
                             vxlan: VXLANEncapsulation(vni: 1000, outerEther: EthernetSpec(), outerIP: IPv4Spec(src: "1.1.1.1", dst: "2.2.2.2")))
        let object = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(spec)) as? [String: Any])
        #expect(object["payload_hex"] as? String == "dead")
        let l4 = try #require(object["l4"] as? [String: Any])
        #expect(l4["proto"] as? String == "udp" && l4["checksum"] as? Int == 0x1234)
        let vxlan = try #require(object["vxlan"] as? [String: Any])
        #expect(vxlan["vni"] as? Int == 1000 && vxlan["sport"] as? Int == 4790 && vxlan["dport"] as? Int == 4789)
    }

    @Test func decodesCapturedFrames() throws {
        let json = #"[{"length": 60, "layers": ["Ether", "IP", "UDP", "VXLAN", "Ether", "IP", "UDP", "Raw"], "ether": {"src": "a", "dst": "b", "type": 2048}, "ip": {"src": "1.1.1.1", "dst": "2.2.2.2", "proto": 17, "ttl": 64, "checksum": 1, "checksum_ok": true}, "udp": {"sport": 4790, "dport": 4789, "checksum": 0, "checksum_ok": true}, "vxlan": {"vni": 1000}, "inner": {"length": 40, "layers": ["Ether"], "payload_hex": "0aff"}}]"#
        let frames = try CapturedFrame.decodeList(json)
        #expect(frames.count == 1 && frames[0].vxlan?.vni == 1000 && frames[0].ip?.checksumOK == true)
        #expect(frames[0].inner?.payload == [0x0a, 0xff] && frames[0].inner?.ip == nil)
        #expect(throws: BackendError.self) { try CapturedFrame.decodeList("Traceback (most recent call last):") }
    }
}
