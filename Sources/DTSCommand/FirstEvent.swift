import Foundation

/// The first of several concurrent events, delivered once; later ones are ignored.
///
/// Unlike waiting in a task group, ``wait()`` does not wait for the events that did not come:
/// an event that only happens later, or never (QEMU's exit while the VM is kept running), cannot
/// hold the waiter.
final class FirstEvent<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value?
    private var continuation: CheckedContinuation<Value, Never>?

    /// Delivers `value` unless an event came before; returns whether it was the first.
    @discardableResult
    func deliver(_ value: Value) -> Bool {
        lock.lock()
        guard self.value == nil else { lock.unlock(); return false }
        self.value = value
        let waiting = continuation
        continuation = nil
        lock.unlock()
        waiting?.resume(returning: value)
        return true
    }

    /// Waits for the first event; returns at once if it already came. For one waiter.
    func wait() async -> Value {
        await withCheckedContinuation { continuation in
            lock.lock()
            if let value { lock.unlock(); continuation.resume(returning: value); return }
            precondition(self.continuation == nil, "FirstEvent has one waiter")
            self.continuation = continuation
            lock.unlock()
        }
    }
}
