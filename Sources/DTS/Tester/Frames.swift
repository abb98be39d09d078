import Foundation

/// A frame for the tester to send: Ethernet / IPv4 / UDP or TCP / payload, optionally VXLAN-encapsulated.
///
/// Encoded as JSON and handed to the packet helper as one argument; values never become code.
public struct FrameSpec: Codable, Sendable, Equatable {
    /// Ethernet addresses (of the inner frame when ``vxlan`` is set).
    public var ether: EthernetSpec
    /// IPv4 header, if any.
    public var ip: IPv4Spec?
    /// UDP or TCP header, if any.
    public var l4: L4Spec?
    /// Payload bytes as hex.
    public var payloadHex: String
    /// VXLAN encapsulation around the frame above.
    public var vxlan: VXLANEncapsulation?

    /// Creates a frame spec.
    public init(ether: EthernetSpec, ip: IPv4Spec? = nil, l4: L4Spec? = nil, payload: [UInt8] = [],
                vxlan: VXLANEncapsulation? = nil) {
        self.ether = ether
        self.ip = ip
        self.l4 = l4
        self.payloadHex = payload.map { String(format: "%02x", $0) }.joined()
        self.vxlan = vxlan
    }

    enum CodingKeys: String, CodingKey {
        case ether, ip, l4, vxlan
        case payloadHex = "payload_hex"
    }
}

/// Ethernet addresses; `nil` lets scapy choose (the interface's MAC, broadcast).
public struct EthernetSpec: Codable, Sendable, Equatable {
    /// Source MAC.
    public var src: String?
    /// Destination MAC.
    public var dst: String?

    /// Creates an Ethernet spec.
    public init(src: String? = nil, dst: String? = nil) {
        self.src = src
        self.dst = dst
    }
}

/// An IPv4 header.
public struct IPv4Spec: Codable, Sendable, Equatable {
    /// Source address.
    public var src: String
    /// Destination address.
    public var dst: String
    /// TTL (scapy's default when `nil`).
    public var ttl: Int?
    /// A forced header checksum (e.g. a wrong one); computed when `nil`.
    public var checksum: Int?

    /// Creates an IPv4 spec.
    public init(src: String, dst: String, ttl: Int? = nil, checksum: Int? = nil) {
        self.src = src
        self.dst = dst
        self.ttl = ttl
        self.checksum = checksum
    }
}

/// A UDP or TCP header.
public struct L4Spec: Codable, Sendable, Equatable {
    /// The transport protocol.
    public enum Proto: String, Codable, Sendable { case udp, tcp }
    /// `udp` or `tcp`.
    public var proto: Proto
    /// Source port.
    public var sport: Int
    /// Destination port.
    public var dport: Int
    /// A forced checksum (e.g. a wrong one); computed when `nil`.
    public var checksum: Int?

    /// A UDP header.
    public static func udp(sport: Int, dport: Int, checksum: Int? = nil) -> L4Spec {
        L4Spec(proto: .udp, sport: sport, dport: dport, checksum: checksum)
    }

    /// A TCP header.
    public static func tcp(sport: Int, dport: Int, checksum: Int? = nil) -> L4Spec {
        L4Spec(proto: .tcp, sport: sport, dport: dport, checksum: checksum)
    }
}

/// The outer headers of a VXLAN-encapsulated frame.
public struct VXLANEncapsulation: Codable, Sendable, Equatable {
    /// VXLAN network identifier.
    public var vni: UInt32
    /// Outer Ethernet and IPv4 headers (IPv4 is required).
    public var outer: Outer
    /// Outer UDP source port (not 49152: tcpdump misreads VXLAN from that port).
    public var sport: Int
    /// Outer UDP destination port.
    public var dport: Int

    /// The outer Ethernet and IPv4 headers.
    public struct Outer: Codable, Sendable, Equatable {
        /// Outer Ethernet.
        public var ether: EthernetSpec
        /// Outer IPv4.
        public var ip: IPv4Spec
    }

    /// Creates a VXLAN encapsulation.
    public init(vni: UInt32, outerEther: EthernetSpec, outerIP: IPv4Spec, sport: Int = 4790, dport: Int = 4789) {
        self.vni = vni
        self.outer = Outer(ether: outerEther, ip: outerIP)
        self.sport = sport
        self.dport = dport
    }
}

/// A frame the tester received, decoded by scapy.
public final class CapturedFrame: Decodable, Sendable {
    /// Frame length in bytes.
    public let length: Int
    /// Layer names, outermost first (`Ether`, `IP`, `UDP`, `VXLAN`, ...).
    public let layers: [String]
    /// Ethernet header.
    public let ether: Ethernet?
    /// IPv4 header.
    public let ip: IPv4?
    /// UDP header.
    public let udp: Transport?
    /// TCP header.
    public let tcp: Transport?
    /// VXLAN header.
    public let vxlan: VXLAN?
    /// The encapsulated frame of a VXLAN packet.
    public let inner: CapturedFrame?
    /// The payload (innermost `Raw`) as hex.
    public let payloadHex: String?

    /// Ethernet fields.
    public struct Ethernet: Decodable, Sendable, Equatable {
        /// Source MAC.
        public let src: String
        /// Destination MAC.
        public let dst: String
        /// EtherType.
        public let type: Int
    }

    /// IPv4 fields.
    public struct IPv4: Decodable, Sendable, Equatable {
        /// Source address.
        public let src: String
        /// Destination address.
        public let dst: String
        /// Protocol number.
        public let proto: Int
        /// TTL.
        public let ttl: Int
        /// The header checksum as received.
        public let checksum: Int?
        /// Whether it is right (`nil` if it could not be checked).
        public let checksumOK: Bool?

        enum CodingKeys: String, CodingKey {
            case src, dst, proto, ttl, checksum
            case checksumOK = "checksum_ok"
        }
    }

    /// UDP or TCP fields.
    public struct Transport: Decodable, Sendable, Equatable {
        /// Source port.
        public let sport: Int
        /// Destination port.
        public let dport: Int
        /// The checksum as received.
        public let checksum: Int?
        /// Whether it is right (UDP checksum 0 counts as right; `nil` if it could not be checked).
        public let checksumOK: Bool?

        enum CodingKeys: String, CodingKey {
            case sport, dport, checksum
            case checksumOK = "checksum_ok"
        }
    }

    /// VXLAN fields.
    public struct VXLAN: Decodable, Sendable, Equatable {
        /// VXLAN network identifier.
        public let vni: UInt32
    }

    enum CodingKeys: String, CodingKey {
        case length, layers, ether, ip, udp, tcp, vxlan, inner
        case payloadHex = "payload_hex"
    }

    /// The payload bytes.
    public var payload: [UInt8] {
        guard let hex = payloadHex else { return [] }
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex, let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex) {
            if let byte = UInt8(hex[index..<next], radix: 16) { bytes.append(byte) }
            index = next
        }
        return bytes
    }

    /// Decodes the helper's JSON array.
    static func decodeList(_ json: String) throws -> [CapturedFrame] {
        do {
            return try JSONDecoder().decode([CapturedFrame].self, from: Data(json.utf8))
        } catch {
            throw BackendError(component: "tester", step: "decode captured frames",
                               detail: "\(error); helper output: \(HostCommands.tail(json))")
        }
    }
}
