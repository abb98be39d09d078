import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM delivered as events instead of killing the process, so that every VM and
/// backend can be torn down first. One trap per process, installed by the command that runs.
///
/// The first signal is remembered: ``wait()`` returns it, at once when it came before. What a
/// signal does beyond that is `onSignal`'s: `dts run` asks the runner to stop on the first and
/// exits at once on the second (``stopping(_:note:)``); `dts vm start` and `dts vm run` wait for
/// the signal and tear their run down.
public final class SignalTrap: Sendable {
    /// Made by `init`, cancelled by ``uninstall()``. Dispatch sources are thread-safe, not marked `Sendable`.
    nonisolated(unsafe) private var sources: [any DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "dts-signals")
    /// The first signal.
    private let first = Latch<Int32>()
    /// How many signals arrived.
    private let count = Mutex(0)

    /// Installs handlers for `signals` (their default action, ending the process, is turned off).
    /// `onSignal` gets each signal with how many have arrived so far, this one included.
    public init(_ signals: [Int32] = [SIGINT, SIGTERM], onSignal: (@Sendable (_ signal: Int32, _ count: Int) -> Void)? = nil) {
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [weak self] in
                guard let self else { return }
                let seen = fire(number)
                onSignal?(number, seen)
            }
            source.resume()
            sources.append(source)
        }
    }

    /// A trap for `dts run`: the first signal asks `control` to stop (the running case is
    /// cancelled, tear-downs and cleanups run, bounded, partial results are written, and the run
    /// exits with 128 + the signal); a second one exits at once with the same status, skipping
    /// the remaining cleanup. `note` prints a line for the user.
    public static func stopping(_ control: RunControl, note: @escaping @Sendable (String) -> Void) -> SignalTrap {
        SignalTrap { number, seen in
            let name = StopReason.signal(number).description
            if seen == 1 {
                note("\(name): stopping the running case, then tear-downs and cleanup (send again to exit at once)")
                control.requestStop(.signal(number))
            } else {
                note("\(name) again: exiting without further cleanup")
                _exit(DTSExitCode.status(stoppedBy: number))
            }
        }
    }

    /// The first signal received, if any.
    public var received: Int32? { first.value }

    /// Waits for the first signal; `nil` when the waiting task is cancelled before one arrives.
    public func wait() async -> Int32? { await first.wait(timeout: nil) }

    /// Removes the handlers and restores default signal behaviour.
    public func uninstall() {
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }

    /// Records a signal and wakes the waiters; returns how many signals arrived so far.
    private func fire(_ number: Int32) -> Int {
        let seen = count.withLock { count in
            count += 1
            return count
        }
        first.set(number)
        return seen
    }
}
