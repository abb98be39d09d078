import DTSSession
import Foundation

/// How to run a private Open vSwitch with DPDK.
public struct OVSDPDKOptions: Sendable {
    /// The instance's name: its run directory `<parentDirectory>/ovs-<name>` and its DPDK `--file-prefix`.
    /// Letters, digits, `-` and `_` only.
    public var name: String
    /// The directory that holds the instance's run directory (e.g. the dts run's directory, ``Run/directory``).
    public var parentDirectory: String
    /// 2 MB hugepages added to the host's reservation for this instance, and given back at teardown.
    public var hugepages: Int = 64
    /// `dpdk-socket-mem` and `dpdk-socket-limit`, in MB.
    public var socketMemoryMB: Int = 128
    /// `dpdk-lcore-mask`.
    public var lcoreMask: String = "0x1"
    /// `pmd-cpu-mask`.
    public var pmdCPUMask: String = "0x2"
    /// `pmd-maxsleep` in µs: 1000 keeps an idle PMD thread at a few percent of a core.
    public var pmdMaxSleepMicroseconds: Int = 1000
    /// How long to wait for `dpdk_initialized`.
    public var startTimeout: Duration = .seconds(60)
    /// The DPDK-enabled vswitchd binary (Debian `openvswitch-switch-dpdk`).
    public var vswitchdPath: String = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
    /// The OVSDB schema.
    public var schemaPath: String = "/usr/share/openvswitch/vswitch.ovsschema"
    /// A network namespace, created at start and deleted at stop, that ovs-vswitchd runs in; `nil`
    /// runs it in the DUT's own. A userspace datapath creates a tap device named `ovs-netdev`, so only
    /// one such Open vSwitch fits in a network namespace: isolate it to run beside another one. Its
    /// bridges' internal ports and the interfaces of its af_packet ports then live in that namespace
    /// (``Tester`` puts its veth host ends there with `hostNamespace`).
    public var networkNamespace: String?

    /// Creates options; the rest keeps the values proven on a 2-core host.
    public init(name: String, parentDirectory: String) {
        self.name = name
        self.parentDirectory = parentDirectory
    }
}

/// A private Open vSwitch + DPDK instance on the host DUT: the VXLAN tunnel endpoint that DTS's
/// removed `tep_termination` example used to be.
///
/// Everything lives in its own run directory (database, sockets, pid files, logs, hugetlbfs mount)
/// with its own DPDK `--file-prefix`; it never touches the system's Open vSwitch service. Every
/// command goes through the DUT session as an argument vector.
///
/// ```swift
/// let ovs = OVSDPDKBackend(session: dut.session,
///                          options: OVSDPDKOptions(name: "vx0", parentDirectory: run.path),
///                          cleanup: .run(context.run))
/// try await ovs.start()
/// try await ovs.addBridge("br-phy")
/// try await ovs.addAfPacketPort(bridge: "br-phy", port: "phy0", interface: "vu0")
/// ...
/// await ovs.stop()
/// ```
public actor OVSDPDKBackend {
    /// The options it runs with.
    public nonisolated let options: OVSDPDKOptions
    /// Its run directory.
    public nonisolated let runDirectory: String
    /// Its DPDK file prefix (`/var/run/dpdk/<prefix>`).
    public nonisolated var filePrefix: String { "dts-ovs-\(options.name)" }
    /// The hugetlbfs mount DPDK uses.
    public nonisolated var hugepageDirectory: String { runDirectory + "/huge" }
    /// The OVSDB socket.
    public nonisolated var databaseSocket: String { runDirectory + "/db.sock" }
    /// ovs-vswitchd's control socket (`ovs-appctl -t`).
    public nonisolated var vswitchdControl: String { runDirectory + "/ovs-vswitchd.ctl" }
    /// ovs-vswitchd's log.
    public nonisolated var vswitchdLog: String { runDirectory + "/ovs-vswitchd.log" }

    private let commands: HostCommands
    private let cleanup: CleanupHook
    private var hugepagesAdded = 0
    private var mounted = false
    private var started = false
    private var registered = false
    private var afPacketCount = 0
    private var createdNamespace = false

    /// Creates the backend; nothing runs until ``start()``.
    public init(session: any DUTSession, options: OVSDPDKOptions, cleanup: CleanupHook) {
        self.options = options
        self.runDirectory = options.parentDirectory + "/ovs-" + options.name
        self.commands = HostCommands(session: session, component: "ovs-dpdk \(options.name)")
        self.cleanup = cleanup
    }

    /// `argv` run in the namespace of ovs-vswitchd (its internal ports, its af_packet interfaces).
    public nonisolated func inSwitchNamespace(_ argv: [String]) -> [String] {
        options.networkNamespace.map { ["ip", "netns", "exec", $0] + argv } ?? argv
    }

    private var environment: [String] {
        ["env", "OVS_RUNDIR=\(runDirectory)", "OVS_DBDIR=\(runDirectory)",
         "OVS_LOGDIR=\(runDirectory)", "OVS_SYSCONFDIR=\(runDirectory)"]
    }

    private func fail(_ step: String, _ detail: String) -> BackendError {
        BackendError(component: "ovs-dpdk \(options.name)", step: step, detail: detail)
    }

    // MARK: Start

    /// Starts ovsdb-server and ovs-vswitchd-dpdk and waits until DPDK is initialized.
    /// On failure everything already set up is torn down before the error is thrown.
    public func start() async throws {
        guard !started else { return }
        guard !options.name.isEmpty, options.name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw fail("start", "invalid instance name '\(options.name)': use letters, digits, - and _")
        }
        if !registered {
            registered = true
            await cleanup.register("ovs-dpdk \(options.name) (\(runDirectory))") { [self] in await self.stop() }
        }
        started = true
        do {
            try await startSteps()
        } catch {
            await stop()
            throw error
        }
    }

    private func startSteps() async throws {
        let c = commands
        for tool in ["ovsdb-tool", "ovsdb-server", "ovs-vsctl", "ovs-appctl", options.vswitchdPath] {
            guard try await c.run(["sh", "-c", "command -v \"$1\"", "sh", tool]).succeeded else {
                throw fail("start", "\(tool) is not installed (apt-get install openvswitch-switch-dpdk; scripts/setup.d/vxlan.sh)")
            }
        }
        if let namespace = options.networkNamespace {
            try await c.check(["ip", "netns", "add", namespace], step: "create network namespace \(namespace)")
            createdNamespace = true
            try await c.check(["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"])
        } else if try await c.run(["ip", "link", "show", "dev", "ovs-netdev"]).succeeded {
            throw fail("start", "another Open vSwitch with a userspace datapath runs in this network namespace (its tap device ovs-netdev exists); set OVSDPDKOptions.networkNamespace to run this one isolated")
        }
        try await c.check(["mkdir", "-p", "-m", "0700", runDirectory])
        try await c.check(["mkdir", "-p", hugepageDirectory])

        // Hugepages: add ours to the reservation (under a lock shared by every dts instance, so
        // concurrent read-modify-writes do not lose pages), then check the kernel gave them.
        let (before, now) = try await adjustHugepages(by: options.hugepages)
        hugepagesAdded = max(0, now - before)
        guard now >= before + options.hugepages else {
            throw fail("reserve hugepages", "asked for \(before + options.hugepages) 2 MB pages (\(options.hugepages) more), the kernel reserved \(now)")
        }
        try await c.check(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "nodev", hugepageDirectory], step: "mount hugetlbfs")
        mounted = true

        let db = runDirectory + "/conf.db"
        try await c.check(environment + ["ovsdb-tool", "create", db, options.schemaPath])
        try await c.check(environment + [
            "ovsdb-server", db, "--remote=punix:\(databaseSocket)",
            "--pidfile=\(runDirectory)/ovsdb-server.pid", "--unixctl=\(runDirectory)/ovsdb-server.ctl",
            "--log-file=\(runDirectory)/ovsdb-server.log", "--detach",
        ], step: "start ovsdb-server")
        // Read once now: the run records the daemon for its stale-run cleanup.
        _ = await c.pid(fromFile: runDirectory + "/ovsdb-server.pid")
        try await vsctl(["--no-wait", "init"])
        try await vsctl(["--no-wait", "set", "Open_vSwitch", "."] + [
            "other_config:dpdk-init=true",
            "other_config:dpdk-socket-mem=\(options.socketMemoryMB)",
            "other_config:dpdk-socket-limit=\(options.socketMemoryMB)",
            "other_config:dpdk-hugepage-dir=\(hugepageDirectory)",
            "other_config:dpdk-extra=--file-prefix=\(filePrefix) --no-pci",
            "other_config:dpdk-lcore-mask=\(options.lcoreMask)",
            "other_config:pmd-cpu-mask=\(options.pmdCPUMask)",
            "other_config:pmd-maxsleep=\(options.pmdMaxSleepMicroseconds)",
            "other_config:per-port-memory=true",
        ])
        let launch = try await c.run(inSwitchNamespace(environment + [
            options.vswitchdPath, "unix:\(databaseSocket)",
            "--pidfile=\(runDirectory)/ovs-vswitchd.pid", "--unixctl=\(vswitchdControl)",
            "--log-file=\(vswitchdLog)", "--detach",
        ]), timeout: options.startTimeout)
        guard launch.succeeded else {
            throw fail("start ovs-vswitchd", "exit status \(launch.status): \(HostCommands.tail(launch.errorOutput))\nlog: \(await logTail())")
        }
        try await waitForDPDK()
    }

    /// Adds `delta` (possibly negative; never below 0) to the host's 2 MB reservation
    /// (``Hugepages/adjustReservation(by:on:)``); returns the counts before and after.
    private func adjustHugepages(by delta: Int) async throws -> (before: Int, after: Int) {
        do {
            return try await Hugepages.adjustReservation(by: delta, on: commands.session)
        } catch let error as CancellationError {
            throw error
        } catch {
            throw fail("adjust hugepages by \(delta)", "\(error)")
        }
    }

    /// The end of ovs-vswitchd's log.
    public func logTail(lines: Int = 30) async -> String {
        let result = await commands.bestEffort(["tail", "-n", String(lines), vswitchdLog])
        return result?.output ?? ""
    }

    /// The 2 MB pages this instance has added to the host's reservation (0 before start and after stop).
    public var reservedHugepages: Int { hugepagesAdded }

    /// ovs-vswitchd's pid, if it is running.
    public func vswitchdPID() async -> Int32? {
        guard let pid = await commands.pid(fromFile: runDirectory + "/ovs-vswitchd.pid"), await commands.isAlive(pid) else { return nil }
        return pid
    }

    /// Waits until `dpdk_initialized` is true; fails at once with the log's tail if vswitchd died.
    private func waitForDPDK() async throws {
        let deadline = ContinuousClock.now + options.startTimeout
        while true {
            guard await vswitchdPID() != nil else {
                throw fail("start ovs-vswitchd", "ovs-vswitchd exited during DPDK initialization; log:\n\(await logTail())")
            }
            let value = try await vsctl(["--no-wait", "get", "Open_vSwitch", ".", "dpdk_initialized"], timeout: 5)
            if value == "true" { return }
            guard ContinuousClock.now < deadline else {
                throw fail("start ovs-vswitchd", "dpdk_initialized still '\(value)' after \(options.startTimeout); log:\n\(await logTail())")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    // MARK: Commands

    /// Runs `ovs-vsctl` on this instance's database (with a bounded `--timeout`) and returns its trimmed output.
    @discardableResult
    public func vsctl(_ arguments: [String], timeout seconds: Int = 10) async throws -> String {
        try await commands.output(environment + ["ovs-vsctl", "--db=unix:\(databaseSocket)", "--timeout=\(seconds)"] + arguments,
                                  step: "ovs-vsctl " + arguments.joined(separator: " "),
                                  timeout: .seconds(seconds + 5))
    }

    /// Runs `ovs-appctl -t <run>/ovs-vswitchd.ctl` and returns its trimmed output.
    @discardableResult
    public func appctl(_ arguments: [String], timeout seconds: Int = 10) async throws -> String {
        try await commands.output(environment + ["ovs-appctl", "-t", vswitchdControl, "--timeout=\(seconds)"] + arguments,
                                  step: "ovs-appctl " + arguments.joined(separator: " "),
                                  timeout: .seconds(seconds + 5))
    }

    /// Whether DPDK is initialized (`Open_vSwitch . dpdk_initialized`).
    public func dpdkInitialized() async throws -> Bool {
        try await vsctl(["--no-wait", "get", "Open_vSwitch", ".", "dpdk_initialized"]) == "true"
    }

    // MARK: Bridges and ports

    /// Adds a userspace (`datapath_type=netdev`) bridge; returns once its internal port (a tap
    /// device with the bridge's name) exists on the host.
    public func addBridge(_ name: String, timeout: Duration = .seconds(15)) async throws {
        try await vsctl(["add-br", name, "--", "set", "Bridge", name, "datapath_type=netdev"])
        try await checkInterface(name)
        let deadline = ContinuousClock.now + timeout
        while !(await commands.bestEffort(inSwitchNamespace(["ip", "link", "show", "dev", name]))?.succeeded ?? false) {
            guard ContinuousClock.now < deadline else {
                throw fail("add bridge \(name)", "its internal port did not appear within \(timeout); log:\n\(await logTail())")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Adds a DPDK port with the given `dpdk-devargs` and fails with OVS's reason if it did not come up.
    public func addDPDKPort(bridge: String, port: String, devargs: String) async throws {
        try await vsctl(["add-port", bridge, port, "--", "set", "Interface", port, "type=dpdk", "options:dpdk-devargs=\(devargs)"])
        try await checkInterface(port)
    }

    /// Adds a DPDK port on a kernel interface through an af_packet vdev (`net_af_packetN,iface=IF`).
    public func addAfPacketPort(bridge: String, port: String, interface: String) async throws {
        let devargs = "net_af_packet\(afPacketCount),iface=\(interface)"
        afPacketCount += 1
        try await addDPDKPort(bridge: bridge, port: port, devargs: devargs)
    }

    /// Adds a `dpdkvhostuserclient` port: QEMU owns the socket (`opt_server=yes`), OVS connects to it.
    public func addVhostUserClientPort(bridge: String, port: String, serverPath: String) async throws {
        try await vsctl(["add-port", bridge, port, "--", "set", "Interface", port,
                         "type=dpdkvhostuserclient", "options:vhost-server-path=\(serverPath)"])
        try await checkInterface(port)
    }

    /// Adds a VXLAN tunnel port.
    public func addVXLANPort(bridge: String, port: String, remoteIP: String, localIP: String? = nil,
                             key: UInt32, destinationPort: UInt16 = 4789) async throws {
        var settings = ["type=vxlan", "options:remote_ip=\(remoteIP)", "options:key=\(key)", "options:dst_port=\(destinationPort)"]
        if let localIP { settings.append("options:local_ip=\(localIP)") }
        try await vsctl(["add-port", bridge, port, "--", "set", "Interface", port] + settings)
        try await checkInterface(port)
    }

    /// Deletes a port.
    public func deletePort(bridge: String, port: String) async throws {
        try await vsctl(["--if-exists", "del-port", bridge, port])
    }

    /// Deletes a bridge.
    public func deleteBridge(_ name: String) async throws {
        try await vsctl(["--if-exists", "del-br", name])
    }

    /// Gives a bridge's internal port an address (`ip addr add CIDR dev BRIDGE`, in the switch's
    /// namespace) and brings it up.
    public func setInternalAddress(_ cidr: String, bridge: String) async throws {
        try await commands.check(inSwitchNamespace(["ip", "addr", "add", cidr, "dev", bridge]))
        try await commands.check(inSwitchNamespace(["ip", "link", "set", bridge, "up"]))
    }

    /// The interface's `error` column, `nil` when it has none.
    public func interfaceError(_ interface: String) async throws -> String? {
        let value = try await vsctl(["--if-exists", "get", "Interface", interface, "error"])
        return value.isEmpty || value == "[]" ? nil : value
    }

    private func checkInterface(_ interface: String) async throws {
        if let error = try await interfaceError(interface) {
            throw fail("add port \(interface)", "OVS reports: \(error)")
        }
    }

    /// The interface's statistics column (`ovs-vsctl get Interface X statistics`) as typed counters.
    /// vswitchd refreshes this column every 5 s (`stats-update-interval`); for counters as of now use
    /// ``liveStatistics(bridge:port:)`` or wait with ``waitForStatistics(_:timeout:until:)``.
    public func statistics(_ interface: String) async throws -> PortCounters {
        Self.parseStatistics(try await vsctl(["get", "Interface", interface, "statistics"]))
    }

    /// Polls ``statistics(_:)`` until `condition` holds; returns the counters that satisfied it, or
    /// throws with the last counters after `timeout`.
    @discardableResult
    public func waitForStatistics(_ interface: String, timeout: Duration = .seconds(15),
                                  until condition: @Sendable (PortCounters) -> Bool) async throws -> PortCounters {
        let deadline = ContinuousClock.now + timeout
        while true {
            let counters = try await statistics(interface)
            if condition(counters) { return counters }
            guard ContinuousClock.now < deadline else {
                throw fail("wait for statistics of \(interface)", "condition not met within \(timeout); last: \(counters.raw)")
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// The port's counters as of now, read from the datapath over OpenFlow (`ovs-ofctl dump-ports BRIDGE PORT`).
    public func liveStatistics(bridge: String, port: String) async throws -> PortCounters {
        let output = try await commands.output(environment + ["ovs-ofctl", "dump-ports", bridge, port],
                                               step: "ovs-ofctl dump-ports \(bridge) \(port)")
        guard let counters = Self.parseDumpPorts(output) else {
            throw fail("ovs-ofctl dump-ports \(bridge) \(port)", "no counters in: \(HostCommands.tail(output))")
        }
        return counters
    }

    /// Parses `ovs-ofctl dump-ports` output for one port (`rx pkts=1, bytes=2, drop=0, errs=0, ...`,
    /// `tx pkts=...`); `?` (unsupported) reads as 0.
    public static func parseDumpPorts(_ text: String) -> PortCounters? {
        var raw: [String: UInt64] = [:]
        var seen = false
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            let direction: String
            var rest: Substring
            if let range = trimmed.range(of: "rx pkts=") { direction = "rx"; rest = trimmed[range.lowerBound...].dropFirst(3) }
            else if let range = trimmed.range(of: "tx pkts=") { direction = "tx"; rest = trimmed[range.lowerBound...].dropFirst(3) }
            else { continue }
            seen = true
            rest = rest.drop { $0 == " " }
            for field in rest.split(separator: ",") {
                let pair = field.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                guard pair.count == 2 else { continue }
                raw["\(direction)_\(pair[0])"] = UInt64(pair[1]) ?? 0
            }
        }
        guard seen else { return nil }
        return PortCounters(raw: raw, names: PortCounters.Names(
            rxPackets: "rx_pkts", txPackets: "tx_pkts", rxBytes: "rx_bytes", txBytes: "tx_bytes",
            rxErrors: "rx_errs", txErrors: "tx_errs", rxDropped: "rx_drop", txDropped: "tx_drop"))
    }

    /// Parses an OVSDB map such as `{rx_bytes=42, rx_packets=1, tx_packets=0}`.
    public static func parseStatistics(_ text: String) -> PortCounters {
        var raw: [String: UInt64] = [:]
        let body = text.trimmingCharacters(in: CharacterSet(charactersIn: "{} \n"))
        for entry in body.split(separator: ",") {
            let pair = entry.split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { continue }
            let key = pair[0].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            guard let value = UInt64(pair[1].trimmingCharacters(in: .whitespaces)) else { continue }
            raw[key] = value
        }
        return PortCounters(raw: raw, names: PortCounters.Names(
            rxPackets: "rx_packets", txPackets: "tx_packets", rxBytes: "rx_bytes", txBytes: "tx_bytes",
            rxErrors: "rx_errors", txErrors: "tx_errors", rxDropped: "rx_dropped", txDropped: "tx_dropped"))
    }

    // MARK: Teardown

    /// Stops both daemons (ovs-appctl exit, then the pid files: SIGTERM, bounded, then SIGKILL),
    /// unmounts the hugetlbfs, removes `/var/run/dpdk/<prefix>`, gives the hugepages back, removes
    /// the run directory and the network namespace it created. Idempotent; safe after a failed start.
    public func stop() async {
        guard started else { return }
        started = false
        let c = commands
        await c.stop(pidFile: runDirectory + "/ovs-vswitchd.pid", request: .command(
            environment + ["ovs-appctl", "-t", vswitchdControl, "--timeout=5", "exit", "--cleanup"], timeout: .seconds(10), within: .seconds(5)))
        await c.stop(pidFile: runDirectory + "/ovsdb-server.pid", request: .command(
            environment + ["ovs-appctl", "-t", runDirectory + "/ovsdb-server.ctl", "--timeout=5", "exit"], timeout: .seconds(10), within: .seconds(3)))
        if mounted {
            if await c.bestEffort(["umount", hugepageDirectory])?.succeeded != true {
                await c.bestEffort(["umount", "-l", hugepageDirectory])
            }
            mounted = false
        }
        await c.removeDPDKRuntime(filePrefix: filePrefix)
        if hugepagesAdded > 0 {
            _ = try? await adjustHugepages(by: -hugepagesAdded)
            hugepagesAdded = 0
        }
        await c.bestEffort(["rm", "-rf", runDirectory])
        if createdNamespace, let namespace = options.networkNamespace {
            await c.bestEffort(["ip", "netns", "del", namespace])
            createdNamespace = false
        }
    }
}
