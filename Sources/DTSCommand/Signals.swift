import DTS
import DTSProcess
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM delivered as an async event instead of killing the process, so that every
/// VM and backend can be torn down first.
///
/// The first signal is remembered: a ``wait()`` that starts after it returns at once.
final class SignalWaiter: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLock()
    private var received: Int32?
    private var waiters: [Int: CheckedContinuation<Int32?, Never>] = [:]
    private var nextWaiter = 0

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

    /// Waits for the first signal; `nil` when the waiting task is cancelled before one arrives.
    func wait() async -> Int32? {
        let id = lock.withLock { () -> Int in nextWaiter += 1; return nextWaiter }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Int32?, Never>) in
                lock.lock()
                if let received { lock.unlock(); continuation.resume(returning: received); return }
                // Cancelled before the continuation was registered: the handler below found nothing to resume.
                if Task.isCancelled { lock.unlock(); continuation.resume(returning: nil); return }
                waiters[id] = continuation
                lock.unlock()
            }
        } onCancel: {
            let continuation = lock.withLock { waiters.removeValue(forKey: id) }
            continuation?.resume(returning: nil)
        }
    }

    private func fire(_ sig: Int32) {
        lock.lock()
        if received == nil { received = sig }
        let first = received!
        let pending = waiters.values
        waiters = [:]
        lock.unlock()
        pending.forEach { $0.resume(returning: first) }
    }
}

/// While armed, SIGINT or SIGTERM tears down everything `context` started and exits with
/// 128 + the signal (130 for Ctrl-C). Used while a VM boots, and while `dts vm run`'s command runs.
struct InterruptExit {
    private let task: Task<Void, Never>

    /// Arms the handler; `what` names what is being stopped in the message to standard error.
    init(_ trap: SignalWaiter, context: RunContext, stopping what: String) {
        task = Task {
            // A signal that arrives once disarmed is left to the caller (the trap remembers it).
            guard let signal = await trap.wait(), !Task.isCancelled else { return }
            FileHandle.standardError.write(Data("dts: \(SignalName.describe(signal)), stopping \(what)\n".utf8))
            await context.cleanUpAll()
            Foundation.exit(DTSExitCode.status(stoppedBy: signal))
        }
    }

    /// Disarms the handler and waits until it is done. When a signal was already being handled,
    /// this does not return: the teardown finishes and the process exits. So after `disarm()`,
    /// nothing of the handler runs any more.
    func disarm() async {
        task.cancel()
        await task.value
    }
}
