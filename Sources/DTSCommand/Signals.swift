import DTS
import DTSProcess
import Foundation

/// While armed, SIGINT or SIGTERM tears down `run` and exits with 128 + the signal (130 for
/// Ctrl-C). Used while a VM boots, and while `dts vm run`'s command runs.
struct InterruptExit {
    private let task: Task<Void, Never>

    /// Arms the handler; `what` names what is being stopped in the message to standard error.
    init(_ trap: SignalTrap, run: DTS.Run, stopping what: String) {
        task = Task {
            // A signal that arrives once disarmed is left to the caller (the trap remembers it).
            guard let signal = await trap.wait(), !Task.isCancelled else { return }
            FileHandle.standardError.write(Data("dts: \(SignalName.describe(signal)), stopping \(what)\n".utf8))
            await run.tearDown()
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
