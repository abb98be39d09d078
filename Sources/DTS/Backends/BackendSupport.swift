import DTSSession
import Foundation

/// Where a host-side component registers its teardown so that it runs on every exit path.
///
/// Pass ``run(_:)`` (a suite's `context.run`, a ``Dut``'s run), or your own closure. The component
/// also tears down when you call its `stop()`/`tearDown()`; teardowns are idempotent, so the
/// registered one does nothing once the component is gone.
public struct CleanupHook: Sendable {
    /// Registers `action` under `name`.
    public let register: @Sendable (_ name: String, _ action: @escaping @Sendable () async -> Void) async -> Void

    /// A hook from a closure.
    public init(_ register: @escaping @Sendable (_ name: String, _ action: @escaping @Sendable () async -> Void) async -> Void) {
        self.register = register
    }

    /// Registers with a run's cleanups (run by ``Run/tearDown(timeout:)`` on every exit path).
    public static func run(_ run: Run) -> CleanupHook {
        CleanupHook { name, action in await run.register(name, cleanup: action) }
    }

    /// Registers nothing: the caller promises to call the component's teardown itself.
    public static let none = CleanupHook { _, _ in }
}

/// A host-side component (OVS-DPDK, testpmd, the tester) failed.
public struct BackendError: Error, Sendable, CustomStringConvertible {
    /// The component, e.g. `ovs-dpdk dtsovs0` or `tester dtst0`.
    public var component: String
    /// The step that failed, e.g. `start ovs-vswitchd`.
    public var step: String
    /// What went wrong, with the command's output where there was one.
    public var detail: String

    /// Creates an error.
    public init(component: String, step: String, detail: String) {
        self.component = component
        self.step = step
        self.detail = detail
    }

    public var description: String { "\(component): \(step) failed: \(detail)" }
}

/// Runs argument vectors on a DUT session and turns failures into ``BackendError``s.
struct HostCommands: Sendable {
    let session: any DUTSession
    let component: String

    /// Runs `argv`; returns the result whatever the status.
    func run(_ argv: [String], timeout: Duration = .seconds(30)) async throws -> ExecResult {
        do {
            return try await session.exec(argv: argv, timeout: timeout)
        } catch let error as CancellationError {
            throw error
        } catch {
            throw BackendError(component: component, step: argv.joined(separator: " "), detail: "\(error)")
        }
    }

    /// Runs `argv` and throws unless it exits with status 0.
    @discardableResult
    func check(_ argv: [String], step: String? = nil, timeout: Duration = .seconds(30)) async throws -> ExecResult {
        let result = try await run(argv, timeout: timeout)
        guard result.succeeded else {
            throw BackendError(component: component, step: step ?? ShellQuoting.join(argv),
                               detail: "exit status \(result.status): \(Self.tail(result.errorOutput + result.output))")
        }
        return result
    }

    /// Runs `argv` and returns its trimmed standard output, throwing unless it succeeded.
    func output(_ argv: [String], step: String? = nil, timeout: Duration = .seconds(30)) async throws -> String {
        try await check(argv, step: step, timeout: timeout).output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs `argv` ignoring every failure (teardown steps).
    @discardableResult
    func bestEffort(_ argv: [String], timeout: Duration = .seconds(15)) async -> ExecResult? {
        try? await session.exec(argv: argv, timeout: timeout)
    }

    /// Reads a file on the DUT, `nil` if it cannot.
    func readFile(_ path: String) async -> String? {
        guard let result = await bestEffort(["cat", path]), result.succeeded else { return nil }
        return result.output
    }

    /// Whether process `pid` is alive on the DUT.
    func isAlive(_ pid: Int32) async -> Bool {
        await bestEffort(["kill", "-0", String(pid)])?.succeeded ?? false
    }

    /// The pid recorded in `pidFile`, if any. On this machine, a pid file inside a run's directory
    /// also records the process with that run (``RunDirectory/recordProcess(_:pidFile:)``), so that
    /// the stale-run cleanup after a crash of dts stops it.
    func pid(fromFile pidFile: String) async -> Int32? {
        guard let pid = await readFile(pidFile).flatMap({ Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) else { return nil }
        if session.location == .local { RunDirectory.recordProcess(pid, pidFile: pidFile) }
        return pid
    }

    /// How ``stop(_:pidFile:request:grace:)`` first asks a process to exit.
    enum ExitRequest: Sendable {
        /// Send the signal `name` (`INT`, ...), then wait up to `within` for the process to go.
        case signal(String, within: Duration)
        /// Run `argv` (`ovs-appctl ... exit`) for at most `timeout`, then wait up to `within`.
        case command([String], timeout: Duration, within: Duration)
    }

    /// The stop sequence of the backends' processes: the process `pid`, or when that is `nil` the
    /// one recorded in `pidFile`, is asked to exit by `request` (when given); if it is still there,
    /// it gets SIGTERM, up to `grace` to exit, then SIGKILL, and up to 5 s more to be gone.
    /// Does nothing when no live process is found.
    func stop(_ pid: Int32? = nil, pidFile: String? = nil, request: ExitRequest? = nil, grace: Duration = .seconds(5)) async {
        var target = pid
        if target == nil, let pidFile { target = await self.pid(fromFile: pidFile) }
        guard let target, target > 1, await isAlive(target) else { return }
        switch request {
        case .signal(let name, let within)?:
            await bestEffort(["kill", "-\(name)", String(target)])
            if await waitGone(target, within: within) { return }
        case .command(let argv, let timeout, let within)?:
            await bestEffort(argv, timeout: timeout)
            if await waitGone(target, within: within) { return }
        case nil:
            break
        }
        await bestEffort(["kill", "-TERM", String(target)])
        if await waitGone(target, within: grace) { return }
        await bestEffort(["kill", "-KILL", String(target)])
        _ = await waitGone(target, within: .seconds(5))
    }

    /// DPDK's runtime directory for `--file-prefix=filePrefix`, left behind even in memory mode.
    static func dpdkRuntimeDirectory(_ filePrefix: String) -> String { "/var/run/dpdk/" + filePrefix }

    /// Removes DPDK's runtime directory for `filePrefix` and `paths` (the end of a DPDK process's stop).
    func removeDPDKRuntime(filePrefix: String, alsoRemoving paths: [String] = []) async {
        await bestEffort(["rm", "-rf", Self.dpdkRuntimeDirectory(filePrefix)] + paths)
    }

    /// Polls until `pid` is gone or `within` passes; returns whether it is gone.
    func waitGone(_ pid: Int32, within: Duration) async -> Bool {
        let deadline = ContinuousClock.now + within
        // A cancelled Task.sleep returns at once: stop on cancellation instead of spinning.
        while ContinuousClock.now < deadline, !Task.isCancelled {
            if !(await isAlive(pid)) { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return !(await isAlive(pid))
    }

    /// Writes `text` to `path` on the DUT (through a local temporary file and the session's upload).
    func writeFile(_ text: String, to path: String, mode: Int32 = 0o644) async throws {
        let local = FileManager.default.temporaryDirectory.appendingPathComponent("dts-upload-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: local) }
        do {
            try text.write(toFile: local, atomically: true, encoding: .utf8)
            try await session.upload(localPath: local, remotePath: path, mode: mode, progress: nil)
        } catch {
            throw BackendError(component: component, step: "write \(path)", detail: "\(error)")
        }
    }

    static func tail(_ text: String, limit: Int = 1500) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.count > limit ? "…" + String(trimmed.suffix(limit)) : trimmed
    }
}

/// Typed counters of one port or interface.
public struct PortCounters: Sendable, Equatable {
    /// Packets received.
    public var rxPackets: UInt64 = 0
    /// Packets sent.
    public var txPackets: UInt64 = 0
    /// Bytes received.
    public var rxBytes: UInt64 = 0
    /// Bytes sent.
    public var txBytes: UInt64 = 0
    /// Receive errors.
    public var rxErrors: UInt64 = 0
    /// Transmit errors.
    public var txErrors: UInt64 = 0
    /// Packets dropped on receive (OVS `rx_dropped`, testpmd `RX-missed`, kernel `dropped`).
    public var rxDropped: UInt64 = 0
    /// Packets dropped on transmit.
    public var txDropped: UInt64 = 0
    /// Every counter the source reported, by its own name.
    public var raw: [String: UInt64] = [:]

    /// Creates counters (all zero by default).
    public init(rxPackets: UInt64 = 0, txPackets: UInt64 = 0, rxBytes: UInt64 = 0, txBytes: UInt64 = 0,
                rxErrors: UInt64 = 0, txErrors: UInt64 = 0, rxDropped: UInt64 = 0, txDropped: UInt64 = 0,
                raw: [String: UInt64] = [:]) {
        self.rxPackets = rxPackets
        self.txPackets = txPackets
        self.rxBytes = rxBytes
        self.txBytes = txBytes
        self.rxErrors = rxErrors
        self.txErrors = txErrors
        self.rxDropped = rxDropped
        self.txDropped = txDropped
        self.raw = raw
    }

    /// How a source names the counters that have fields here (`nil`: the source has none).
    public struct Names: Sendable {
        public var rxPackets, txPackets, rxBytes, txBytes, rxErrors, txErrors, rxDropped: String
        public var txDropped: String?

        public init(rxPackets: String, txPackets: String, rxBytes: String, txBytes: String,
                    rxErrors: String, txErrors: String, rxDropped: String, txDropped: String?) {
            (self.rxPackets, self.txPackets, self.rxBytes, self.txBytes) = (rxPackets, txPackets, rxBytes, txBytes)
            (self.rxErrors, self.txErrors, self.rxDropped, self.txDropped) = (rxErrors, txErrors, rxDropped, txDropped)
        }
    }

    /// Counters from a source's `raw` counters, the fields read under the source's `names`
    /// (a missing counter is 0).
    public init(raw: [String: UInt64], names: Names) {
        func value(_ key: String?) -> UInt64 { key.flatMap { raw[$0] } ?? 0 }
        self.init(rxPackets: value(names.rxPackets), txPackets: value(names.txPackets), rxBytes: value(names.rxBytes),
                  txBytes: value(names.txBytes), rxErrors: value(names.rxErrors), txErrors: value(names.txErrors),
                  rxDropped: value(names.rxDropped), txDropped: value(names.txDropped), raw: raw)
    }
}
