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
    /// The progress of one DUT's worker when DUTs run in parallel: what it reports is that DUT's
    /// (a terminal keeps one live line per DUT, plain lines name the DUT). Default: `self`.
    func forDUT(_ name: String) -> any RunProgress
    /// The worker of this DUT (a ``forDUT(_:)`` progress) is done. Default: nothing.
    func dutFinished()
    /// A VM start stage began or ended (boot progress). Default: nothing.
    func vmStage(_ event: VMStageEvent)
}

extension RunProgress {
    public func forDUT(_ name: String) -> any RunProgress { self }
    public func dutFinished() {}
    public func vmStage(_ event: VMStageEvent) {}
}

/// Progress on the terminal: a live line per running DUT when stdout is a TTY (the case it runs
/// and the time spent so far; one line in a run with one DUT), plain lines otherwise (CI), and a
/// summary table at the end. While a VM starts, its DUT's live line shows the VM's current stage
/// and the time since its start began (`vm0: guest-agent 3.2 s`, `vm0: restore 0.4 s`); without a
/// terminal, each stage that ends is a plain line (`vm0: restore passed (0.42 s)`).
public final class TerminalProgress: RunProgress, Sendable {
    private let interactive: Bool
    /// The live lines (interactive only): one per DUT that runs something, in the order they began.
    private struct Live {
        var lines: [(dut: String, text: String, start: ContinuousClock.Instant)] = []
        /// How many live lines are on the screen; the cursor is at the end of the last one.
        var drawn = 0
        /// A VM start shown in place of its DUT's line: its current stage, and when its start began.
        var vms: [String: (text: String, start: ContinuousClock.Instant)] = [:]
    }
    private let live = Mutex(Live())
    /// Redraws the live lines (interactive only). Dispatch sources are thread-safe, not marked `Sendable`.
    nonisolated(unsafe) private let ticker: (any DispatchSourceTimer)?
    private let write: @Sendable (String) -> Void

    /// `interactive` defaults to whether standard output is a terminal; `write` to writing to
    /// standard output.
    public init(interactive: Bool = isatty(STDOUT_FILENO) == 1,
                write: @escaping @Sendable (String) -> Void = { FileHandle.standardOutput.write(Data($0.utf8)) }) {
        self.interactive = interactive
        self.write = write
        // Redraw the live lines with the time spent so far (tenths of a second while a VM starts).
        ticker = interactive ? DispatchSource.makeTimerSource(queue: DispatchQueue(label: "dts-progress")) : nil
        ticker?.schedule(deadline: .now() + 0.2, repeating: 0.2)
        ticker?.setEventHandler { [weak self] in self?.tick() }
        ticker?.resume()
    }

    deinit { ticker?.cancel() }

    private func tick() {
        live.withLock { live in
            guard !live.lines.isEmpty || !live.vms.isEmpty else { return }
            write(Self.erase(&live) + Self.draw(&live, clock: true))
        }
    }

    public func suiteStarted(_ suite: String, dut: String, target: String) {
        emit("== \(suite) on \(dut) (\(target))", dut: nil)
    }

    public func caseStarted(_ suite: String, _ name: String, attempt: Int) {
        started(suite, name, attempt: attempt, dut: nil)
    }

    public func caseFinished(_ suite: String, _ name: String, attempt: CaseAttempt) {
        emit(Self.finishedLine(suite, name, attempt: attempt), dut: nil)
    }

    public func note(_ text: String) { emit("   " + text, dut: nil) }

    public func forDUT(_ name: String) -> any RunProgress { DUTLane(parent: self, dut: name) }

    public func vmStage(_ event: VMStageEvent) { vmStage(event, dut: nil) }

    private func vmStage(_ event: VMStageEvent, dut: String?) {
        guard interactive else {
            guard event.outcome == .passed || event.outcome == .failed else { return }
            emit("   \(event.vm): \(event.stage.rawValue) \(event.outcome.rawValue)" + (event.duration.map { String(format: " (%.2f s)", $0) } ?? ""), dut: dut)
            return
        }
        let key = dut ?? ""
        live.withLock { live in
            var out = Self.erase(&live)
            switch event.outcome {
            case .started:
                let start = live.vms[key]?.start ?? ContinuousClock.now - Duration.milliseconds(Int64(event.at * 1000))
                live.vms[key] = ((dut.map { "[\($0)] " } ?? "") + "   \(event.vm): \(event.stage.rawValue)", start)
            case .failed:
                live.vms[key] = nil
            case .passed, .skipped:
                // The last stage ends the VM's start: the DUT's own line comes back.
                if event.stage == .pciMap || event.stage == .incoming { live.vms[key] = nil }
            }
            out += Self.draw(&live, clock: live.vms[key] != nil)
            write(out)
        }
    }

    /// One DUT's worker: its running case has a live line of its own; its plain lines start with `[dut]`.
    private struct DUTLane: RunProgress {
        let parent: TerminalProgress
        let dut: String
        func suiteStarted(_ suite: String, dut: String, target: String) {
            parent.emit("== \(suite) on \(dut) (\(target))", dut: self.dut)
            parent.started(suite, "set_up_all", attempt: 1, dut: self.dut)
        }
        func caseStarted(_ suite: String, _ name: String, attempt: Int) { parent.started(suite, name, attempt: attempt, dut: dut) }
        func caseFinished(_ suite: String, _ name: String, attempt: CaseAttempt) {
            parent.emit(TerminalProgress.finishedLine(suite, name, attempt: attempt), dut: dut)
        }
        func note(_ text: String) { parent.emit("   " + text, dut: dut) }
        func forDUT(_ name: String) -> any RunProgress { parent.forDUT(name) }
        func dutFinished() { parent.removeLine(dut: dut) }
        func vmStage(_ event: VMStageEvent) { parent.vmStage(event, dut: dut) }
    }

    private static func finishedLine(_ suite: String, _ name: String, attempt: CaseAttempt) -> String {
        var text = "   \(suite)/\(name) \(attempt.status.rawValue) (\(String(format: "%.2f", attempt.duration)) s)"
        if let reason = attempt.reason, attempt.status != .passed { text += ": " + (reason.split(separator: "\n").first.map(String.init) ?? "") }
        return text
    }

    /// A case (or a suite's set-up) began: its DUT's live line shows it (interactive only).
    private func started(_ suite: String, _ name: String, attempt: Int, dut: String?) {
        guard interactive else { return }
        let text = (dut.map { "[\($0)] " } ?? "") + "   \(suite)/\(name)" + (attempt > 1 ? " (attempt \(attempt))" : "") + " ..."
        live.withLock { live in
            var out = Self.erase(&live)
            let key = dut ?? ""
            if let index = live.lines.firstIndex(where: { $0.dut == key }) {
                live.lines[index] = (key, text, ContinuousClock.now)
            } else {
                live.lines.append((key, text, ContinuousClock.now))
            }
            out += Self.draw(&live, clock: false)
            write(out)
        }
    }

    /// A worker ended: its live line goes.
    private func removeLine(dut: String) {
        guard interactive else { return }
        live.withLock { live in
            var out = Self.erase(&live)
            live.lines.removeAll { $0.dut == dut }
            out += Self.draw(&live, clock: true)
            write(out)
        }
    }

    /// Prints a permanent line above the live lines. A DUT's line ends its live line until its next case.
    private func emit(_ line: String, dut: String?) {
        live.withLock { live in
            var out = Self.erase(&live)
            if interactive {
                live.lines.removeAll { $0.dut == (dut ?? "") }
                live.vms[dut ?? ""] = nil
            }
            out += (dut.map { "[\($0)] " } ?? "") + line + "\n"
            if interactive { out += Self.draw(&live, clock: true) }
            write(out)
        }
    }

    /// Escape sequences that erase the live lines on the screen and leave the cursor where the first began.
    private static func erase(_ live: inout Live) -> String {
        guard live.drawn > 0 else { return "" }
        var out = "\r\u{1B}[K"
        for _ in 1..<live.drawn { out += "\u{1B}[1A\u{1B}[K" }
        live.drawn = 0
        return out
    }

    /// The live lines, the last one without a newline (the cursor stays on it).
    private static func draw(_ live: inout Live, clock: Bool) -> String {
        let now = ContinuousClock.now
        // A line wider than the terminal would wrap and the next erase would miss its first part.
        let width = max(20, terminalColumns() - 1)
        var shown: [(text: String, start: ContinuousClock.Instant, tenths: Bool)] = live.lines.map { line in
            live.vms[line.dut].map { ($0.text, $0.start, true) } ?? (line.text, line.start, false)
        }
        // A VM that starts before its DUT has a line (a set-up outside any case) gets one.
        for (key, vm) in live.vms.sorted(by: { $0.key < $1.key }) where !live.lines.contains(where: { $0.dut == key }) {
            shown.append((vm.text, vm.start, true))
        }
        let lines = shown.map { line in
            let elapsed = now - line.start
            let time = line.tenths ? String(format: "%.1f", elapsed.seconds) : "\(elapsed.components.seconds)"
            let text = clock ? line.text + " \(time) s" : line.text
            return text.count > width ? String(text.prefix(width - 1)) + "…" : text
        }
        live.drawn = lines.count
        return lines.joined(separator: "\n")
    }

    /// The width of the terminal on standard output (80 when it cannot be read).
    private static func terminalColumns() -> Int {
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
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
