/// The task waiting for a `LoopOperation`'s result, resumed at most once.
///
/// An operation can reach several ends (its result, a failed libssh2 call, its deadline, a broken or
/// closed connection), and some keep working after answering (closing their channel in the
/// background). Each end resumes the waiter; only the first one counts, later ones do nothing.
/// Touched only on the connection thread.
struct OnceContinuation<Value: Sendable> {
    private var continuation: CheckedContinuation<Value, any Error>?

    init(_ continuation: CheckedContinuation<Value, any Error>) {
        self.continuation = continuation
    }

    /// Resumes the waiter with `outcome`, unless it has been resumed already.
    mutating func resume(with outcome: Result<Value, any Error>) {
        continuation?.resume(with: outcome)
        continuation = nil
    }

    mutating func resume(returning value: Value) { resume(with: .success(value)) }

    mutating func resume(throwing error: any Error) { resume(with: .failure(error)) }
}

extension OnceContinuation where Value == Void {
    mutating func resume() { resume(returning: ()) }
}
