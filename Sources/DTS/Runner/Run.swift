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
    /// The run's logger.
    public nonisolated let logger: Logger
    /// The VM start stages recorded in this run (for the report's timeline).
    public nonisolated let timeline = BootTimeline()

    private nonisolated let place: RunPlace
    private var entries: [Entry] = []
    private var nextID = 0
    private var log: [String] = []

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
        let env = ProcessInfo.processInfo.environment["DTS_TIMEOUT_FACTOR"].flatMap(Double.init)
        self.timeoutFactor = max(0.1, timeoutFactor ?? env ?? 1)
        self.logger = logger
        place = RunPlace(root: root, listenAddress: listenAddress, hugepageMount: hugepageMount, logger: logger)
    }

    // MARK: Directory and allocator

    /// The run's private directory; made on first use, after ``RunDirectory/cleanStale(root:logger:)``.
    public nonisolated var directory: RunDirectory {
        get throws { try place.made().directory }
    }

    /// Reserves ports, displays and MACs for the run's VMs on this machine.
    public nonisolated var allocator: HostResourceAllocator {
        get throws { try place.made().allocator }
    }

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
    let root: String
    let listenAddress: String
    let hugepageMount: String?
    let logger: Logger
    private let current = Mutex<(directory: RunDirectory, allocator: HostResourceAllocator)?>(nil)

    init(root: String, listenAddress: String, hugepageMount: String?, logger: Logger) {
        self.root = root
        self.listenAddress = listenAddress
        self.hugepageMount = hugepageMount
        self.logger = logger
    }

    func made() throws -> (directory: RunDirectory, allocator: HostResourceAllocator) {
        try current.withLock { current in
            if let current { return current }
            RunDirectory.cleanStale(root: root, logger: logger)
            let directory = try RunDirectory(root: root)
            let allocator: HostResourceAllocator
            do {
                allocator = try HostResourceAllocator(run: directory, listenAddress: listenAddress, hugepageMount: hugepageMount)
            } catch {
                directory.remove()
                throw error
            }
            current = (directory, allocator)
            return (directory, allocator)
        }
    }

    /// Removes the directory; a later use makes a new one.
    func remove() {
        let made = current.withLock { current -> RunDirectory? in defer { current = nil }; return current?.directory }
        made?.remove()
    }
}
