import DTSSession
import Foundation

/// `dpdk-testpmd`, driven interactively as DTS's `PmdOutput` did, on the host DUT or in a guest:
/// one type for both, since it only needs a ``DUTSession`` (``Dut/session`` or a ``VirtDut``).
/// testpmd runs on a shell of its own (the session's other shells stay free for `dpdk-pdump`,
/// iperf, ...).
///
/// ```swift
/// var options = TestpmdOptions(filePrefix: "vhost-user", cores: .list("0,1"), memory: .noHuge(megabytes: 1024))
/// options.noPCI = true
/// options.vdevs = [.vhost(0, iface: dir + "/vhost-net0"), .vhost(1, iface: dir + "/vhost-net1")]
/// let pmd = PmdOutput(session: context.dut.session, options: options, cleanup: .run(context.run))
/// try await pmd.start()                                   // at the prompt; server sockets exist
/// try await pmd.setForwardMode(.mac)
/// try await pmd.startForwarding()
/// try await pmd.waitForLink(0, timeout: .seconds(60))     // polls `show port info 0`
/// let stats = try await pmd.portStats(0)                  // typed counters
/// let x = try await pmd.xstats(0)["rx_q0_size_1519_max_packets"]
/// await pmd.quit()                                        // quit, kill if needed, remove /var/run/dpdk/<prefix> and its hugepage files
/// ```
///
/// Errors are ``BackendError``s naming the instance (`testpmd <prefix>`) and the step.
public actor PmdOutput {
    /// How it runs.
    public nonisolated let options: TestpmdOptions
    /// A name for logs and errors: `testpmd <file prefix>`.
    public nonisolated var name: String { "testpmd \(options.filePrefix)" }

    private let session: any DUTSession
    private let commands: HostCommands
    private let cleanup: CleanupHook
    private var shell: (any InteractiveSession)?
    private var registered = false
    private var pid: Int32?
    /// Everything testpmd printed so far, including what it printed between commands.
    public private(set) var transcript = ""
    /// What testpmd printed up to its first prompt.
    public private(set) var startupOutput = ""

    /// The prompt.
    public static let prompt: Expectation = .literal("testpmd> ")
    /// Printed by the launching shell once testpmd has exited (the command spells it with quotes,
    /// so the echoed command line never matches).
    static let exitMarker = "dts-testpmd-exited"
    static let promptOrExit: Expectation = .regex("testpmd> |dts-testpmd-exited")

    /// An instance on `session`; nothing runs until ``start()``. `cleanup` gets its ``quit()`` on
    /// the first start, so it runs on every exit path.
    public init(session: any DUTSession, options: TestpmdOptions, cleanup: CleanupHook) {
        self.session = session
        self.options = options
        self.commands = HostCommands(session: session, component: "testpmd \(options.filePrefix)")
        self.cleanup = cleanup
    }

    private func fail(_ step: String, _ detail: String) -> BackendError {
        BackendError(component: name, step: step, detail: detail)
    }

    /// Whether testpmd runs (started and not quit).
    public var isRunning: Bool { shell != nil }
    /// testpmd's pid on its host, while it runs.
    public var processID: Int32? { pid }

    // MARK: Start

    /// Starts testpmd and returns what it printed up to its prompt; for vhost ports testpmd
    /// serves (no `client=1`), also waits until their socket files exist. When testpmd exits
    /// before its prompt the error carries its output. Starting again after ``quit()`` runs it anew
    /// with the same options (the reconnect cases relaunch a backend this way).
    @discardableResult
    public func start() async throws -> String {
        guard shell == nil else { return startupOutput }
        if let problem = options.problem { throw fail("start", problem) }
        guard try await commands.run(["sh", "-c", "command -v \"$1\"", "sh", options.binary]).succeeded else {
            throw fail("start", "\(options.binary) is not installed on \(session.endpoint) (Debian: apt-get install dpdk-dev)")
        }
        if !registered {
            registered = true
            await cleanup.register("\(name) on \(session.endpoint)") { [self] in await self.quit() }
        }
        await commands.bestEffort(["mkdir", "-p", options.workDirectory])
        for socket in serverSockets { await commands.bestEffort(["rm", "-f", socket]) }
        do {
            let opened = try await session.openShell()
            shell = opened
            // The shell records the pid, then becomes testpmd (exec): the pid is testpmd's.
            let launcher = ["sh", "-c", "echo $$ > \"$0\" && exec \"$@\"", options.pidFile] + options.argv
            let line = ShellQuoting.join(launcher) + "; echo dts-testpmd-\"exited\" status $?"
            let output = try await opened.sendExpect(line, Self.promptOrExit, timeout: options.startTimeout)
            transcript += output
            startupOutput = output
            pid = await commands.pid(fromFile: options.pidFile)
            var alive = false
            if let pid { alive = await commands.isAlive(pid) }
            guard alive else {
                throw fail("start", "testpmd exited before its prompt; output:\n\(HostCommands.tail(output))")
            }
            try await waitForServerSockets()
            return output
        } catch {
            let detail = (error as? BackendError)?.detail ?? "\(error)"
            await quit()
            throw fail("start", detail)
        }
    }

    /// The vhost-user sockets testpmd creates (its `net_vhost` vdevs without `client=1`).
    nonisolated var serverSockets: [String] {
        options.vdevs.filter { $0.name.hasPrefix("net_vhost") && !$0.arguments.contains(Vdev.Argument("client", "1")) }
            .compactMap { vdev in vdev.arguments.first { $0.key == "iface" }?.value }
    }

    private func waitForServerSockets() async throws {
        let deadline = ContinuousClock.now + options.startTimeout
        for socket in serverSockets {
            while !(await commands.bestEffort(["test", "-S", socket])?.succeeded ?? false) {
                guard ContinuousClock.now < deadline else {
                    throw fail("start", "socket \(socket) not created; output:\n\(HostCommands.tail(transcript))")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    // MARK: Commands

    /// Sends one command and returns its output up to the next prompt (DTS's `execute_cmd`).
    /// What testpmd printed on its own since the previous command goes to ``transcript`` first.
    @discardableResult
    public func execute(_ command: String, timeout: Duration = .seconds(30)) async throws -> String {
        guard let shell else { throw fail(command, "testpmd is not running") }
        do {
            transcript += try await shell.getSessionBefore(timeout: .zero)
            let output = try await shell.sendExpect(command, Self.prompt, timeout: timeout)
            transcript += output
            return output
        } catch {
            throw fail(command, "\(error)")
        }
    }

    /// Sends a command that must be accepted: testpmd's refusals (`Bad arguments`, `Invalid port`)
    /// become errors.
    @discardableResult
    public func executeChecked(_ command: String, timeout: Duration = .seconds(30)) async throws -> String {
        let output = try await execute(command, timeout: timeout)
        if let refusal = TestpmdParser.refusal(output) { throw fail(command, "testpmd refused it: \(refusal)") }
        return output
    }

    /// `set fwd MODE`.
    public func setForwardMode(_ mode: TestpmdForwardMode) async throws {
        try await executeChecked("set fwd \(mode.rawValue)")
    }

    /// `start`, or `start tx_first N` (each port first sends N bursts).
    public func startForwarding(txFirst bursts: Int? = nil) async throws {
        try await executeChecked(bursts.map { "start tx_first \($0)" } ?? "start")
    }

    /// `stop`; returns the forward statistics it printed.
    @discardableResult
    public func stopForwarding() async throws -> TestpmdForwardStats {
        TestpmdParser.forwardStats(try await execute("stop"))
    }

    /// `clear port stats all`.
    public func clearStatistics() async throws { try await execute("clear port stats all") }

    // MARK: Typed readers

    /// `show port info N`.
    public func portInfo(_ port: Int) async throws -> TestpmdPortInfo {
        let output = try await execute("show port info \(port)")
        guard let info = TestpmdParser.portInfo(output).first(where: { $0.port == port }) else {
            throw fail("show port info \(port)", "no port information in: \(HostCommands.tail(output))")
        }
        return info
    }

    /// `show port info all`, in port order.
    public func portInfoAll() async throws -> [TestpmdPortInfo] {
        let output = try await execute("show port info all")
        let infos = TestpmdParser.portInfo(output)
        guard !infos.isEmpty else { throw fail("show port info all", "no port information in: \(HostCommands.tail(output))") }
        return infos.sorted { $0.port < $1.port }
    }

    /// The port's link status (`Link status` of `show port info N`).
    public func linkStatus(_ port: Int) async throws -> TestpmdLinkStatus {
        let info = try await portInfo(port)
        guard let status = info.linkStatus else { throw fail("link status of port \(port)", "no 'Link status' line: \(info.fields)") }
        return status
    }

    /// Waits until port `port` has link `status` (testpmd's port info, read every `interval`);
    /// throws with the last state when `timeout` passes. This is how a suite waits for a vhost-user
    /// peer to (re)connect instead of sleeping.
    public func waitForLink(_ port: Int, _ status: TestpmdLinkStatus = .up, timeout: Duration,
                            interval: Duration = .milliseconds(500)) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let now = try await linkStatus(port)
            if now == status { return }
            guard ContinuousClock.now < deadline else {
                throw fail("wait for link \(status.rawValue) on port \(port)",
                           "still \(now.rawValue) after \(timeout); output:\n\(HostCommands.tail(transcript))")
            }
            try await Task.sleep(for: interval)
        }
    }

    /// Waits until every port of `ports` has link `status` (``waitForLink(_:_:timeout:interval:)``
    /// on each in turn, one deadline for all).
    public func waitForLinks(_ ports: [Int], _ status: TestpmdLinkStatus = .up, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        for port in ports {
            try await waitForLink(port, status, timeout: max(deadline - ContinuousClock.now, .zero))
        }
    }

    /// The ids of the ports whose device name starts with `prefix` (`net_vhost`, `net_null`), in
    /// port order, from `show port info all`. A vdev's port id follows the EAL's probe order, so a
    /// suite asks rather than assumes it.
    public func ports(named prefix: String) async throws -> [Int] {
        try await portInfoAll().filter { $0.deviceName?.hasPrefix(prefix) == true }.map(\.port)
    }

    /// `show port stats N`.
    public func portStats(_ port: Int) async throws -> TestpmdPortStats {
        let output = try await execute("show port stats \(port)")
        guard let stats = TestpmdParser.portStats(output)[port] else {
            throw fail("show port stats \(port)", "no statistics in: \(HostCommands.tail(output))")
        }
        return stats
    }

    /// `show port stats all`, by port id.
    public func portStatsAll() async throws -> [Int: TestpmdPortStats] {
        let output = try await execute("show port stats all")
        let stats = TestpmdParser.portStats(output)
        guard !stats.isEmpty else { throw fail("show port stats all", "no statistics in: \(HostCommands.tail(output))") }
        return stats
    }

    /// `show port xstats N`.
    public func xstats(_ port: Int) async throws -> TestpmdXstats {
        let output = try await execute("show port xstats \(port)")
        guard let stats = TestpmdParser.xstats(output) else {
            throw fail("show port xstats \(port)", "no extended statistics in: \(HostCommands.tail(output))")
        }
        return stats
    }

    /// Packet and bit rates of `ports` over `window`: counters read at both ends of the window,
    /// divided by the time between the reads. (DTS averaged ten 1 s samples of testpmd's own
    /// `Rx-pps`; counters over a window give the same mean without rounding per sample.)
    public func measureRates(_ ports: [Int], over window: Duration) async throws -> [Int: TestpmdRate] {
        let before = try await portStatsAll()
        let start = ContinuousClock.now
        try await Task.sleep(for: window)
        let after = try await portStatsAll()
        let seconds = (ContinuousClock.now - start).seconds
        var rates: [Int: TestpmdRate] = [:]
        for port in ports {
            guard let b = before[port]?.counters, let a = after[port]?.counters else {
                throw fail("measure rates", "port \(port) has no statistics (ports: \(after.keys.sorted()))")
            }
            rates[port] = TestpmdRate(seconds: seconds,
                                      rxPackets: a.rxPackets &- b.rxPackets, txPackets: a.txPackets &- b.txPackets,
                                      rxBytes: a.rxBytes &- b.rxBytes, txBytes: a.txBytes &- b.txBytes)
        }
        return rates
    }

    /// Waits until testpmd has printed `text` (already, or within `timeout`), e.g.
    /// `virtio is now ready for processing`.
    public func waitForOutput(_ text: String, timeout: Duration) async throws {
        guard let shell else { throw fail("wait for '\(text)'", "testpmd is not running") }
        let deadline = ContinuousClock.now + timeout
        while !transcript.contains(text) {
            guard ContinuousClock.now < deadline else {
                throw fail("wait for '\(text)'", "not printed within \(timeout); output:\n\(HostCommands.tail(transcript))")
            }
            do {
                transcript += try await shell.getSessionBefore(timeout: .milliseconds(300))
            } catch {
                throw fail("wait for '\(text)'", "\(error)")
            }
        }
    }

    // MARK: Stop

    /// Stops testpmd as DTS's `killall -s INT testpmd` did (SIGINT: testpmd closes its ports
    /// and exits), then cleans up as ``quit()`` does. For the reconnect cases: the vhost-user
    /// peers see the backend go away.
    public func interrupt() async {
        if let pid, await commands.isAlive(pid) {
            await commands.stop(pid, request: .signal("INT", within: .seconds(15)), grace: .seconds(5))
        }
        await quit()
    }

    /// DTS's relaunch of a vhost backend: ``interrupt()`` (SIGINT, as `killall -s INT`), then
    /// ``start()`` anew with the same options; returns what it printed up to its prompt. Its
    /// vhost-user peers (QEMU as server, for `client=1` ports) see the backend go and come back;
    /// wait for them with ``waitForLinks(_:_:timeout:)``.
    @discardableResult
    public func restart() async throws -> String {
        await interrupt()
        return try await start()
    }

    /// Quits testpmd (`quit`, bounded), kills it if it is still there, closes its shell and
    /// removes `/var/run/dpdk/<prefix>`, its hugepage files (`<hugetlbfs>/<prefix>map_*`), the pid
    /// file and the vhost-user sockets it served. Idempotent.
    public func quit() async {
        let current = shell
        shell = nil
        if let current {
            transcript += (try? await current.getSessionBefore(timeout: .zero)) ?? ""
            if let pid, await commands.isAlive(pid) {
                transcript += (try? await current.sendExpect("quit", .literal(Self.exitMarker), timeout: .seconds(20))) ?? ""
            }
            transcript += (try? await current.getSessionBefore(timeout: .milliseconds(200))) ?? ""
            await commands.stop(pid, pidFile: options.pidFile, grace: .seconds(5))
            await current.close()
        } else {
            await commands.stop(pid, pidFile: options.pidFile, grace: .seconds(2))
        }
        pid = nil
        await commands.bestEffort(["sh", "-c", Self.removeRuntimeScript, "sh", options.filePrefix])
        await commands.bestEffort(["rm", "-f", options.pidFile] + serverSockets)
    }

    /// Removes DPDK's runtime directory of prefix $1 and its hugepage files on every hugetlbfs mount.
    static let removeRuntimeScript = """
        rm -rf "/var/run/dpdk/$1"
        for m in $(awk '$3 == "hugetlbfs" {print $2}' /proc/mounts); do rm -f "$m/$1"map_*; done
        true
        """
}

/// Rates over a measured window (``PmdOutput/measureRates(_:over:)``).
public struct TestpmdRate: Sendable, Equatable {
    /// The window, in seconds.
    public var seconds: Double
    /// Counter increases over the window.
    public var rxPackets: UInt64, txPackets: UInt64, rxBytes: UInt64, txBytes: UInt64

    public init(seconds: Double, rxPackets: UInt64, txPackets: UInt64, rxBytes: UInt64, txBytes: UInt64) {
        self.seconds = seconds
        (self.rxPackets, self.txPackets, self.rxBytes, self.txBytes) = (rxPackets, txPackets, rxBytes, txBytes)
    }

    /// Received packets per second.
    public var rxPPS: Double { seconds > 0 ? Double(rxPackets) / seconds : 0 }
    /// Sent packets per second.
    public var txPPS: Double { seconds > 0 ? Double(txPackets) / seconds : 0 }
    /// Received million packets per second.
    public var rxMpps: Double { rxPPS / 1e6 }
    /// Sent million packets per second.
    public var txMpps: Double { txPPS / 1e6 }
    /// Received bits per second (frame bytes as counted by the port).
    public var rxBitsPerSecond: Double { seconds > 0 ? Double(rxBytes) * 8 / seconds : 0 }
    /// Sent bits per second.
    public var txBitsPerSecond: Double { seconds > 0 ? Double(txBytes) * 8 / seconds : 0 }
}
