import Foundation
import Logging
import Synchronization

/// One dts run: what every DUT, VM and backend of the run shares, and the one list of what to tear
/// down on every exit path.
///
/// - a private run directory (`<root>/run-XXXXXX`: every VM's sockets, pid file and logs) and the
///   host resource allocator (ports, VNC displays, MACs), both made on first use, after cleaning up
///   what killed runs left under the same root;
/// - the deadline factor every VM deadline is multiplied by;
/// - the cleanup registry: whatever the run starts (VMs, backends, a remote DUT's VM directory)
///   registers how to stop it; ``tearDown(timeout:)`` runs what is left, newest first, each
///   bounded in time, then removes the run directory;
/// - the boot timeline the report draws.
///
/// There is no process-wide run: `dts run`, `dts vm start` and tests each make one and hand it to
/// the ``Dut`` (``Dut/run``), from which ``QEMUKvm`` takes it.
///
/// ```swift
/// let run = Run()
/// let dut = Dut(settings: settings, run: run)
/// let token = await run.register("testpmd on \(port)") { await pmd.quit() }
/// ...
/// await run.cleanUp(token)          // stop it now, normally
/// await run.tearDown()              // at the end, on every path
/// ```
public actor Run {
    /// Identifies a registration.
    public struct Token: Hashable, Sendable {
        fileprivate let id: Int
    }

    private struct Entry {
        let token: Token
        let name: String
        let cleanup: @Sendable () async -> Void
    }

    /// Multiplies every VM deadline (`DTS_TIMEOUT_FACTOR`, default 1, at least 0.1; slow hosts and TCG may want more).
    public nonisolated let timeoutFactor: Double
    /// The run's logger: what it was made with and, while a ``Runner`` runs it, the run log
    /// (`dts.log`) too (``attachLog(_:)``).
    public nonisolated let logger: Logger
    private nonisolated let relay: LogRelay
    /// The VM start stages recorded in this run (for the report's timeline).
    public nonisolated let timeline = BootTimeline()
    /// What warm boot remembers during the run (reasons said, snapshots that failed to restore).
    nonisolated let warmBoot = WarmBootLedger()

    private nonisolated let place: RunPlace
    private var entries: [Entry] = []
    private var nextID = 0
    private var log: [String] = []
    /// The run's VMs that are up (started and not yet stopped), by the token ``vmUp(_:)`` gave.
    private var upVMs: Set<Token> = []
    private var faults: [(fault: VMFault, vm: Token)] = []

    /// Creates a run. Nothing is made on disk until a VM needs the run directory.
    ///
    /// - Parameters:
    ///   - root: where run directories live (``RunDirectory/defaultRoot``).
    ///   - listenAddress: the address forwarded ports are reserved on.
    ///   - hugepageMount: the hugetlbfs mount hugepage-backed guests use (the first one in `/proc/mounts`).
    ///   - timeoutFactor: overrides `DTS_TIMEOUT_FACTOR`.
    public init(root: String = RunDirectory.defaultRoot, listenAddress: String = "127.0.0.1",
                hugepageMount: String? = HostFacts.hugetlbfsMount(),
                timeoutFactor: Double? = nil, logger: Logger = Logger(label: "dts.run")) {
        self.init(root: .shared(root), listenAddress: listenAddress, hugepageMount: hugepageMount,
                  timeoutFactor: timeoutFactor, logger: logger)
    }

    /// A run under a root of its own: `/tmp/<prefix>-XXXXXX` (made with `mkdtemp`, mode 0700) on
    /// first use, removed with everything in it by ``tearDown(timeout:)``. For tests and benchmarks:
    /// no fixed name shared with other users or runs, nothing left behind, no stale-run cleanup of
    /// anyone else's runs.
    public static func isolated(prefix: String = "dts-run", listenAddress: String = "127.0.0.1",
                                hugepageMount: String? = HostFacts.hugetlbfsMount(),
                                timeoutFactor: Double? = nil, logger: Logger = Logger(label: "dts.run")) -> Run {
        Run(root: .temporary(prefix: prefix), listenAddress: listenAddress, hugepageMount: hugepageMount,
            timeoutFactor: timeoutFactor, logger: logger)
    }

    private init(root: RunPlace.Root, listenAddress: String, hugepageMount: String?, timeoutFactor: Double?, logger: Logger) {
        let env = ProcessInfo.processInfo.environment["DTS_TIMEOUT_FACTOR"].flatMap(Double.init)
        self.timeoutFactor = max(0.1, timeoutFactor ?? env ?? 1)
        relay = LogRelay(primary: logger)
        self.logger = relay.logger()
        place = RunPlace(root: root, listenAddress: listenAddress, hugepageMount: hugepageMount, logger: self.logger)
    }

    /// Another run under the same root, with the same listen address, hugepage mount, deadline
    /// factor and logger, and its own directory, cleanups and timeline: what one DUT's worker
    /// uses when DUTs run in parallel, so that ending one DUT's execution tears down only what
    /// was started on that DUT. Ports stay unique across runs (the allocator reserves them host-wide).
    /// A run with a root of its own (``isolated(prefix:listenAddress:hugepageMount:timeoutFactor:logger:)``)
    /// gives its sibling another one.
    public nonisolated func sibling() -> Run {
        Run(root: place.root, listenAddress: place.listenAddress, hugepageMount: place.hugepageMount,
            timeoutFactor: timeoutFactor, logger: logger)
    }

    // MARK: Directory and allocator

    /// The run's private directory; made on first use, once the root proved to be this user's own
    /// (``RunDirectory/prepareRoot(_:)``) and after ``RunDirectory/cleanStale(root:logger:)``.
    public nonisolated var directory: RunDirectory {
        get throws { try place.made().directory }
    }

    /// Reserves ports, displays and MACs for the run's VMs on this machine.
    public nonisolated var allocator: HostResourceAllocator {
        get throws { try place.made().allocator }
    }

    /// Sends what ``logger`` logs to `log` as well (the run log), or stops with `nil`.
    public nonisolated func attachLog(_ log: Logger?) { relay.attach(log) }

    /// Removes the run directory, if it was made (``tearDown(timeout:)`` does this after the cleanups).
    nonisolated func removeDirectory() { place.remove() }

    // MARK: Cleanups

    /// Registers a cleanup; `name` appears in logs.
    @discardableResult
    public func register(_ name: String, cleanup: @escaping @Sendable () async -> Void) -> Token {
        nextID += 1
        let token = Token(id: nextID)
        entries.append(Entry(token: token, name: name, cleanup: cleanup))
        return token
    }

    /// Forgets a cleanup without running it (the resource was released another way).
    public func unregister(_ token: Token) {
        entries.removeAll { $0.token == token }
    }

    /// Runs one cleanup now, bounded by `timeout`, and forgets it.
    public func cleanUp(_ token: Token, timeout: Duration = .seconds(60)) async {
        guard let index = entries.firstIndex(where: { $0.token == token }) else { return }
        let entry = entries.remove(at: index)
        await runBounded(entry, timeout: timeout)
    }

    /// The names of the cleanups still registered, oldest first.
    public var pending: [String] { entries.map(\.name) }

    /// What the cleanups did (`name: done in 0.2 s`, `name: still running after 60 s; abandoned`).
    public var history: [String] { log }

    /// Runs every remaining cleanup, newest first, each bounded by `timeout`; returns their names.
    /// A cleanup may register or unregister others meanwhile.
    @discardableResult
    public func cleanUpAll(timeout: Duration = .seconds(60)) async -> [String] {
        var ran: [String] = []
        while let entry = entries.popLast() {
            logger.info("tearing down \(entry.name)")
            await runBounded(entry, timeout: timeout)
            ran.append(entry.name)
        }
        return ran
    }

    /// The end of the run, on every exit path: ``cleanUpAll(timeout:)``, then the run directory
    /// goes. Returns what was cleaned up. Idempotent.
    @discardableResult
    public func tearDown(timeout: Duration = .seconds(60)) async -> [String] {
        let ran = await cleanUpAll(timeout: timeout)
        place.remove()
        return ran
    }

    // MARK: VM faults

    /// A VM of the run came up: its faults may come until ``vmStopped(_:)``.
    func vmUp() -> Token {
        nextID += 1
        let token = Token(id: nextID)
        upVMs.insert(token)
        return token
    }

    /// The VM of `token` was stopped: what happened to it before is no longer "now".
    func vmStopped(_ token: Token) { upVMs.remove(token) }

    /// The VM of `token` failed while it was up.
    func record(_ fault: VMFault, of token: Token) { faults.append((fault, token)) }

    /// A fault of a VM of the run, and whether that VM is still up (not stopped since).
    public struct FaultRecord: Sendable {
        /// What happened.
        public var fault: VMFault
        /// Whether the VM it happened to has not been stopped since.
        public var vmStillUp: Bool
    }

    /// Every fault of the run's VMs so far (QEMU exited unasked, a guest panicked), oldest first.
    /// If there are no more than `count` and a VM is up, waits up to `settling` for one more: an
    /// error of a case (a lost SSH channel) often arrives a moment before QEMU's exit is seen.
    public func vmFaults(newerThan count: Int = 0, settling: Duration = .zero) async -> [FaultRecord] {
        let deadline = ContinuousClock.now + settling
        while faults.count <= count, !upVMs.isEmpty, ContinuousClock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return faults.map { FaultRecord(fault: $0.fault, vmStillUp: upVMs.contains($0.vm)) }
    }

    private func runBounded(_ entry: Entry, timeout: Duration) async {
        let start = ContinuousClock.now
        let gate = Gate()
        let cleanup = entry.cleanup
        let task = Task { await cleanup(); gate.finish(.success(())) }
        switch await gate.wait(timeout: timeout) {
        case .done:
            log.append("\(entry.name): done in \(ContinuousClock.now - start)")
        case .timeout, .stop:
            task.cancel()
            log.append("\(entry.name): still running after \(timeout); abandoned")
        }
    }
}

/// The run directory and allocator, made once on first use.
private final class RunPlace: Sendable {
    /// Where run directories live.
    enum Root: Sendable {
        /// A root runs share (``RunDirectory/defaultRoot``).
        case shared(String)
        /// A root of this run's own, made with `mkdtemp` under `/tmp` and removed with the run.
        case temporary(prefix: String)
    }

    let root: Root
    let listenAddress: String
    let hugepageMount: String?
    let logger: Logger
    private let current = Mutex<(directory: RunDirectory, allocator: HostResourceAllocator)?>(nil)

    init(root: Root, listenAddress: String, hugepageMount: String?, logger: Logger) {
        self.root = root
        self.listenAddress = listenAddress
        self.hugepageMount = hugepageMount
        self.logger = logger
    }

    func made() throws -> (directory: RunDirectory, allocator: HostResourceAllocator) {
        try current.withLock { current in
            if let current { return current }
            let directory: RunDirectory
            switch root {
            case .shared(let root):
                try RunDirectory.prepareRoot(root)
                RunDirectory.cleanStale(root: root, logger: logger)
                directory = try RunDirectory(root: root)
            case .temporary(let prefix):
                directory = try RunDirectory(root: try RunDirectory.makeTemporaryRoot(prefix: prefix))
            }
            let allocator: HostResourceAllocator
            do {
                allocator = try HostResourceAllocator(run: directory, listenAddress: listenAddress, hugepageMount: hugepageMount)
            } catch {
                remove(directory)
                throw error
            }
            current = (directory, allocator)
            return (directory, allocator)
        }
    }

    /// Removes the directory (and a temporary root); a later use makes a new one.
    func remove() {
        let made = current.withLock { current -> RunDirectory? in defer { current = nil }; return current?.directory }
        if let made { remove(made) }
    }

    private func remove(_ directory: RunDirectory) {
        directory.remove()
        if case .temporary = root { try? FileManager.default.removeItem(atPath: directory.root) }
    }
}
