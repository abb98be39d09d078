import Foundation
import Synchronization

/// VM start stages, recorded by the VM layer: `timeline.record(vm: "vm0", stage: "boot", start:, end:)`.
public final class BootTimeline: Sendable {
    private let storage = Mutex<[BootStageEvent]>([])

    /// Creates an empty timeline.
    public init() {}

    /// Records one stage.
    public func record(vm: String, stage: String, start: Date, end: Date) {
        storage.withLock { $0.append(BootStageEvent(vm: vm, stage: stage, start: start, end: end)) }
    }

    /// Times `body` and records it as a stage.
    public func measure<T>(vm: String, stage: String, _ body: () async throws -> T) async rethrows -> T {
        let start = Date()
        defer { record(vm: vm, stage: stage, start: start, end: Date()) }
        return try await body()
    }

    /// Every stage recorded so far.
    public var events: [BootStageEvent] { storage.withLock { $0 } }
}
