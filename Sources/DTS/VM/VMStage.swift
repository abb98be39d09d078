import Foundation
import Synchronization

/// The stages a VM goes through on its way up, each with its own deadline.
public enum VMStage: String, Sendable, CaseIterable {
    /// Runtime directory, command line, hugepages and files checked.
    case prepare
    /// QEMU started (and, when it daemonizes, its pid file written).
    case spawn
    /// The QMP handshake done.
    case qmp
    /// Warm boot: the guest's saved state loaded from a snapshot (QMP `migrate-incoming`); it
    /// takes the place of the guest's own boot.
    case restore
    /// Live migration: QEMU waits for the migration stream (QMP `query-status` says `inmigrate`);
    /// the start of an incoming VM ends here.
    case incoming
    /// Live migration: the incoming migration completed on this QEMU (`query-migrate`), which now
    /// runs the guest.
    case migrated
    /// vCPU threads pinned while the guest is paused, then the guest continued.
    case pinning
    /// The guest agent answers `guest-ping`.
    case guestAgent = "guest-agent"
    /// Warm boot: a restored guest's clock set from the host's, and fresh host randomness given
    /// to its random number generator (through the guest agent).
    case guestRefresh = "guest-refresh"
    /// The management interface has an IPv4 address (seen through the guest agent).
    case managementAddress = "management-address"
    /// Warm boot: the ready guest saved to the snapshot cache (paused, saved, continued), on the
    /// first cold boot of its machine.
    case snapshot
    /// SSH login through the forwarded port succeeded.
    case ssh
    /// The guest PCI map (`pt_N` ids) read.
    case pciMap = "pci-map"
}

/// One stage's timing, for progress lines and the report's boot timeline.
public struct VMStageEvent: Sendable, Equatable {
    public enum Outcome: String, Sendable { case started, passed, failed, skipped }
    public var vm: String
    public var stage: VMStage
    public var outcome: Outcome
    /// Seconds since the start of `start()`.
    public var at: Double
    /// Seconds the stage took (for `passed` and `failed`).
    public var duration: Double?
}

/// Why a VM did not come up: the stage, how long it took, and what QEMU and the guest said.
public struct VMStartError: DetailedError, Sendable, CustomStringConvertible {
    public enum Reason: Error, Sendable, CustomStringConvertible {
        /// QEMU exited during the stage (128 + N for signal N).
        case qemuExited(status: Int32)
        /// The guest kernel panicked during the stage: its console's panic line.
        case guestPanicked(String)
        /// The stage's deadline passed.
        case timedOut(Duration)
        /// The stage's work failed.
        case failed(String)

        public var description: String {
            switch self {
            case .qemuExited(let status): return "QEMU exited (\(QEMUExit.describe(status)))"
            case .guestPanicked(let line): return "the guest kernel panicked: \(line)"
            case .timedOut(let deadline): return "not done within its deadline of \(deadline.secondsText)"
            case .failed(let message): return message
            }
        }
    }

    public var vm: String
    public var stage: VMStage
    public var reason: Reason
    /// Seconds since `start()` began.
    public var elapsed: Double
    /// The end of QEMU's standard error.
    public var qemuStderr: String
    /// The end of the serial console log.
    public var consoleTail: String
    /// Where the VM's files are (console log, stderr, QMP transcript).
    public var logDirectory: String

    /// Creates an error; the tails are empty until QEMU ran.
    public init(vm: String, stage: VMStage, reason: Reason, elapsed: Double = 0, qemuStderr: String = "", consoleTail: String = "",
                logDirectory: String) {
        self.vm = vm
        self.stage = stage
        self.reason = reason
        self.elapsed = elapsed
        self.qemuStderr = qemuStderr
        self.consoleTail = consoleTail
        self.logDirectory = logDirectory
    }

    /// One or two lines, short enough for a case's reason: the stage, the reason, QEMU's last
    /// words when it exited, and where the logs are. The tails are in ``details``, the whole
    /// console and stderr in the log directory.
    public var description: String {
        var text = "VM \(vm) failed at stage '\(stage.rawValue)' after \(String(format: "%.1f", elapsed)) s: \(reason)"
        if case .qemuExited = reason { text += QEMUExit.lastWords(qemuStderr) }
        return text + "\n(logs: \(logDirectory): console.log, qemu.stderr)"
    }

    /// ``description`` with the end of QEMU's stderr and of the console, for logs and terminals.
    public var details: String { QEMUExit.withTails(description, qemuStderr: qemuStderr, consoleTail: consoleTail) }
}

extension Duration {
    /// Scaled by a run-wide factor.
    func scaled(_ factor: Double) -> Duration { .milliseconds(Int64(seconds * factor * 1000)) }
}

/// The last `lines` lines of a text file (empty if unreadable).
func tail(of path: String, lines: Int = 20) -> String {
    guard let data = FileManager.default.contents(atPath: path) else { return "" }
    let text = String(decoding: data.suffix(64 * 1024), as: UTF8.self)
    return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
        .trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Runs `body` until it finishes, `deadline` passes, or `interrupted` reports what ends it
/// (QEMU's exit, a guest panic), whichever comes first. The losers are cancelled and not waited for.
func race<T: Sendable>(deadline: Duration, interrupted: @escaping @Sendable () async -> StageInterruption?,
                       _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let once = RaceOnce()
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let work = Task {
            do {
                let value = try await body()
                if once.claim() { continuation.resume(returning: value); once.cancelAll() }
            } catch {
                if once.claim() { continuation.resume(throwing: error); once.cancelAll() }
            }
        }
        let timer = Task {
            try? await Task.sleep(for: deadline)
            guard !Task.isCancelled else { return }
            if once.claim() { continuation.resume(throwing: StageInterruption.timedOut(deadline)); once.cancelAll() }
        }
        let watcher = Task {
            guard let interruption = await interrupted(), !Task.isCancelled else { return }
            if once.claim() { continuation.resume(throwing: interruption); once.cancelAll() }
        }
        once.track([work, timer, watcher])
    }
}

/// The first finisher of a race claims it; the rest are cancelled.
final class RaceOnce: Sendable {
    private let state = Mutex((done: false, tasks: [Task<Void, Never>]()))
    func claim() -> Bool { state.withLock { if $0.done { return false }; $0.done = true; return true } }
    func cancelAll() { state.withLock { $0.tasks }.forEach { $0.cancel() } }
    /// Keeps the racers to cancel; cancels them at once when the race is already over.
    func track(_ tasks: [Task<Void, Never>]) {
        let done = state.withLock { state in
            state.tasks = tasks
            return state.done
        }
        if done { cancelAll() }
    }
}

enum StageInterruption: Error {
    case timedOut(Duration)
    case exited(Int32)
    case panicked(String)
}
