import DTSSession
import Dispatch

/// Tasks waiting for a message that the reader thread delivers later (a reply, an event), oldest
/// first. Each waiter is kept under a token, so that its deadline or its task's cancellation can
/// take it back out.
///
/// It lives in its owner's `Mutex` state, so that adding a waiter is atomic with the owner's own
/// checks (the socket closed, the event already buffered); the waiters it hands back are resumed
/// after leaving the lock.
struct WaiterQueue<Value: Sendable, Tag: Sendable>: Sendable {
    struct Waiter: Sendable {
        let token: UInt64
        /// What the waiter waits for (a matcher, an event name).
        let tag: Tag
        let continuation: CheckedContinuation<Value, any Error>
    }

    private var waiters: [Waiter] = []
    private var lastToken: UInt64 = 0

    /// A token no waiter of this queue had.
    mutating func newToken() -> UInt64 {
        lastToken += 1
        return lastToken
    }

    mutating func append(_ token: UInt64, _ tag: Tag, _ continuation: CheckedContinuation<Value, any Error>) {
        waiters.append(Waiter(token: token, tag: tag, continuation: continuation))
    }

    /// Takes out the waiter under `token`, if it still waits.
    mutating func remove(token: UInt64) -> Waiter? {
        guard let index = waiters.firstIndex(where: { $0.token == token }) else { return nil }
        return waiters.remove(at: index)
    }

    /// Takes out the oldest waiter whose tag satisfies `accepts`.
    mutating func removeFirst(where accepts: (Tag) -> Bool) -> Waiter? {
        guard let index = waiters.firstIndex(where: { accepts($0.tag) }) else { return nil }
        return waiters.remove(at: index)
    }

    /// Takes out every waiter whose tag satisfies `accepts` (all of them by default).
    mutating func removeAll(where accepts: (Tag) -> Bool = { _ in true }) -> [Waiter] {
        var taken: [Waiter] = []
        waiters.removeAll { waiter in
            guard accepts(waiter.tag) else { return false }
            taken.append(waiter)
            return true
        }
        return taken
    }
}

/// Suspends until the continuation handed to `register` is resumed, bounded by `timeout` and
/// by the task's cancellation. `register` adds the continuation (with ``WaiterQueue/append(_:_:_:)``) and
/// returns `true`, or resumes it at once and returns `false`; once it is added and its deadline
/// set, `then` runs (sends the request). At the deadline `expire(true)` is called, on
/// cancellation `expire(false)`: it takes the waiter back out, if it still waits, and fails it.
func awaitWaiter<Value: Sendable>(
    timeout: Duration, register: (CheckedContinuation<Value, any Error>) -> Bool, then: () -> Void = {},
    expire: @escaping @Sendable (_ timedOut: Bool) -> Void
) async throws -> Value {
    try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            guard register(continuation) else { return }
            // A task cancelled before the waiter was added ran the handler below for nothing.
            if Task.isCancelled { expire(false) }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout.seconds) { expire(true) }
            then()
        }
    } onCancel: {
        expire(false)
    }
}
