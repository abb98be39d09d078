import DTSSession
import Foundation
import Synchronization

/// The tester's link: a veth pair, one end in the tester's namespace.
public struct VethSpec: Sendable, Equatable {
    /// The end left on the host (DUT side), e.g. `vu0`.
    public var hostName: String
    /// The end moved into the namespace, e.g. `vu1`.
    public var namespaceName: String
    /// Address (CIDR) of the namespace end, e.g. `172.31.1.2/24`.
    public var namespaceAddress: String?
    /// Address (CIDR) of the host end; `nil` when a DPDK port (af_packet) takes it.
    public var hostAddress: String?
    /// MTU of both ends.
    public var mtu: Int?

    /// Creates a veth spec.
    public init(hostName: String, namespaceName: String, namespaceAddress: String? = nil,
                hostAddress: String? = nil, mtu: Int? = nil) {
        self.hostName = hostName
        self.namespaceName = namespaceName
        self.namespaceAddress = namespaceAddress
        self.hostAddress = hostAddress
        self.mtu = mtu
    }
}

/// A kernel VXLAN device in the tester's namespace.
public struct KernelVXLANSpec: Sendable, Equatable {
    /// Device name, e.g. `vx0`.
    public var name: String
    /// VXLAN network identifier.
    public var vni: UInt32
    /// The remote tunnel endpoint (the DUT's VTEP address).
    public var remote: String
    /// The local tunnel endpoint (an address of `underlay`).
    public var local: String
    /// UDP destination port.
    public var destinationPort: UInt16
    /// The underlay device (the namespace end of the veth).
    public var underlay: String
    /// Overlay address (CIDR), e.g. `10.10.0.2/24`.
    public var address: String?
    /// Overlay MTU (1450 leaves room for the 50-byte VXLAN header on a 1500 underlay).
    public var mtu: Int?

    /// Creates a kernel VXLAN spec.
    public init(name: String = "vx0", vni: UInt32, remote: String, local: String, destinationPort: UInt16 = 4789,
                underlay: String, address: String? = nil, mtu: Int? = 1450) {
        self.name = name
        self.vni = vni
        self.remote = remote
        self.local = local
        self.destinationPort = destinationPort
        self.underlay = underlay
        self.address = address
        self.mtu = mtu
    }
}

/// Where a tester command runs.
public enum TesterSide: Sendable, Equatable {
    /// In the tester's network namespace.
    case namespace
    /// On the host (the DUT side of the veth), in the tester's `hostNamespace` if it has one.
    case host
}

/// DTS's Tester, made from a network namespace on the host DUT: a veth pair into the namespace, an
/// optional kernel VXLAN device, and scapy/tcpdump packet tools. Created and removed by dts.
///
/// ```swift
/// let tester = Tester(session: dut.session, namespace: "tst", workDirectory: run.path,
///                     cleanup: .run(context.run))
/// try await tester.setUp(veth: VethSpec(hostName: "vu0", namespaceName: "vu1", namespaceAddress: "172.31.1.2/24"))
/// try await tester.addKernelVXLAN(KernelVXLANSpec(vni: 1000, remote: "172.31.1.1", local: "172.31.1.2",
///                                                 underlay: "vu1", address: "10.10.0.2/24"))
/// let capture = try await tester.startCapture(on: "vu0", side: .host, filter: "udp port 4789", duration: .seconds(5))
/// try await tester.send(frame, count: 100, on: "vu1")
/// let frames = try await capture.frames()
/// await tester.tearDown()
/// ```
public actor Tester {
    /// The namespace's name.
    public nonisolated let namespace: String
    /// The tester's files on the DUT (`<workDirectory>/tester-<namespace>`): the packet helper, captures.
    public nonisolated let directory: String
    /// The Python interpreter with scapy (Debian's, not a pyenv one).
    public nonisolated let python: String
    /// The network namespace of the veths' host ends and of ``TesterSide/host`` commands (an isolated
    /// ``OVSDPDKBackend``'s `networkNamespace`); `nil` is the DUT's own.
    public nonisolated let hostNamespace: String?

    /// The DUT session the tester's commands run on.
    public nonisolated let session: any DUTSession
    private let commands: HostCommands
    private let cleanup: CleanupHook
    private var registered = false
    private var created = false
    private var hostLinks: [String] = []
    private var helperInstalled = false
    private var captures: [TcpdumpCapture] = []
    private var scapyCaptures: [PacketCapture] = []
    private var captureSerial = 0

    /// Creates a tester; nothing is made until ``setUp(veth:)``.
    public init(session: any DUTSession, namespace: String, workDirectory: String, cleanup: CleanupHook,
                python: String = "/usr/bin/python3", hostNamespace: String? = nil) {
        self.namespace = namespace
        self.hostNamespace = hostNamespace
        self.directory = workDirectory + "/tester-" + namespace
        self.python = python
        self.session = session
        self.commands = HostCommands(session: session, component: "tester \(namespace)")
        self.cleanup = cleanup
    }

    private func fail(_ step: String, _ detail: String) -> BackendError {
        BackendError(component: "tester \(namespace)", step: step, detail: detail)
    }

    /// `argv` prefixed to run on `side`.
    public nonisolated func argv(_ argv: [String], on side: TesterSide = .namespace) -> [String] {
        switch side {
        case .namespace: return ["ip", "netns", "exec", namespace] + argv
        case .host: return hostNamespace.map { ["ip", "netns", "exec", $0] + argv } ?? argv
        }
    }

    /// Runs a command on `side` and returns its result whatever the status.
    public func exec(_ argv: [String], on side: TesterSide = .namespace, timeout: Duration = .seconds(30)) async throws -> ExecResult {
        try await commands.run(self.argv(argv, on: side), timeout: timeout)
    }

    /// Runs a command on `side` and throws unless it succeeded.
    @discardableResult
    public func check(_ argv: [String], on side: TesterSide = .namespace, timeout: Duration = .seconds(30)) async throws -> ExecResult {
        try await commands.check(self.argv(argv, on: side), timeout: timeout)
    }

    // MARK: Set-up

    /// Creates the namespace and the veth pair, with addresses, MTU and checksum offload off on both ends.
    /// On failure whatever was made is removed.
    public func setUp(veth: VethSpec) async throws {
        if !registered {
            registered = true
            await cleanup.register("tester namespace \(namespace)") { [self] in await self.tearDown() }
        }
        for tool in ["ip", "ethtool"] {
            guard try await commands.run(["sh", "-c", "command -v \"$1\"", "sh", tool]).succeeded else {
                throw fail("set up", "\(tool) is not installed (scripts/setup.d/vxlan.sh)")
            }
        }
        do {
            try await commands.check(["ip", "netns", "add", namespace])
            created = true
            try await commands.check(["mkdir", "-p", directory])
            try await commands.check(["ip", "link", "add", veth.hostName, "type", "veth", "peer", "name", veth.namespaceName])
            hostLinks.append(veth.hostName)
            try await commands.check(["ip", "link", "set", veth.namespaceName, "netns", namespace])
            if let hostNamespace {
                try await commands.check(["ip", "link", "set", veth.hostName, "netns", hostNamespace])
            }
            try await check(["ip", "link", "set", "lo", "up"])
            if let mtu = veth.mtu {
                try await check(["ip", "link", "set", veth.hostName, "mtu", String(mtu)], on: .host)
                try await check(["ip", "link", "set", veth.namespaceName, "mtu", String(mtu)])
            }
            if let address = veth.namespaceAddress { try await check(["ip", "addr", "add", address, "dev", veth.namespaceName]) }
            if let address = veth.hostAddress { try await check(["ip", "addr", "add", address, "dev", veth.hostName], on: .host) }
            try await check(["ethtool", "-K", veth.hostName, "tx", "off", "rx", "off"], on: .host)
            try await check(["ethtool", "-K", veth.namespaceName, "tx", "off", "rx", "off"])
            try await check(["ip", "link", "set", veth.hostName, "up"], on: .host)
            try await check(["ip", "link", "set", veth.namespaceName, "up"])
        } catch {
            await tearDown()
            throw error
        }
    }

    /// Adds a kernel VXLAN device in the namespace (`ip link add NAME type vxlan id VNI remote A local B dstport P dev U`).
    public func addKernelVXLAN(_ spec: KernelVXLANSpec) async throws {
        try await check(["ip", "link", "add", spec.name, "type", "vxlan", "id", String(spec.vni), "remote", spec.remote,
                         "local", spec.local, "dstport", String(spec.destinationPort), "dev", spec.underlay])
        if let mtu = spec.mtu { try await check(["ip", "link", "set", spec.name, "mtu", String(mtu)]) }
        if let address = spec.address { try await check(["ip", "addr", "add", address, "dev", spec.name]) }
        try await check(["ethtool", "-K", spec.name, "tx", "off", "rx", "off"])
        try await check(["ip", "link", "set", spec.name, "up"])
    }

    /// The MAC address of `interface` on `side`.
    public func macAddress(_ interface: String, on side: TesterSide = .namespace) async throws -> String {
        let output = try await check(["cat", "/sys/class/net/\(interface)/address"], on: side).output
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The kernel's counters of `interface` on `side` (`ip -s -j link show dev IF`).
    public func counters(_ interface: String, on side: TesterSide = .namespace) async throws -> PortCounters {
        let output = try await check(["ip", "-s", "-j", "link", "show", "dev", interface], on: side).output
        guard let counters = Self.parseLinkStatistics(output) else {
            throw fail("counters of \(interface)", "unexpected ip -s -j output: \(HostCommands.tail(output))")
        }
        return counters
    }

    /// Parses `ip -s -j link show` output (its first link's `stats64`).
    public static func parseLinkStatistics(_ json: String) -> PortCounters? {
        guard let data = json.data(using: .utf8),
              let links = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]],
              let stats = links.first?["stats64"] as? [String: Any],
              let rx = stats["rx"] as? [String: Any], let tx = stats["tx"] as? [String: Any] else { return nil }
        func value(_ dict: [String: Any], _ key: String) -> UInt64 { (dict[key] as? NSNumber)?.uint64Value ?? 0 }
        var counters = PortCounters(rxPackets: value(rx, "packets"), txPackets: value(tx, "packets"),
                                    rxBytes: value(rx, "bytes"), txBytes: value(tx, "bytes"),
                                    rxErrors: value(rx, "errors"), txErrors: value(tx, "errors"),
                                    rxDropped: value(rx, "dropped"), txDropped: value(tx, "dropped"))
        for (key, number) in rx { if let n = number as? NSNumber { counters.raw["rx_" + key] = n.uint64Value } }
        for (key, number) in tx { if let n = number as? NSNumber { counters.raw["tx_" + key] = n.uint64Value } }
        return counters
    }

    // MARK: Packets (scapy)

    private func installHelper() async throws -> String {
        let path = directory + "/" + PacketHelper.fileName
        if helperInstalled { return path }
        guard try await commands.run([python, "-c", "import scapy.all"], timeout: .seconds(60)).succeeded else {
            throw fail("packet tools", "\(python) cannot import scapy (apt-get install python3-scapy; scripts/setup.d/vxlan.sh)")
        }
        try await commands.check(["mkdir", "-p", directory])
        try await commands.writeFile(try PacketHelper.source(), to: path, mode: 0o755)
        helperInstalled = true
        return path
    }

    /// Sends `count` copies of `frame` out of `interface` on `side` with scapy.
    public func send(_ frame: FrameSpec, count: Int = 1, interval: Duration = .zero, on interface: String,
                     side: TesterSide = .namespace, timeout: Duration = .seconds(60)) async throws {
        let helper = try await installHelper()
        let spec = String(decoding: try JSONEncoder().encode(frame), as: UTF8.self)
        try await check([python, helper, "send", "--iface", interface, "--spec", spec,
                         "--count", String(count), "--interval", String(interval.seconds)], on: side, timeout: timeout)
    }

    /// Starts a scapy capture on `interface` (BPF `filter`) for `duration` or until `count` frames;
    /// returns once the sniffer is listening.
    public func startCapture(on interface: String, side: TesterSide = .namespace, filter: String = "",
                             duration: Duration, count: Int = 0) async throws -> PacketCapture {
        let helper = try await installHelper()
        captureSerial += 1
        let ready = directory + "/capture-\(captureSerial).ready"
        await commands.bestEffort(["rm", "-f", ready])
        let argv = self.argv([python, helper, "capture", "--iface", interface, "--filter", filter,
                              "--duration", String(duration.seconds), "--count", String(count), "--ready", ready], on: side)
        let commands = self.commands
        let ended = EndFlag()
        let task = Task {
            defer { ended.set() }
            return try await commands.check(argv, timeout: duration + .seconds(60)).output
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while !(await commands.bestEffort(["test", "-e", ready])?.succeeded ?? false) {
            if ended.isSet {
                // The helper ended without sniffing (a bad filter, a missing interface): report why.
                do { _ = try await task.value } catch { throw fail("capture on \(interface)", "\(error)") }
                throw fail("capture on \(interface)", "the sniffer ended before it started")
            }
            if ContinuousClock.now >= deadline {
                task.cancel()
                throw fail("capture on \(interface)", "the sniffer did not start within 60 s")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let capture = PacketCapture(task: task, interface: interface)
        scapyCaptures.append(capture)
        return capture
    }

    // MARK: tcpdump

    /// Starts tcpdump in the background on `interface` writing a pcap; returns once it is listening.
    public func startTcpdump(on interface: String, side: TesterSide = .namespace, filter: [String] = []) async throws -> TcpdumpCapture {
        try await commands.check(["mkdir", "-p", directory])
        captureSerial += 1
        let base = directory + "/tcpdump-\(captureSerial)"
        let capture = TcpdumpCapture(pcap: base + ".pcap", pidFile: base + ".pid", log: base + ".log", interface: interface)
        // A fixed script; every value is a positional argument. setsid keeps tcpdump out of the exec's session.
        let script = "pidfile=$1; log=$2; shift 2; setsid \"$@\" >\"$log\" 2>&1 </dev/null & echo $! >\"$pidfile\""
        let tcpdump = self.argv(["tcpdump", "-n", "-U", "-i", interface, "-w", capture.pcap] + filter, on: side)
        try await commands.check(["sh", "-c", script, "sh", capture.pidFile, capture.log] + tcpdump)
        captures.append(capture)
        let deadline = ContinuousClock.now + .seconds(20)
        while true {
            let log = await commands.readFile(capture.log) ?? ""
            if log.contains("listening on") { break }
            var alive = false
            if let pid = await commands.pid(fromFile: capture.pidFile) { alive = await commands.isAlive(pid) }
            if ContinuousClock.now >= deadline || !alive {
                await stopTcpdump(capture)
                throw fail("tcpdump on \(interface)", "not listening: \(HostCommands.tail(log))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return capture
    }

    /// Stops a tcpdump (SIGINT, bounded, then SIGKILL). Idempotent.
    public func stopTcpdump(_ capture: TcpdumpCapture) async {
        await commands.stop(pidFile: capture.pidFile, request: .signal("INT", within: .seconds(5)), grace: .seconds(1))
        await commands.bestEffort(["rm", "-f", capture.pidFile])
    }

    /// Writes `count` copies of `frame`, padded to `frameSize` bytes on the wire (CRC included, as
    /// DTS counts frame sizes), into a pcap at `path` on the DUT with scapy: the DPDK generator's
    /// source (``TrafficGenerator``). Returns the frame's length in the file (without CRC).
    @discardableResult
    public func writePcap(_ frame: FrameSpec, frameSize: Int, count: Int = 64, to path: String) async throws -> Int {
        let helper = try await installHelper()
        let spec = String(decoding: try JSONEncoder().encode(frame), as: UTF8.self)
        let output = try await check([python, helper, "pcap", "--spec", spec, "--size", String(frameSize), "--count", String(count),
                                      "--out", path], on: .host, timeout: .seconds(60)).output
        guard let data = output.data(using: .utf8), let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let length = (json["length"] as? NSNumber)?.intValue else {
            throw fail("pcap of \(frameSize)-byte frames", "unexpected helper output: \(HostCommands.tail(output))")
        }
        return length
    }

    /// Reads a pcap on the DUT with scapy and decodes its frames.
    public func readPcap(_ path: String) async throws -> [CapturedFrame] {
        let helper = try await installHelper()
        return try CapturedFrame.decodeList(try await commands.check([python, helper, "read", path], timeout: .seconds(60)).output)
    }

    /// Stops a tcpdump and returns its frames.
    public func finish(_ capture: TcpdumpCapture) async throws -> [CapturedFrame] {
        await stopTcpdump(capture)
        return try await readPcap(capture.pcap)
    }

    // MARK: Teardown

    /// Stops every capture and tcpdump, deletes the namespace (with its veth ends and VXLAN devices) and the
    /// host ends of the veths, and removes the tester's directory. Idempotent.
    public func tearDown() async {
        for capture in scapyCaptures {
            capture.cancel()
            _ = try? await capture.task.value
        }
        scapyCaptures = []
        for capture in captures { await stopTcpdump(capture) }
        captures = []
        if created {
            await commands.bestEffort(["ip", "netns", "del", namespace])
            created = false
        }
        for link in hostLinks {
            // In the host namespace, or still in the DUT's own if moving it failed.
            for prefix in Set([argv([], on: .host), []]) where await commands.bestEffort(prefix + ["ip", "link", "show", "dev", link])?.succeeded == true {
                await commands.bestEffort(prefix + ["ip", "link", "del", "dev", link])
            }
        }
        hostLinks = []
        await commands.bestEffort(["rm", "-rf", directory])
        helperInstalled = false
    }
}

/// A running scapy capture started by ``Tester/startCapture(on:side:filter:duration:count:)``.
public struct PacketCapture: Sendable {
    let task: Task<String, any Error>
    /// The interface it listens on.
    public let interface: String

    /// Waits until the capture ends (its duration or count) and returns the frames.
    public func frames() async throws -> [CapturedFrame] {
        try CapturedFrame.decodeList(try await task.value)
    }

    /// Stops waiting for the capture (its process is killed).
    public func cancel() { task.cancel() }
}

/// A background tcpdump started by ``Tester/startTcpdump(on:side:filter:)``.
public struct TcpdumpCapture: Sendable, Equatable {
    /// The pcap file on the DUT.
    public let pcap: String
    /// tcpdump's pid file.
    public let pidFile: String
    /// tcpdump's stderr.
    public let log: String
    /// The interface it listens on.
    public let interface: String
}

/// Set once when a background command ends.
private final class EndFlag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
