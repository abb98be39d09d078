import Foundation

/// The cleanup registry of a run: whatever a run starts (VMs, vhost-user backends, OVS) registers
/// how to stop it, and the runner calls every remaining cleanup on every exit path (normal end,
/// failure, SIGINT/SIGTERM), newest first, each bounded in time.
///
/// ```swift
/// let token = await dut.resources.register("vm0 qemu pid \(pid)") { await vm.kill() }
/// ...                                          // normal stop:
/// await dut.resources.run(token)               // runs it now and forgets it
/// ```
public actor RunResources {
    /// Identifies a registration.
    public struct Token: Hashable, Sendable {
        fileprivate let id: Int
    }

    private struct Entry {
        let token: Token
        let name: String
        let cleanup: @Sendable () async -> Void
    }

    private var entries: [Entry] = []
    private var nextID = 0
    private var log: [String] = []

    /// The VM start stages recorded in this run (for the report's timeline).
    public nonisolated let timeline = BootTimeline()

    /// Creates an empty registry.
    public init() {}

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

    /// Runs one cleanup now and forgets it.
    public func run(_ token: Token, timeout: Duration = .seconds(60)) async {
        guard let index = entries.firstIndex(where: { $0.token == token }) else { return }
        let entry = entries.remove(at: index)
        await runBounded(entry, timeout: timeout)
    }

    /// The names of the cleanups still registered, oldest first.
    public var pending: [String] { entries.map(\.name) }

    /// What the cleanups did (`name: done in 0.2 s`, `name: still running after 60 s`).
    public var history: [String] { log }

    /// Runs every remaining cleanup, newest first, each bounded by `timeout`; returns what was run.
    @discardableResult
    public func cleanupAll(timeout: Duration = .seconds(60)) async -> [String] {
        var ran: [String] = []
        while let entry = entries.popLast() {
            await runBounded(entry, timeout: timeout)
            ran.append(entry.name)
        }
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

/// VM start stages, recorded by the VM layer: `timeline.record(vm: "vm0", stage: "boot", start:, end:)`.
public final class BootTimeline: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [BootStageEvent] = []

    /// Creates an empty timeline.
    public init() {}

    /// Records one stage.
    public func record(vm: String, stage: String, start: Date, end: Date) {
        lock.withLock { storage.append(BootStageEvent(vm: vm, stage: stage, start: start, end: end)) }
    }

    /// Times `body` and records it as a stage.
    public func measure<T>(vm: String, stage: String, _ body: () async throws -> T) async rethrows -> T {
        let start = Date()
        defer { record(vm: vm, stage: stage, start: start, end: Date()) }
        return try await body()
    }

    /// Every stage recorded so far.
    public var events: [BootStageEvent] { lock.withLock { storage } }
}
