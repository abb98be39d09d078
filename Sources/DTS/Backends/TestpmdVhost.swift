import DTSSession
import Foundation

/// One `net_vhost` vdev of a ``TestpmdVhostBackend``.
public struct VhostPortSpec: Sendable, Equatable {
    /// The vhost-user socket path.
    public var socketPath: String
    /// `true`: testpmd connects to a socket QEMU listens on (`client=1`; the VM's device has
    /// `opt_server=yes`). `false`: testpmd creates and listens on the socket (DTS's default).
    public var client: Bool
    /// Queue pairs.
    public var queues: Int

    /// Creates a port spec.
    public init(socketPath: String, client: Bool = false, queues: Int = 1) {
        self.socketPath = socketPath
        self.client = client
        self.queues = queues
    }
}

/// How to run testpmd as a vhost-user backend.
public struct TestpmdVhostOptions: Sendable {
    /// The instance's name: DPDK `--file-prefix dts-testpmd-<name>` and its pid file name.
    public var name: String
    /// A directory on the DUT for the pid file (e.g. the dts run's directory, ``Run/directory``).
    public var workDirectory: String
    /// The vhost ports, in port-id order.
    public var ports: [VhostPortSpec]
    /// EAL core list (`-l`).
    public var cores: String = "0-1"
    /// Memory in MB without hugepages (`--no-huge -m`): 1024 is the least that holds the mbuf pool.
    public var memoryMB: Int = 1024
    /// `--total-num-mbufs`.
    public var totalMbufs: Int = 4096
    /// The testpmd binary.
    public var binary: String = "dpdk-testpmd"
    /// Extra testpmd application arguments (after `--`).
    public var extraArguments: [String] = []
    /// How long to wait for the prompt and the sockets.
    public var startTimeout: Duration = .seconds(60)

    /// Creates options.
    public init(name: String, workDirectory: String, ports: [VhostPortSpec]) {
        self.name = name
        self.workDirectory = workDirectory
        self.ports = ports
    }
}

/// testpmd's forwarding modes used with vhost-user backends.
public enum TestpmdForwardMode: String, Sendable {
    /// Forward as received (port pairs).
    case io
    /// Forward, rewriting the source MAC.
    case mac
    /// Answer ARP and ICMP echo requests.
    case icmpecho
}

/// `dpdk-testpmd` as a vhost-user backend on the host DUT, driven interactively as DTS did
/// (`send_expect(..., "testpmd> ")`), on its own shell of the DUT session.
///
/// ```swift
/// let pmd = TestpmdVhostBackend(session: dut.session,
///     options: TestpmdVhostOptions(name: "vx", workDirectory: run.path,
///                                  ports: [VhostPortSpec(socketPath: run.path + "/vhost-net")]),
///     cleanup: .run(context.run))
/// try await pmd.start()                 // sockets exist when it returns
/// ... start the VM ...
/// try await pmd.waitForOutput("new device", timeout: .seconds(60))
/// try await pmd.setForwardMode(.io); try await pmd.startForwarding()
/// let stats = try await pmd.portStatistics()
/// await pmd.quit()
/// ```
public actor TestpmdVhostBackend {
    /// The options it runs with.
    public nonisolated let options: TestpmdVhostOptions
    /// Its DPDK file prefix.
    public nonisolated var filePrefix: String { "dts-testpmd-\(options.name)" }
    /// The pid file written just before testpmd is exec'd.
    public nonisolated var pidFile: String { options.workDirectory + "/testpmd-\(options.name).pid" }

    private let session: any DUTSession
    private let commands: HostCommands
    private let cleanup: CleanupHook
    private var shell: (any InteractiveSession)?
    private var registered = false
    private var pid: Int32?
    /// Everything testpmd printed so far.
    public private(set) var transcript = ""

    static let prompt: Expectation = .literal("testpmd> ")
    /// Printed by the shell once testpmd has exited (the command line spells it with quotes, so
    /// the echoed command never matches).
    static let exitMarker = "dts-testpmd-exited"
    static let promptOrExit: Expectation = .regex("testpmd> |dts-testpmd-exited")

    /// Creates the backend; nothing runs until ``start()``.
    public init(session: any DUTSession, options: TestpmdVhostOptions, cleanup: CleanupHook) {
        self.session = session
        self.options = options
        self.commands = HostCommands(session: session, component: "testpmd \(options.name)")
        self.cleanup = cleanup
    }

    private func fail(_ step: String, _ detail: String) -> BackendError {
        BackendError(component: "testpmd \(options.name)", step: step, detail: detail)
    }

    /// The full command line (EAL and application arguments).
    public nonisolated var argv: [String] {
        var argv = [options.binary, "-l", options.cores, "--no-huge", "-m", String(options.memoryMB),
                    "--no-pci", "--file-prefix=\(filePrefix)"]
        for (index, port) in options.ports.enumerated() {
            var vdev = "net_vhost\(index),iface=\(port.socketPath),queues=\(port.queues)"
            if port.client { vdev += ",client=1" }
            argv += ["--vdev", vdev]
        }
        argv += ["--", "-i", "--total-num-mbufs=\(options.totalMbufs)"]
        if let queues = options.ports.map(\.queues).max(), queues > 1 { argv += ["--rxq=\(queues)", "--txq=\(queues)"] }
        return argv + options.extraArguments
    }

    /// Starts testpmd and waits for its prompt and, for server ports, for every socket file.
    /// On failure testpmd is stopped and the error carries its output.
    public func start() async throws {
        guard shell == nil else { return }
        guard !options.name.isEmpty, options.name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw fail("start", "invalid instance name '\(options.name)': use letters, digits, - and _")
        }
        guard try await commands.run(["sh", "-c", "command -v \"$1\"", "sh", options.binary]).succeeded else {
            throw fail("start", "\(options.binary) is not installed (apt-get install dpdk-dev; scripts/setup.d/vxlan.sh)")
        }
        if !registered {
            registered = true
            await cleanup.register("testpmd \(options.name) (\(filePrefix))") { [self] in await self.quit() }
        }
        try await commands.check(["mkdir", "-p", options.workDirectory])
        for port in options.ports where !port.client {
            await commands.bestEffort(["rm", "-f", port.socketPath])
        }
        do {
            let opened = try await session.openShell()
            shell = opened
            // The shell records testpmd's pid, then becomes testpmd (exec), so the pid is testpmd's.
            let launcher = ["sh", "-c", "echo $$ > \"$0\" && exec \"$@\"", pidFile] + argv
            let line = ShellQuoting.join(launcher) + "; echo dts-testpmd-\"exited\" status $?"
            let output = try await opened.sendExpect(line, Self.promptOrExit, timeout: options.startTimeout)
            transcript += output
            // The expectation matches the prompt or the exit marker; only a live testpmd printed the prompt.
            pid = await commands.pid(fromFile: pidFile)
            var alive = false
            if let pid { alive = await commands.isAlive(pid) }
            guard alive else {
                throw fail("start", "testpmd exited before its prompt; output:\n\(HostCommands.tail(output))")
            }
            try await waitForSockets()
        } catch {
            let detail = "\(error)"
            await quit()
            throw fail("start", detail)
        }
    }

    private func waitForSockets() async throws {
        let deadline = ContinuousClock.now + options.startTimeout
        for port in options.ports where !port.client {
            while !(await commands.bestEffort(["test", "-S", port.socketPath])?.succeeded ?? false) {
                guard ContinuousClock.now < deadline else {
                    throw fail("start", "socket \(port.socketPath) not created; output:\n\(HostCommands.tail(transcript))")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Sends one testpmd command and returns its output (up to the next prompt).
    @discardableResult
    public func command(_ text: String, timeout: Duration = .seconds(15)) async throws -> String {
        guard let shell else { throw fail(text, "testpmd is not running") }
        do {
            // Keep what testpmd printed on its own since the last command (e.g. "new device").
            transcript += try await shell.getSessionBefore(timeout: .zero)
            let output = try await shell.sendExpect(text, Self.prompt, timeout: timeout)
            transcript += output
            return output
        } catch {
            throw fail(text, "\(error)")
        }
    }

    /// Waits until testpmd has printed `text` (already or within `timeout`), e.g. `"new device"`.
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

    /// `set fwd MODE`.
    public func setForwardMode(_ mode: TestpmdForwardMode) async throws {
        let out = try await command("set fwd \(mode.rawValue)")
        guard !out.lowercased().contains("invalid") else { throw fail("set fwd \(mode.rawValue)", out) }
    }

    /// `start`.
    public func startForwarding() async throws { try await command("start") }

    /// `stop`; returns testpmd's forwarding summary.
    @discardableResult
    public func stopForwarding() async throws -> String { try await command("stop") }

    /// `clear port stats all`.
    public func clearStatistics() async throws { try await command("clear port stats all") }

    /// `show port stats all`, parsed: counters by port id.
    public func portStatistics() async throws -> [Int: PortCounters] {
        let output = try await command("show port stats all")
        let stats = Self.parsePortStatistics(output)
        guard !stats.isEmpty else { throw fail("show port stats all", "no port statistics in: \(HostCommands.tail(output))") }
        return stats
    }

    /// Parses the output of `show port stats all` (or `show port stats N`).
    public static func parsePortStatistics(_ text: String) -> [Int: PortCounters] {
        var result: [Int: PortCounters] = [:]
        var current: Int?
        let words = text.replacingOccurrences(of: "\r", with: "").split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" })
        var index = 0
        while index < words.count {
            let word = words[index]
            if word == "port", index > 2, words[index - 1] == "for", words[index - 2] == "statistics",
               index + 1 < words.count, let port = Int(words[index + 1]) {
                current = port
                result[port] = PortCounters()
            } else if let port = current, word.hasSuffix(":"), index + 1 < words.count, let value = UInt64(words[index + 1]) {
                result[port]?.raw[String(word.dropLast())] = value
            }
            index += 1
        }
        // testpmd reports no transmit drops.
        let names = PortCounters.Names(rxPackets: "RX-packets", txPackets: "TX-packets", rxBytes: "RX-bytes", txBytes: "TX-bytes",
                                       rxErrors: "RX-errors", txErrors: "TX-errors", rxDropped: "RX-missed", txDropped: nil)
        return result.mapValues { PortCounters(raw: $0.raw, names: names) }
    }

    /// testpmd's pid while it runs.
    public var processID: Int32? { pid }

    /// Quits testpmd (`quit`, bounded), kills it if it is still there, closes its shell and removes
    /// `/var/run/dpdk/<prefix>`, the pid file and the server sockets. Idempotent.
    public func quit() async {
        let current = shell
        shell = nil
        if let current {
            transcript += (try? await current.getSessionBefore(timeout: .zero)) ?? ""
            if let pid, await commands.isAlive(pid) {
                transcript += (try? await current.sendExpect("quit", .literal(Self.exitMarker), timeout: .seconds(15))) ?? ""
            }
            transcript += (try? await current.getSessionBefore(timeout: .milliseconds(200))) ?? ""
            await commands.stop(pid, pidFile: pidFile, grace: .seconds(5))
            await current.close()
        } else {
            await commands.stop(pid, grace: .seconds(2))
        }
        pid = nil
        await commands.removeDPDKRuntime(filePrefix: filePrefix, alsoRemoving: [pidFile])
        for port in options.ports where !port.client {
            await commands.bestEffort(["rm", "-f", port.socketPath])
        }
    }
}
