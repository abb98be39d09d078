import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM delivered as an async event instead of killing the process, so that every
/// VM and backend can be torn down first.
final class SignalWaiter: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLock()
    private var received: Int32?
    private var waiters: [CheckedContinuation<Int32, Never>] = []

    init(_ signals: [Int32] = [SIGINT, SIGTERM]) {
        for sig in signals {
            Glibc.signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.fire(sig) }
            source.resume()
            sources.append(source)
        }
    }

    /// The signal received so far, if any.
    var signal: Int32? { lock.withLock { received } }

    /// Waits for the first signal.
    func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            lock.lock()
            if let received { lock.unlock(); continuation.resume(returning: received); return }
            waiters.append(continuation)
            lock.unlock()
        }
    }

    private func fire(_ sig: Int32) {
        lock.lock()
        if received == nil { received = sig }
        let pending = waiters
        waiters = []
        lock.unlock()
        pending.forEach { $0.resume(returning: sig) }
    }
}
