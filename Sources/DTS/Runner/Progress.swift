import Foundation
import Synchronization

/// Receives the runner's progress (terminal output, tests).
public protocol RunProgress: Sendable {
    /// A suite begins on a DUT/target.
    func suiteStarted(_ suite: String, dut: String, target: String)
    /// A case attempt begins.
    func caseStarted(_ suite: String, _ name: String, attempt: Int)
    /// A case attempt ended.
    func caseFinished(_ suite: String, _ name: String, attempt: CaseAttempt)
    /// A free-form note (setUpAll failed, interrupted, cleanup).
    func note(_ text: String)
}

/// Progress on the terminal: a live line per case when stdout is a TTY, plain lines otherwise (CI),
/// and a summary table at the end.
public final class TerminalProgress: RunProgress, Sendable {
    private let interactive: Bool
    /// The running case's line (interactive only) and when it began.
    private struct Live {
        var line: String?
        var start = ContinuousClock.now
    }
    private let live = Mutex(Live())
    /// Redraws the live line (interactive only). Dispatch sources are thread-safe, not marked `Sendable`.
    nonisolated(unsafe) private let ticker: (any DispatchSourceTimer)?

    /// `interactive` defaults to whether standard output is a terminal.
    public init(interactive: Bool = isatty(STDOUT_FILENO) == 1) {
        self.interactive = interactive
        // Redraw the live line every second with the time spent so far.
        ticker = interactive ? DispatchSource.makeTimerSource(queue: DispatchQueue(label: "dts-progress")) : nil
        ticker?.schedule(deadline: .now() + 1, repeating: 1)
        ticker?.setEventHandler { [weak self] in self?.tick() }
        ticker?.resume()
    }

    deinit { ticker?.cancel() }

    private func tick() {
        live.withLock { live in
            guard let line = live.line else { return }
            let elapsed = (ContinuousClock.now - live.start).components.seconds
            FileHandle.standardOutput.write(Data("\r\u{1B}[K\(line) \(elapsed) s".utf8))
        }
    }

    public func suiteStarted(_ suite: String, dut: String, target: String) {
        emit("== \(suite) on \(dut) (\(target))")
    }

    public func caseStarted(_ suite: String, _ name: String, attempt: Int) {
        let text = "   \(suite)/\(name)" + (attempt > 1 ? " (attempt \(attempt))" : "") + " ..."
        live.withLock { live in
            if interactive {
                live.line = text
                live.start = ContinuousClock.now
                FileHandle.standardOutput.write(Data(text.utf8))
            }
        }
    }

    public func caseFinished(_ suite: String, _ name: String, attempt: CaseAttempt) {
        var text = "   \(suite)/\(name) \(attempt.status.rawValue) (\(String(format: "%.2f", attempt.duration)) s)"
        if let reason = attempt.reason, attempt.status != .passed { text += ": " + (reason.split(separator: "\n").first.map(String.init) ?? "") }
        emit(text)
    }

    public func note(_ text: String) { emit("   " + text) }

    private func emit(_ line: String) {
        live.withLock { live in
            var out = ""
            if interactive, live.line != nil { out += "\r\u{1B}[K" }
            live.line = nil
            out += line + "\n"
            FileHandle.standardOutput.write(Data(out.utf8))
        }
    }

    /// The end-of-run summary table.
    public static func summary(_ report: RunReport) -> String {
        var rows: [[String]] = [["suite", "case", "status", "time (s)", "attempts"]]
        for entry in report.allCases {
            let suite = report.executions.count > 1 ? "\(entry.suite.name) [\(entry.execution.dut) \(entry.execution.target)]" : entry.suite.name
            rows.append([suite, entry.case.name, entry.case.status.rawValue, String(format: "%.2f", entry.case.duration),
                         String(entry.case.attempts.count)])
        }
        let widths = (0..<5).map { column in rows.map { $0[column].count }.max() ?? 0 }
        var text = ""
        for (index, row) in rows.enumerated() {
            text += row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ") + "\n"
            if index == 0 { text += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n" }
        }
        let counts = report.counts
        text += "\n" + CaseStatus.allCases.map { "\($0.rawValue) \(counts[$0] ?? 0)" }.joined(separator: ", ")
        text += String(format: " in %.1f s", report.duration)
        if let interrupted = report.interrupted { text += "; interrupted by \(interrupted)" }
        text += "; exit status \(report.exitStatus)\n"
        return text
    }
}
