import Foundation

/// SIGINT/SIGTERM handling for a run, with Dispatch signal sources.
///
/// The first signal asks the runner to stop (``RunControl/requestStop(_:)``): the running case is
/// cancelled, tear-downs and cleanups run (bounded), partial results are written, and the run
/// exits with 128 + the signal. A second signal exits at once with the same status, skipping the
/// remaining cleanup.
public final class SignalTrap: @unchecked Sendable {
    private var sources: [any DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "dts-signals")
    private let lock = NSLock()
    private var count = 0

    /// Installs handlers for `signals` that stop `control`; `note` prints a line for the user.
    public init(control: RunControl, signals: [Int32] = [SIGINT, SIGTERM], note: @escaping @Sendable (String) -> Void) {
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [self] in
                let seen = lock.withLock { count += 1; return count }
                let name = StopReason.signal(number).description
                if seen == 1 {
                    note("\(name): stopping the running case, then tear-downs and cleanup (send again to exit at once)")
                    control.requestStop(.signal(number))
                } else {
                    note("\(name) again: exiting without further cleanup")
                    _exit(DTSExitCode.status(stoppedBy: number))
                }
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Removes the handlers and restores default signal behaviour.
    public func uninstall() {
        for source in sources { source.cancel() }
        sources = []
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
