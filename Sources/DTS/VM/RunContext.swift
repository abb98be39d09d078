import Foundation
import Logging

/// What one dts run shares across its VMs: the private run directory, the resource allocator,
/// the deadline factor, and the list of things to tear down on every exit path.
public final class RunContext: @unchecked Sendable {
    /// The run's private directory.
    public let run: RunDirectory
    /// Reserves ports, displays and MACs for the run's VMs.
    public let allocator: HostResourceAllocator
    /// Multiplies every VM deadline (`DTS_TIMEOUT_FACTOR`, default 1; slow hosts and TCG may want more).
    public let timeoutFactor: Double
    /// The run's logger.
    public let logger: Logger

    private let lock = NSLock()
    private var cleanups: [(id: Int, name: String, action: @Sendable () async -> Void)] = []
    private var nextID = 0

    /// Creates a run: first cleans up what killed runs left under `root`, then makes a fresh directory.
    public init(root: String = RunDirectory.defaultRoot, listenAddress: String = "127.0.0.1",
                hugepageMount: String? = HostFacts.hugetlbfsMount(),
                timeoutFactor: Double? = nil, logger: Logger = Logger(label: "dts.run")) throws {
        RunDirectory.cleanStale(root: root, logger: logger)
        run = try RunDirectory(root: root)
        allocator = try HostResourceAllocator(run: run, listenAddress: listenAddress, hugepageMount: hugepageMount)
        let env = ProcessInfo.processInfo.environment["DTS_TIMEOUT_FACTOR"].flatMap(Double.init)
        self.timeoutFactor = max(0.1, timeoutFactor ?? env ?? 1)
        self.logger = logger
    }

    nonisolated(unsafe) private static var sharedContext: RunContext?
    private static let sharedLock = NSLock()

    /// The process-wide run, created on first use.
    public static func shared() throws -> RunContext {
        try sharedLock.withLock {
            if let context = sharedContext { return context }
            let context = try RunContext()
            sharedContext = context
            return context
        }
    }

    /// Tears down the process-wide run, if one was created; returns what it stopped.
    public static func cleanUpShared() async -> [String] {
        guard let context = sharedLock.withLock({ sharedContext }) else { return [] }
        let names = context.pending
        await context.cleanUpAll()
        sharedLock.withLock { sharedContext = nil }
        return names
    }

    /// Registers a teardown (a VM's stop, a backend's shutdown) run by ``cleanUpAll()``.
    @discardableResult
    public func register(_ name: String, _ action: @escaping @Sendable () async -> Void) -> Int {
        lock.withLock {
            nextID += 1
            cleanups.append((nextID, name, action))
            return nextID
        }
    }

    /// Removes a teardown that already ran.
    public func unregister(_ id: Int) {
        lock.withLock { cleanups.removeAll { $0.id == id } }
    }

    /// Names of the teardowns still pending.
    public var pending: [String] { lock.withLock { cleanups.map(\.name) } }

    /// Runs every pending teardown, newest first, then removes the run directory.
    public func cleanUpAll() async {
        let actions = lock.withLock { () -> [(id: Int, name: String, action: @Sendable () async -> Void)] in
            defer { cleanups.removeAll() }
            return cleanups.reversed()
        }
        for item in actions {
            logger.info("tearing down \(item.name)")
            await item.action()
        }
        run.remove()
    }
}
