import DTSProcess
import Foundation
import Synchronization

/// A one-shot result that can be waited for with a deadline, and woken early by a stop request.
///
/// Used to race a case's task against its deadline without a task group (a group would wait for
/// a case that ignores cancellation; the runner must be able to give up on it).
final class Gate: Sendable {
    enum Wake { case done(Result<Void, any Error>), timeout, stop }

    private struct State {
        var result: Result<Void, any Error>?
        var stopped = false
        var waiter: (id: Int, continuation: CheckedContinuation<Wake, Never>)?
        var nextID = 0
    }
    private let state = Mutex(State())

    /// Stores the outcome and wakes the waiter.
    func finish(_ outcome: Result<Void, any Error>) {
        let continuation: CheckedContinuation<Wake, Never>? = state.withLock { state in
            guard state.result == nil else { return nil }
            state.result = outcome
            defer { state.waiter = nil }
            return state.waiter?.continuation
        }
        continuation?.resume(returning: .done(outcome))
    }

    /// Wakes the waiter with `.stop` (a signal arrived). Later waits return `.stop` at once unless done.
    func stop() {
        let continuation: CheckedContinuation<Wake, Never>? = state.withLock { state in
            state.stopped = true
            defer { state.waiter = nil }
            return state.result == nil ? state.waiter?.continuation : nil
        }
        continuation?.resume(returning: .stop)
    }

    /// Waits until the outcome is stored, `timeout` passes, or ``stop()`` is called.
    func wait(timeout: Duration, ignoreStop: Bool = false) async -> Wake {
        await withCheckedContinuation { (continuation: CheckedContinuation<Wake, Never>) in
            let (immediate, id): (Wake?, Int) = state.withLock { state in
                if let result = state.result { return (.done(result), 0) }
                if state.stopped && !ignoreStop { return (.stop, 0) }
                state.nextID += 1
                state.waiter = (state.nextID, continuation)
                return (nil, state.nextID)
            }
            if let immediate { continuation.resume(returning: immediate); return }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout.seconds) { [self] in
                let expired: CheckedContinuation<Wake, Never>? = state.withLock { state in
                    guard let current = state.waiter, current.id == id else { return nil }
                    state.waiter = nil
                    return current.continuation
                }
                expired?.resume(returning: .timeout)
            }
        }
    }
}

/// Why a run stops early.
public enum StopReason: Sendable, Equatable, CustomStringConvertible {
    /// A signal (SIGINT, SIGTERM).
    case signal(Int32)

    public var description: String {
        switch self {
        case .signal(let number):
            return SignalName.describe(number)
        }
    }
}

/// Lets a signal handler stop the run: it cancels the running steps (one per DUT worker) and makes
/// the runner skip the remaining cases (tear-downs still run, bounded).
public final class RunControl: Sendable {
    private struct State {
        var reason: StopReason?
        /// The interruptible steps running now: one per DUT worker when DUTs run in parallel.
        var running: [Int: (gate: Gate, task: Task<Void, Never>)] = [:]
        var nextID = 0
    }
    private let state = Mutex(State())

    /// Creates a control with no stop requested.
    public init() {}

    /// The stop reason, once requested.
    public var stopReason: StopReason? { state.withLock { $0.reason } }

    /// Requests a stop: every running step's task is cancelled and its wait ends.
    public func requestStop(_ why: StopReason) {
        let running = state.withLock { state -> [(gate: Gate, task: Task<Void, Never>)] in
            if state.reason == nil { state.reason = why }
            return Array(state.running.values)
        }
        for step in running {
            step.task.cancel()
            step.gate.stop()
        }
    }

    /// How a bounded step ended.
    enum StepOutcome {
        /// It returned or threw.
        case finished(Result<Void, any Error>)
        /// The deadline passed; `stopped` says whether it ended within the grace period after cancellation.
        case timedOut(stopped: Bool)
        /// A stop was requested; `stopped` as above.
        case interrupted(stopped: Bool)
    }

    /// Runs `operation` in its own task, bounded by `timeout`. On timeout or stop request the
    /// task is cancelled and given `grace` to end. `interruptible: false` (tear-downs) ignores a stop request.
    func runStep(timeout: Duration, grace: Duration = .seconds(10), interruptible: Bool = true,
                 _ operation: @escaping @Sendable () async throws -> Void) async -> StepOutcome {
        let gate = Gate()
        let task = Task {
            do { try await operation(); gate.finish(.success(())) } catch { gate.finish(.failure(error)) }
        }
        var id: Int?
        if interruptible {
            let (stepID, alreadyStopped) = state.withLock { state -> (Int, Bool) in
                state.nextID += 1
                state.running[state.nextID] = (gate, task)
                return (state.nextID, state.reason != nil)
            }
            id = stepID
            if alreadyStopped { task.cancel(); gate.stop() }
        }
        defer { if let id { _ = state.withLock { $0.running.removeValue(forKey: id) } } }
        let wake = await gate.wait(timeout: timeout, ignoreStop: !interruptible)
        switch wake {
        case .done(let result):
            return .finished(result)
        case .timeout, .stop:
            task.cancel()
            let after = await gate.wait(timeout: grace, ignoreStop: true)
            let stopped: Bool
            if case .done = after { stopped = true } else { stopped = false }
            if case .timeout = wake { return .timedOut(stopped: stopped) }
            return .interrupted(stopped: stopped)
        }
    }
}
