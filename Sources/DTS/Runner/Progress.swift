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
    /// A VM start stage began or ended (boot progress).
    func vmStage(_ event: VMStageEvent)
}

extension RunProgress {
    public func vmStage(_ event: VMStageEvent) {}
}

/// Progress on the terminal: a live line per case when stdout is a TTY, plain lines otherwise (CI),
/// and a summary table at the end. While a VM starts, the live line shows its current stage and
/// the time since its start began (`vm0: guest-agent 3.2 s`, `vm0: restore 0.4 s`); without a
/// terminal, each stage that ends is a plain line (`vm0: restore passed (0.42 s)`).
public final class TerminalProgress: RunProgress, Sendable {
    private let interactive: Bool
    /// The running case's line (interactive only) and when it began, and the VM start shown in
    /// its place while a VM starts: its current stage, and when its start began.
    private struct Live {
        var line: String?
        var start = ContinuousClock.now
        var vm: (text: String, start: ContinuousClock.Instant)?
    }
    private let live = Mutex(Live())
    /// Redraws the live line (interactive only). Dispatch sources are thread-safe, not marked `Sendable`.
    nonisolated(unsafe) private let ticker: (any DispatchSourceTimer)?
    private let write: @Sendable (String) -> Void

    /// `interactive` defaults to whether standard output is a terminal; `write` to writing to
    /// standard output.
    public init(interactive: Bool = isatty(STDOUT_FILENO) == 1,
                write: @escaping @Sendable (String) -> Void = { FileHandle.standardOutput.write(Data($0.utf8)) }) {
        self.interactive = interactive
        self.write = write
        // Redraw the live line with the time spent so far (tenths of a second while a VM starts).
        ticker = interactive ? DispatchSource.makeTimerSource(queue: DispatchQueue(label: "dts-progress")) : nil
        ticker?.schedule(deadline: .now() + 0.2, repeating: 0.2)
        ticker?.setEventHandler { [weak self] in self?.tick() }
        ticker?.resume()
    }

    deinit { ticker?.cancel() }

    private func tick() {
        live.withLock { live in
            if let vm = live.vm {
                let elapsed = (ContinuousClock.now - vm.start).seconds
                write("\r\u{1B}[K\(vm.text) \(String(format: "%.1f", elapsed)) s")
                return
            }
            guard let line = live.line else { return }
            let elapsed = (ContinuousClock.now - live.start).components.seconds
            write("\r\u{1B}[K\(line) \(elapsed) s")
        }
    }

    public func vmStage(_ event: VMStageEvent) {
        guard interactive else {
            guard event.outcome == .passed || event.outcome == .failed else { return }
            emit("   \(event.vm): \(event.stage.rawValue) \(event.outcome.rawValue)" + (event.duration.map { String(format: " (%.2f s)", $0) } ?? ""))
            return
        }
        live.withLock { live in
            switch event.outcome {
            case .started:
                let start = live.vm?.start ?? ContinuousClock.now - Duration.milliseconds(Int64(event.at * 1000))
                live.vm = ("   \(event.vm): \(event.stage.rawValue)", start)
            case .failed:
                live.vm = nil
            case .passed, .skipped:
                // The last stage ends the VM's start: the case's own line comes back.
                if event.stage == .pciMap || event.stage == .incoming { live.vm = nil }
            }
            if live.vm == nil, let line = live.line {
                write("\r\u{1B}[K\(line)")
            }
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
                write(text)
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
            if interactive, live.line != nil || live.vm != nil { out += "\r\u{1B}[K" }
            live.line = nil
            live.vm = nil
            out += line + "\n"
            write(out)
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
