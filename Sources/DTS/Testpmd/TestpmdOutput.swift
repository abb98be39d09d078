/// A port's link state in testpmd (`Link status: up`).
public enum TestpmdLinkStatus: String, Sendable, Equatable {
    case up, down
}

/// `show port info N`, typed (DTS's `PmdOutput.get_port_*` readers).
public struct TestpmdPortInfo: Sendable, Equatable {
    /// The port id.
    public var port: Int
    /// Every `Key: value` line of the block, by key (`MAC address`, `Link status`, `MTU`, ...).
    public var fields: [String: String]

    /// `MAC address`, as testpmd prints it (upper case).
    public var mac: String? { fields["MAC address"] }
    /// `Device name`, e.g. `net_vhost0` or `0000:00:04.0`.
    public var deviceName: String? { fields["Device name"] }
    /// `Driver name`, e.g. `net_vhost`, `net_virtio`.
    public var driverName: String? { fields["Driver name"] }
    /// `Devargs`.
    public var devargs: String? { fields["Devargs"] }
    /// `Link status`.
    public var linkStatus: TestpmdLinkStatus? { fields["Link status"].flatMap { TestpmdLinkStatus(rawValue: $0.lowercased()) } }
    /// `Link speed`, as printed (`10 Gbps`, `Unknown`, `None`).
    public var linkSpeed: String? { fields["Link speed"] }
    /// `MTU`.
    public var mtu: Int? { fields["MTU"].flatMap { Int($0) } }
    /// `Promiscuous mode`.
    public var promiscuous: Bool? { fields["Promiscuous mode"].map { $0 == "enabled" } }
    /// `Current number of RX queues`.
    public var rxQueues: Int? { fields["Current number of RX queues"].flatMap { Int($0) } }
    /// `Current number of TX queues`.
    public var txQueues: Int? { fields["Current number of TX queues"].flatMap { Int($0) } }
    /// `Maximum configurable length of RX packet`.
    public var maxRxPacketLength: UInt64? { fields["Maximum configurable length of RX packet"].flatMap { UInt64($0) } }

    public init(port: Int, fields: [String: String]) {
        self.port = port
        self.fields = fields
    }
}

/// `show port stats N`: the counters and testpmd's throughput since the previous `show`.
public struct TestpmdPortStats: Sendable, Equatable {
    /// The port id.
    public var port: Int
    /// RX/TX packets, bytes, errors; `rxDropped` is `RX-missed`; `raw` has every counter by its
    /// testpmd name (`RX-nombuf`, ...).
    public var counters: PortCounters
    /// `Rx-pps`, `Tx-pps`, `Rx-bps`, `Tx-bps` (testpmd's rate since the last `show port stats`),
    /// when printed.
    public var rxPPS: UInt64?, txPPS: UInt64?, rxBPS: UInt64?, txBPS: UInt64?

    public init(port: Int, counters: PortCounters, rxPPS: UInt64? = nil, txPPS: UInt64? = nil, rxBPS: UInt64? = nil, txBPS: UInt64? = nil) {
        self.port = port
        self.counters = counters
        (self.rxPPS, self.txPPS, self.rxBPS, self.txBPS) = (rxPPS, txPPS, rxBPS, txBPS)
    }
}

/// `show port xstats N`: the extended counters, in testpmd's order.
public struct TestpmdXstats: Sendable, Equatable {
    /// The port id.
    public var port: Int
    /// Counter names in the order printed.
    public var names: [String]
    /// Counters by name (`rx_q0_size_1519_max_packets`, ...).
    public var values: [String: UInt64]

    public init(port: Int, names: [String] = [], values: [String: UInt64] = [:]) {
        self.port = port
        self.names = names
        self.values = values
    }

    /// One counter, `nil` if the port has none of that name.
    public subscript(name: String) -> UInt64? { values[name] }

    /// The sum over every queue of a per-queue counter: `sum("rx", "size_1519_max_packets")` adds
    /// `rx_q0_size_1519_max_packets`, `rx_q1_...`.
    public func sum(_ direction: String, _ counter: String) -> UInt64 {
        var total: UInt64 = 0
        for (name, value) in values where name.hasPrefix(direction + "_q") && name.hasSuffix("_" + counter) {
            let queue = name.dropFirst(direction.count + 2).dropLast(counter.count + 1)
            if !queue.isEmpty, queue.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }) { total &+= value }
        }
        return total
    }
}

/// What `stop` prints: per-port forward statistics and, with several streams, per-stream ones.
public struct TestpmdForwardStats: Sendable, Equatable {
    /// One `Forward statistics for port N` block.
    public struct Port: Sendable, Equatable {
        public var rxPackets: UInt64 = 0, rxDropped: UInt64 = 0, txPackets: UInt64 = 0, txDropped: UInt64 = 0
        public init(rxPackets: UInt64 = 0, rxDropped: UInt64 = 0, txPackets: UInt64 = 0, txDropped: UInt64 = 0) {
            (self.rxPackets, self.rxDropped, self.txPackets, self.txDropped) = (rxPackets, rxDropped, txPackets, txDropped)
        }
    }
    /// One `Forward Stats for RX Port= A/Queue= Q -> TX Port= B/Queue= R` block.
    public struct Stream: Sendable, Equatable {
        public var rxPort: Int, rxQueue: Int, txPort: Int, txQueue: Int
        public var rxPackets: UInt64 = 0, txPackets: UInt64 = 0, txDropped: UInt64 = 0
        public init(rxPort: Int, rxQueue: Int, txPort: Int, txQueue: Int, rxPackets: UInt64 = 0, txPackets: UInt64 = 0, txDropped: UInt64 = 0) {
            (self.rxPort, self.rxQueue, self.txPort, self.txQueue) = (rxPort, rxQueue, txPort, txQueue)
            (self.rxPackets, self.txPackets, self.txDropped) = (rxPackets, txPackets, txDropped)
        }
    }
    /// Per port.
    public var ports: [Int: Port] = [:]
    /// Per stream (printed only when a port has more than one queue or there are several streams).
    public var streams: [Stream] = []

    public init(ports: [Int: Port] = [:], streams: [Stream] = []) {
        self.ports = ports
        self.streams = streams
    }
}

/// Parsers of testpmd 22.11's interactive output. Each takes the text a command printed, which
/// may be interleaved with asynchronous lines (`VHOST_CONFIG: ...`, `Port 0: link state change
/// event`): only lines of the expected shape inside the expected block are read.
public enum TestpmdParser {
    /// Lines without trailing white space (split by Unicode scalar; `\r` dropped).
    public static func lines(_ text: String) -> [String] {
        text.scalarSplit("\n").map { line in
            var scalars = Array(line.unicodeScalars)
            while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() }
            return ConfigText.string(scalars)
        }
    }

    /// The whitespace-separated words of a line.
    public static func words(_ line: String) -> [String] {
        line.unicodeScalars.split(whereSeparator: { $0.properties.isWhitespace }).map { ConfigText.string($0) }
    }

    /// The number that follows `marker` in a header line such as `... for port 3 ...`.
    static func number(after marker: String, in line: String) -> Int? {
        guard let range = line.range(of: marker) else { return nil }
        let rest = line[range.upperBound...].unicodeScalars.drop(while: { $0 == " " || $0 == "=" })
        return ConfigText.decimal(ConfigText.string(rest.prefix(while: { ("0"..."9").contains($0) })))
    }

    /// `Key: value` counters on one line (`RX-packets: 17   RX-missed: 2   RX-bytes:  1530`).
    static func counters(_ line: String) -> [(String, UInt64)] {
        let words = words(line)
        var result: [(String, UInt64)] = []
        var index = 0
        while index + 1 < words.count {
            if words[index].hasSuffix(":"), let value = UInt64(words[index + 1]) {
                result.append((String(words[index].dropLast()), value))
                index += 2
            } else {
                index += 1
            }
        }
        return result
    }

    /// `show port info N` / `show port info all`: one record per `Infos for port N` block.
    public static func portInfo(_ text: String) -> [TestpmdPortInfo] {
        var result: [TestpmdPortInfo] = []
        var current: TestpmdPortInfo?
        for line in lines(text) {
            if line.contains("Infos for port"), let port = number(after: "Infos for port", in: line) {
                if let current { result.append(current) }
                current = TestpmdPortInfo(port: port, fields: [:])
                continue
            }
            guard current != nil else { continue }
            if line.hasPrefix("testpmd>") {
                result.append(current!)
                current = nil
                continue
            }
            // Only unindented "Key: value" lines belong to the block (VLAN offload details are indented).
            guard let first = line.unicodeScalars.first, !first.properties.isWhitespace,
                  let colon = line.range(of: ": ") else { continue }
            let key = String(line[..<colon.lowerBound])
            guard !key.hasPrefix("VHOST_CONFIG"), !key.hasPrefix("Port "), current!.fields[key] == nil else { continue }
            current!.fields[key] = line[colon.upperBound...].scalarTrimmed
        }
        if let current { result.append(current) }
        return result
    }

    /// `show port stats N` / `show port stats all`, by port id.
    public static func portStats(_ text: String) -> [Int: TestpmdPortStats] {
        var raw: [Int: [String: UInt64]] = [:]
        var current: Int?
        for line in lines(text) {
            if line.contains("NIC statistics for port"), let port = number(after: "NIC statistics for port", in: line) {
                current = port
                raw[port] = [:]
                continue
            }
            guard let port = current else { continue }
            if line.contains("#####") && !line.contains("statistics") { current = nil; continue }
            for (key, value) in counters(line) where raw[port]?[key] == nil { raw[port]?[key] = value }
        }
        let names = PortCounters.Names(rxPackets: "RX-packets", txPackets: "TX-packets", rxBytes: "RX-bytes", txBytes: "TX-bytes",
                                       rxErrors: "RX-errors", txErrors: "TX-errors", rxDropped: "RX-missed", txDropped: nil)
        return Dictionary(uniqueKeysWithValues: raw.map { port, values in
            (port, TestpmdPortStats(port: port, counters: PortCounters(raw: values, names: names),
                                    rxPPS: values["Rx-pps"], txPPS: values["Tx-pps"], rxBPS: values["Rx-bps"], txBPS: values["Tx-bps"]))
        })
    }

    /// `show port xstats N`: the counters of the first `NIC extended statistics for port N` block.
    /// `nil` when there is no such block or testpmd could not read them (`Error: Cannot get ...`).
    public static func xstats(_ text: String) -> TestpmdXstats? {
        var result: TestpmdXstats?
        for line in lines(text) {
            if line.contains("NIC extended statistics for port"), let port = number(after: "NIC extended statistics for port", in: line) {
                if result != nil { break }
                result = TestpmdXstats(port: port)
                continue
            }
            guard result != nil else { continue }
            if line.hasPrefix("Error:") { return nil }
            if line.hasPrefix("testpmd>") { break }
            let parts = words(line)
            guard parts.count == 2, parts[0].hasSuffix(":"), let value = UInt64(parts[1]) else { continue }
            let name = String(parts[0].dropLast())
            guard !name.isEmpty, name.unicodeScalars.allSatisfy({ Self.counterNameScalars.contains($0) }), result!.values[name] == nil else { continue }
            result!.names.append(name)
            result!.values[name] = value
        }
        return result
    }

    private static let counterNameScalars = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-[].".unicodeScalars)

    /// What `stop` printed.
    public static func forwardStats(_ text: String) -> TestpmdForwardStats {
        var result = TestpmdForwardStats()
        enum Block { case port(Int), stream(Int), none }
        var block = Block.none
        for line in lines(text) {
            if line.contains("Forward statistics for port"), let port = number(after: "Forward statistics for port", in: line) {
                block = .port(port)
                result.ports[port] = TestpmdForwardStats.Port()
                continue
            }
            if line.contains("Forward Stats for RX Port"),
               let rxPort = number(after: "RX Port", in: line), let rxQueue = number(after: "/Queue", in: line),
               let arrow = line.range(of: "->") {
                let tail = String(line[arrow.upperBound...])
                if let txPort = number(after: "TX Port", in: tail), let txQueue = number(after: "/Queue", in: tail) {
                    result.streams.append(TestpmdForwardStats.Stream(rxPort: rxPort, rxQueue: rxQueue, txPort: txPort, txQueue: txQueue))
                    block = .stream(result.streams.count - 1)
                    continue
                }
            }
            if line.contains("Accumulated forward statistics") { block = .none; continue }
            let values = counters(line)
            guard !values.isEmpty else { continue }
            switch block {
            case .port(let port):
                for (key, value) in values {
                    switch key {
                    case "RX-packets": result.ports[port]?.rxPackets = value
                    case "RX-dropped": result.ports[port]?.rxDropped = value
                    case "TX-packets": result.ports[port]?.txPackets = value
                    case "TX-dropped": result.ports[port]?.txDropped = value
                    default: break
                    }
                }
            case .stream(let index):
                for (key, value) in values {
                    switch key {
                    case "RX-packets": result.streams[index].rxPackets = value
                    case "TX-packets": result.streams[index].txPackets = value
                    case "TX-dropped": result.streams[index].txDropped = value
                    default: break
                    }
                }
            case .none:
                break
            }
        }
        return result
    }

    /// The ports testpmd announced while starting (`Port 0: 56:48:4F:53:54:00`), by port id.
    public static func startupPorts(_ text: String) -> [Int: String] {
        var result: [Int: String] = [:]
        for line in lines(text) where line.hasPrefix("Port ") {
            let parts = words(line)
            guard parts.count == 3, parts[1].hasSuffix(":"), let port = Int(parts[1].dropLast()),
                  parts[2].unicodeScalars.count == 17, parts[2].unicodeScalars.filter({ $0 == ":" }).count == 5 else { continue }
            result[port] = parts[2]
        }
        return result
    }

    /// Whether testpmd refused a command (`Bad arguments`, `Invalid port 7`, `Unknown parameter`, ...).
    public static func refusal(_ text: String) -> String? {
        for line in lines(text) {
            let trimmed = line.scalarTrimmed
            for marker in ["Bad arguments", "Invalid port", "Invalid ", "Unknown parameter", "invalid ", "Command not found"]
            where trimmed.hasPrefix(marker) {
                return trimmed
            }
        }
        return nil
    }
}
