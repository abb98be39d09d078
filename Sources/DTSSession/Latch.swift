import Synchronization

/// A value that is set once (a child's exit status, the first signal) and that any number of tasks
/// wait for: each waiter is resumed when the value is set, or at once when it already was. A waiter
/// with a deadline, or whose task is cancelled, gets `nil` instead, at once (nothing polls).
public final class Latch<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [UInt64: CheckedContinuation<Value?, Never>] = [:]
        var lastID: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Creates an unset latch.
    public init() {}

    /// The value, once set.
    public var value: Value? { state.withLock { $0.value } }

    /// Sets the value and resumes every waiter with it; only the first call sets it. Returns
    /// whether this call did.
    @discardableResult
    public func set(_ value: Value) -> Bool {
        let woken: [CheckedContinuation<Value?, Never>]? = state.withLock { state in
            guard state.value == nil else { return nil }
            state.value = value
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        guard let woken else { return false }
        for waiter in woken { waiter.resume(returning: value) }
        return true
    }

    /// Waits until the value is set; cancelling the task does not end the wait.
    public func wait() async -> Value {
        let id = newID()
        return await withCheckedContinuation { add(id, $0) }!
    }

    /// Waits until the value is set, up to `timeout` (`nil`: no deadline); `nil` at the deadline
    /// or when the waiting task is cancelled.
    public func wait(timeout: Duration?) async -> Value? {
        let id = newID()
        let timer = timeout.map { timeout in
            Task { [self] in
                try? await Task.sleep(for: timeout)
                expire(id)
            }
        }
        defer { timer?.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                add(id, continuation)
                // A task cancelled before the waiter was added ran the handler below for nothing.
                if Task.isCancelled { expire(id) }
            }
        } onCancel: {
            expire(id)
        }
    }

    private func newID() -> UInt64 {
        state.withLock { state in
            state.lastID += 1
            return state.lastID
        }
    }

    private func add(_ id: UInt64, _ continuation: CheckedContinuation<Value?, Never>) {
        let done: Value? = state.withLock { state in
            if state.value == nil { state.waiters[id] = continuation }
            return state.value
        }
        if let done { continuation.resume(returning: done) }
    }

    /// Resumes waiter `id` with `nil`, if it still waits.
    private func expire(_ id: UInt64) {
        state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
    }
}
