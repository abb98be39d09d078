import Synchronization

/// A value shared between a test and the threads, tasks or callbacks it starts, touched only under
/// its lock.
public final class LockedBox<Value: Sendable>: Sendable {
    private let value: Mutex<Value>

    /// A box holding `value`.
    public init(_ value: Value) { self.value = Mutex(value) }

    /// The value now.
    public func get() -> Value { value.withLock { $0 } }

    /// Replaces the value.
    public func set(_ new: Value) { value.withLock { $0 = new } }

    /// Changes the value in place (`box.update { $0.append(x) }`); returns what `body` returns.
    @discardableResult
    public func update<T: Sendable>(_ body: (inout Value) -> T) -> T { value.withLock { body(&$0) } }
}
