import Foundation

/// Runs `body` on a thread of its own and waits for it without holding a thread of Swift's
/// cooperative pool. For tests that compute for seconds (timing a parser on large inputs): run on
/// the pool, two such tests would take both of its threads on a 2-core machine, and every other
/// test's async work (fake peers with 5 s windows, shells with deadlines) would stall meanwhile.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = "dts-test-offpool"
        thread.start()
    }
}
