import Foundation
import Logging
import Synchronization

/// Opens the session to a DUT described by `crbs.cfg`. The SSH layer plugs in here; a session
/// that does not log by itself is wrapped in a ``LoggingSession``.
public typealias DUTConnector = @Sendable (_ crb: CRBConfig, _ log: any SessionLogSink, _ redactor: Redactor) async throws -> any DUTSession

/// How a run behaves (from `dts run` options).
public struct RunnerOptions: Sendable {
    /// Where logs and reports go.
    public var outputDirectory: String
    /// Accelerator override and conf directory.
    public var settings: RunSettings
    /// How many more times a FAILED or ERROR case is run (`--re-run N`).
    public var reRuns: Int
    /// Replaces every case's deadline (`--case-timeout`).
    public var caseTimeout: Duration?
    /// Bound for `setUpAll`.
    public var setUpAllTimeout: Duration
    /// Bound for `setUp`, `tearDown` and `tearDownAll` each.
    public var hookTimeout: Duration
    /// After cancelling a step (timeout, signal), how long it gets to end.
    public var cancelGrace: Duration
    /// Bound for each tear-down after SIGINT/SIGTERM.
    public var interruptedTearDownTimeout: Duration = .seconds(60)
    /// The command line, for the reports.
    public var command: [String]
    /// Copies every `dts.log` line to standard error (`--verbose`).
    public var echoLog: Bool
    /// How many DUTs run at once (`--jobs N`); `nil`: every DUT of the plan at once.
    public var jobs: Int?
    /// The part of the full plan this run is (`--shard K/N`), recorded in the results.
    public var shard: ShardRecord?
    /// The results to compare with at the end (`--baseline DIR`): `compare.html`, `compare.json`
    /// and the top of `report.html`.
    public var baseline: Baseline?
    /// With a ``baseline``, the exit status is 1 for new failures and perf drops and 0 otherwise
    /// (`--fail-on-regression`; interruptions keep theirs).
    public var failOnRegression = false

    /// Creates options; defaults suit a lab run.
    public init(outputDirectory: String, settings: RunSettings = RunSettings(), reRuns: Int = 0, caseTimeout: Duration? = nil,
                setUpAllTimeout: Duration = .seconds(1800), hookTimeout: Duration = .seconds(300),
                cancelGrace: Duration = .seconds(10), command: [String] = [], echoLog: Bool = false, jobs: Int? = nil) {
        self.outputDirectory = outputDirectory
        self.settings = settings
        self.reRuns = reRuns
        self.caseTimeout = caseTimeout
        self.setUpAllTimeout = setUpAllTimeout
        self.hookTimeout = hookTimeout
        self.cancelGrace = cancelGrace
        self.command = command
        self.echoLog = echoLog
        self.jobs = jobs
    }
}

/// Runs a ``RunPlan``: suites, hooks and cases with deadlines, re-runs, logs; then reports.
///
/// States: PASSED, FAILED (`verify`), SKIPPED (`skip`), BLOCKED (`setUpAll` or `setUp` failed for
/// a reason of the test), ERROR (anything else: unexpected errors, timeouts, interruption, and
/// `setUpAll` or `setUp` ended by an ``InfrastructureError`` such as a VM that did not boot).
/// `tearDown` follows every case and `tearDownAll` every suite, even after failures and signals; the ``Run`` is torn down
/// (its cleanups, then its directory) on every path.
public final class Runner: Sendable {
    private let plan: RunPlan
    private let options: RunnerOptions
    private let control: RunControl
    private let progress: any RunProgress
    private let connector: DUTConnector
    private let redactor: Redactor
    /// The run every DUT of the plan belongs to (cleanups, VM directory, boot timeline).
    private let current: Run
    /// Per run (the run, or a DUT worker's sibling run): its VM faults already reported, and the
    /// case (`suite/case`) or hook each broke first.
    private let faultsReported = Mutex<[ObjectIdentifier: [String]]>([:])

    /// A connector for the local machine only, through ``LocalSession``; a remote DUT throws
    /// ``RunnerError/remoteNeedsSSH(crb:address:)``. (The default is ``DUTConnectors/standard(outputDirectory:)``.)
    public static let localOnly: DUTConnector = { crb, log, redactor in
        guard crb.isLocal else { throw RunnerError.remoteNeedsSSH(crb: crb.name, address: crb.dutIP) }
        return LocalSession(endpoint: "\(crb.dutUser)@\(crb.dutIP)", log: log, redactor: redactor)
    }

    /// Creates a runner of `plan` within `run`, which ``run()`` tears down at its end. The default
    /// `connector` reaches this machine locally and any other DUT over SSH
    /// (``DUTConnectors/standard(outputDirectory:)``, known hosts in `<output>/known_hosts`).
    public init(plan: RunPlan, options: RunnerOptions, run: Run, control: RunControl = RunControl(),
                progress: any RunProgress = TerminalProgress(), connector: DUTConnector? = nil,
                redactor: Redactor = .shared) {
        self.plan = plan
        self.options = options
        self.current = run
        self.control = control
        self.progress = progress
        self.connector = connector ?? DUTConnectors.standard(outputDirectory: options.outputDirectory)
        self.redactor = redactor
    }

    /// Makes `path` ready for a run: creates it, or empties it when it holds a previous dts run
    /// (a `results.json` or `dts.log`). Refuses a non-empty directory that dts did not write.
    public static func prepareOutputDirectory(_ path: String) throws(RunnerError) {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw .output(path: path, reason: "exists and is not a directory") }
            let entries = (try? fm.contentsOfDirectory(atPath: path)) ?? []
            if !entries.isEmpty {
                guard entries.contains("results.json") || entries.contains("dts.log") else {
                    throw .output(path: path, reason: "is not empty and holds no previous dts run; choose another --output")
                }
                for entry in entries {
                    do { try fm.removeItem(atPath: path + "/" + entry) } catch {
                        throw .output(path: path + "/" + entry, reason: "cannot remove old output: \(error.localizedDescription)")
                    }
                }
            }
        } else {
            do { try fm.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                throw .output(path: path, reason: "cannot create: \(error.localizedDescription)")
            }
        }
    }

    /// Runs everything and writes the reports. Throws only when the output cannot be written.
    ///
    /// Executions on different DUTs run concurrently, one worker per DUT (at most
    /// ``RunnerOptions/jobs`` at a time); the executions of one DUT run in plan order. With several
    /// DUTs, each DUT's logs go to `<output>/<dut>/` (`dut.log`, suite and case logs, `vms/`); the
    /// reports hold every DUT, in plan order.
    public func run() async throws -> RunReport {
        let start = Date()
        let clock = ContinuousClock.now
        for crb in plan.executions.map(\.crb) {
            redactor.register(crb.dutPassword)
            redactor.register(crb.testerPassword)
        }
        var echo: (@Sendable (String) -> Void)?
        if options.echoLog {
            echo = { @Sendable (line: String) in FileHandle.standardError.write(Data(line.utf8)) }
        }
        let log = try RunLog(directory: options.outputDirectory, redactor: redactor, echo: echo)
        // What the run's VMs and backends log (a VM booting cold, and why) lands in dts.log.
        current.attachLog(log.logger(label: "dts.run", level: .info))
        defer {
            current.attachLog(nil)
            log.close()
        }
        let logger = log.logger(label: "dts")
        logger.info("dts run: \(options.command.joined(separator: " "))")
        if let shard = options.shard { logger.info("shard \(shard.shard): \(plan.units.count) of the plan's \(shard.planUnits) cases") }

        let groups = plan.workerGroups
        let parallel = groups.count > 1
        let jobs = max(1, min(options.jobs ?? groups.count, groups.count))
        if parallel { logger.info("\(groups.count) DUTs (\(groups.map(\.dut).joined(separator: ", "))), \(jobs) at a time") }
        var executions = [ExecutionResult?](repeating: nil, count: plan.executions.count)
        var cleaned: [String] = []
        var timeline: [BootStageEvent] = []
        await withTaskGroup(of: WorkerOutcome.self) { group in
            var next = 0
            func startNext() {
                let (dut, indexes) = groups[next]
                next += 1
                group.addTask { await self.runWorker(dut: dut, executions: indexes, parallel: parallel, log: log) }
            }
            while next < min(jobs, groups.count) { startNext() }
            for await outcome in group {
                for (index, result) in outcome.results { executions[index] = result }
                cleaned += outcome.cleaned
                timeline += outcome.timeline
                if next < groups.count && control.stopReason == nil { startNext() }
            }
        }

        // What is left, then the run directory of the VMs (sockets, pid files).
        cleaned += await current.tearDown()
        for line in await current.history { logger.info("cleanup \(line)") }
        if !cleaned.isEmpty { progress.note("cleaned up: " + cleaned.joined(separator: ", ")) }

        let signal: Int32? = control.stopReason.map { if case .signal(let n) = $0 { return n }; return SIGINT }
        let ran = executions.compactMap { $0 }
        var report = RunReport(start: start, duration: (ContinuousClock.now - clock).seconds, command: options.command,
                               interrupted: control.stopReason?.description, executions: ran,
                               timeline: current.timeline.events + timeline,
                               exitStatus: RunReport.exitStatus(for: ran, interruptedBy: signal))
        report.shard = options.shard
        var comparison: RunComparison?
        if let baseline = options.baseline {
            let compared = RunComparison(old: baseline.report, new: report, oldLabel: baseline.directory,
                                         newLabel: options.outputDirectory, scope: Set(plan.units.map(\.key)))
            comparison = compared
            logger.info("compared with \(baseline.directory): \(compared.summary)")
            if options.failOnRegression, signal == nil {
                report.exitStatus = compared.hasRegressions ? DTSExitCode.testFailures.rawValue : DTSExitCode.success.rawValue
            }
        }
        try ReportWriters.writeAll(report, comparison: comparison, to: options.outputDirectory)
        logger.info("results written to \(options.outputDirectory); exit status \(report.exitStatus)")
        return report
    }

    /// What one DUT's worker leaves: its executions' results by plan index, what its run's
    /// cleanups stopped and its VM start stages.
    private struct WorkerOutcome: Sendable {
        var results: [(Int, ExecutionResult)] = []
        var cleaned: [String] = []
        var timeline: [BootStageEvent] = []
    }

    /// Where one worker writes: its log lane, its progress, its run.
    private struct Lane {
        let log: RunLogLane
        let progress: any RunProgress
        let run: Run
    }

    /// Runs the executions of one DUT in order. In a parallel run the worker has a run of its own
    /// (a ``Run/sibling()``: its cleanups and directory), a log lane writing `<dut>/dut.log` and a
    /// progress line of its own; it tears its run down at the end, also after a stop request.
    private func runWorker(dut: String, executions indexes: [Int], parallel: Bool, log: RunLog) async -> WorkerOutcome {
        var outcome = WorkerOutcome()
        var lane = Lane(log: log.primary, progress: progress, run: current)
        if parallel {
            let own: RunLogLane
            do {
                own = try log.lane(dutLog: plan.dutDirectory(dut) + "dut.log")
            } catch {
                log.primary.write("[error] dts: DUT \(dut): cannot open its log: \(error); its lines go to dts.log only")
                own = log.lane()
            }
            lane = Lane(log: own, progress: progress.forDUT(dut), run: current.sibling())
        }
        for index in indexes {
            if control.stopReason != nil { break }
            let (result, cleaned) = await runExecution(plan.executions[index], prefix: plan.logPrefix(of: index),
                                                       vmLogs: plan.dutDirectory(dut) + "vms", lane: lane)
            outcome.results.append((index, result))
            outcome.cleaned += cleaned
        }
        if parallel {
            outcome.cleaned += await lane.run.tearDown()
            for line in await lane.run.history { lane.log.write("[info] dts: cleanup \(line)") }
            outcome.timeline = lane.run.timeline.events.map { event in
                var event = event
                event.vm = "\(dut): \(event.vm)"
                return event
            }
            lane.progress.dutFinished()
            lane.log.close()
        }
        return outcome
    }

    /// One execution (a DUT and target): connect, run its suites, tear down what it started on the
    /// DUT while its session is still open, close the session. Returns its results and the names
    /// of the cleanups that ran.
    private func runExecution(_ planned: PlannedExecution, prefix: String, vmLogs: String,
                              lane: Lane) async -> (ExecutionResult, [String]) {
        let logger = lane.log.logger(label: "dts")
        let progress = lane.progress
        var result = ExecutionResult(execution: planned.name, dut: planned.crb.name, target: planned.target, suites: [])
        logger.info("execution \(planned.name): DUT \(planned.crb.name) target \(planned.target)")
        let dut: Dut
        do {
            var session = try await connector(planned.crb, lane.log, redactor)
            if session.sessionLog == nil {
                session = LoggingSession(wrapping: session, log: lane.log, redactor: redactor)
            }
            var settings = options.settings
            if settings.vmLogDirectory == nil { settings.vmLogDirectory = options.outputDirectory + "/" + vmLogs }
            dut = Dut(name: planned.crb.name, settings: settings, session: session, run: lane.run)
        } catch {
            logger.error("DUT \(planned.crb.name): \(error)")
            let reason = Self.shortReason("DUT \(planned.crb.name): \(error)")
            progress.note(reason)
            result.suites = planned.suites.map { selection in
                let names = selection.caseNames(parameters: planned.parameters)
                return SuiteResult(name: selection.type.name, cases: names.map { name in
                    let kind = SuiteInfo.cases(of: selection.type).first { $0.name == name }?.kind ?? .functional
                    return CaseResult(name: name, kind: kind, status: .error, reason: reason,
                                      attempts: [CaseAttempt(status: .error, reason: reason, start: Date(), duration: 0)],
                                      log: "dts.log", perf: [], artifacts: [])
                }, setUpAllError: reason, tearDownAllError: nil, log: "dts.log", duration: 0)
            }
            return (result, [])
        }
        for selection in planned.suites {
            if control.stopReason != nil { break }
            let suite = await runSuite(selection, planned: planned, dut: dut, lane: lane, prefix: prefix)
            result.suites.append(suite)
        }
        // What the execution started on the DUT (VMs, backends, a remote DUT's VM directory)
        // is torn down while the DUT's session is still open.
        let cleaned = await lane.run.cleanUpAll()
        await dut.close()
        return (result, cleaned)
    }

    static func safe(_ text: String) -> String {
        String(text.map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" })
    }

    // MARK: one suite

    private func runSuite(_ selection: SuiteSelection, planned: PlannedExecution, dut: Dut, lane: Lane,
                          prefix: String) async -> SuiteResult {
        func open<S: TestSuite>(_ type: S.Type) async -> SuiteResult {
            await runSuite(type, cases: selection.caseNames(parameters: planned.parameters), planned: planned, dut: dut,
                           lane: lane, prefix: prefix)
        }
        return await open(selection.type)
    }

    private func runSuite<S: TestSuite>(_ type: S.Type, cases names: [String], planned: PlannedExecution, dut: Dut,
                                        lane: Lane, prefix: String) async -> SuiteResult {
        let log = lane.log
        let progress = lane.progress
        let suiteStart = ContinuousClock.now
        let directory = prefix + S.name
        let suiteLog = directory + "/suite.log"
        try? log.beginSuite(suiteLog)
        defer { log.endSuite() }
        let logger = log.logger(label: S.name)
        progress.suiteStarted(S.name, dut: planned.crb.name, target: planned.target)
        logger.info("suite \(S.name): cases \(names.joined(separator: ", "))")
        let cases = S.cases.filter { names.contains($0.name) }
        var result = SuiteResult(name: S.name, cases: [], setUpAllError: nil, tearDownAllError: nil, log: suiteLog, duration: 0)

        func allCases(_ status: CaseStatus, _ reason: String) -> [CaseResult] {
            cases.map { testCase in
                let attempt = CaseAttempt(status: status, reason: reason, start: Date(), duration: 0)
                progress.caseFinished(S.name, testCase.name, attempt: attempt)
                return CaseResult(name: testCase.name, kind: testCase.kind, status: status, reason: reason, attempts: [attempt],
                                  log: suiteLog, perf: [], artifacts: [])
            }
        }

        // Create the suite and run setUpAll.
        let context: TestContext
        do {
            let config = try SuiteConfig(path: options.settings.confDirectory + "/" + S.name + ".cfg")
            context = TestContext(dut: dut, suiteName: S.name, target: planned.target, parameters: planned.parameters,
                                  outputDirectory: options.outputDirectory, config: config, logger: logger, directory: directory)
            result.perfTolerance = PerfComparison.tolerance(in: config)
        } catch {
            result.setUpAllError = "suite config: \(error)"
            logger.error("\(result.setUpAllError!)")
            result.cases = allCases(.blocked, result.setUpAllError!)
            return result
        }
        let holder = SuiteHolder<S>()
        let setUp = await control.runStep(timeout: options.setUpAllTimeout, grace: options.cancelGrace) {
            let suite = try await S(context: context)
            holder.set(suite)
            try await suite.setUpAll()
        }
        var blocked: (CaseStatus, String)?
        switch setUp {
        case .finished(.success): break
        case .finished(.failure(let skip as TestSkip)): blocked = (.skipped, skip.reason)
        case .finished(.failure(let error)): blocked = (Self.blockedOrError(error), "setUpAll failed: \(Self.describe(error))")
        case .timedOut: blocked = (.blocked, "setUpAll did not finish within \(options.setUpAllTimeout)")
        case .interrupted: blocked = (.blocked, "setUpAll interrupted by \(control.stopReason?.description ?? "a stop request")")
        }
        if var (status, full) = blocked {
            if status != .skipped, let found = await cause(of: full, in: "\(S.name) setUpAll", lane: lane, logger: logger) {
                (status, full) = (.error, found)
            }
            logger.error("\(full)")
            let reason = Self.shortReason(full)
            if status != .skipped { result.setUpAllError = reason }
            progress.note("\(S.name): \(reason)")
            result.cases = allCases(status, reason)
        } else if let suite = holder.value {
            for testCase in cases {
                if control.stopReason != nil { break }
                result.cases.append(await runCase(testCase, suite: suite, context: context, lane: lane, logger: logger,
                                                  logPath: directory + "/" + testCase.name + ".log"))
            }
        }
        // tearDownAll always (when the suite exists), even after a signal.
        if let suite = holder.value {
            let bound = tearDownBound
            let outcome = await control.runStep(timeout: bound, grace: options.cancelGrace, interruptible: false) {
                try await suite.tearDownAll()
            }
            if let problem = Self.hookProblem(outcome, hook: "tearDownAll", timeout: bound) {
                result.tearDownAllError = Self.shortReason(problem)
                logger.error("\(problem)")
                progress.note("\(S.name): \(problem)")
            }
        }
        // A VM that died without breaking a case (during tearDownAll, say) is logged all the same.
        _ = await cause(of: "", in: "\(S.name) tearDownAll", lane: lane, logger: logger, settling: .zero)
        result.duration = (ContinuousClock.now - suiteStart).seconds
        return result
    }

    // MARK: one case

    private func runCase<S: TestSuite>(_ testCase: TestCase<S>, suite: S, context: TestContext, lane: Lane, logger: Logger,
                                       logPath: String) async -> CaseResult {
        let log = lane.log
        let progress = lane.progress
        let timeout = options.caseTimeout ?? testCase.timeout ?? S.defaultCaseTimeout
        var attempts: [CaseAttempt] = []
        var perf: [PerfTable] = []
        var artifacts: [String] = []
        let maxAttempts = 1 + max(0, options.reRuns)
        for number in 1...maxAttempts {
            try? log.beginCase(logPath, append: number > 1)
            context.recorder.begin(testCase.name)
            progress.caseStarted(S.name, testCase.name, attempt: number)
            logger.info("=== \(S.name)/\(testCase.name) attempt \(number) (deadline \(timeout))")
            let startDate = Date(), start = ContinuousClock.now
            var status = CaseStatus.passed
            var reason: String?

            let setUp = await control.runStep(timeout: options.hookTimeout, grace: options.cancelGrace) { try await suite.setUp() }
            switch setUp {
            case .finished(.success):
                let body = testCase.body
                let outcome = await control.runStep(timeout: timeout, grace: options.cancelGrace) { try await body(suite) }
                (status, reason) = classify(outcome, timeout: timeout)
            case .finished(.failure(let skip as TestSkip)):
                (status, reason) = (.skipped, skip.reason)
            case .finished(.failure(let error)):
                (status, reason) = (Self.blockedOrError(error), "setUp failed: \(Self.describe(error))")
            case .timedOut:
                (status, reason) = (.blocked, "setUp did not finish within \(options.hookTimeout)")
            case .interrupted:
                (status, reason) = (.error, "interrupted by \(control.stopReason?.description ?? "a stop request") during setUp")
            }
            // tearDown after every case, whatever happened; not interruptible, bounded.
            let bound = tearDownBound
            let tearDown = await control.runStep(timeout: bound, grace: options.cancelGrace, interruptible: false) {
                try await suite.tearDown()
            }
            if let problem = Self.hookProblem(tearDown, hook: "tearDown", timeout: bound) {
                logger.error("\(problem)")
                if status == .passed || status == .skipped { status = .error; reason = problem } else { reason = (reason ?? "") + "; " + problem }
            }
            // A case broken by a VM's death (a lost SSH channel, a closed QMP socket) says so.
            if status != .passed && status != .skipped, control.stopReason == nil,
               let found = await cause(of: reason ?? "", in: "\(S.name)/\(testCase.name)", lane: lane, logger: logger) {
                (status, reason) = (.error, found)
            }
            // The log gets the whole reason, the results one or two lines of it.
            logger.info("=== \(S.name)/\(testCase.name) \(status.rawValue)\(reason.map { ": \($0)" } ?? "")")
            let attempt = CaseAttempt(status: status, reason: reason.map(Self.shortReason), start: startDate,
                                      duration: (ContinuousClock.now - start).seconds)
            attempts.append(attempt)
            let recorded = context.recorder.take()
            perf += recorded.perf
            artifacts += recorded.artifacts.map { Self.relative($0, to: options.outputDirectory) }
            log.endCase()
            progress.caseFinished(S.name, testCase.name, attempt: attempt)
            context.recorder.begin(nil)
            let retry = (status == .failed || status == .error) && control.stopReason == nil
            if !retry { break }
        }
        let last = attempts.last!
        return CaseResult(name: testCase.name, kind: testCase.kind, status: last.status, reason: last.reason, attempts: attempts,
                          log: logPath, perf: perf, artifacts: artifacts)
    }

    /// The VM fault behind a failure whose own `reason` is only its symptom, or `nil` if there is
    /// none. A fault not reported before (QEMU exited, a guest panicked) is logged with its
    /// details, and becomes the reason of `step`, the first one it broke; a fault reported before
    /// whose VM is still down is named in front of the reasons of the steps after. Waits up to
    /// `settling` for a fault while a VM is up: the symptom often comes a moment before the exit.
    /// The faults are those of the lane's run (a DUT worker's own when DUTs run in parallel).
    private func cause(of reason: String, in step: String, lane: Lane, logger: Logger,
                       settling: Duration = .seconds(1)) async -> String? {
        let run = ObjectIdentifier(lane.run)
        let progress = lane.progress
        let seen = faultsReported.withLock { $0[run]?.count ?? 0 }
        let faults = await lane.run.vmFaults(newerThan: seen, settling: settling)
        let brokeFirst = faultsReported.withLock { reported in
            var steps = reported[run] ?? []
            while steps.count < faults.count { steps.append(step) }
            reported[run] = steps
            return steps
        }
        let new = faults.dropFirst(seen)
        for record in new {
            logger.error("\(record.fault.details)")
            progress.note(record.fault.description)
        }
        if let first = new.first {
            return first.fault.description + (reason.isEmpty ? "" : "\n(then: \(reason))")
        }
        guard !reason.isEmpty, let index = faults.lastIndex(where: \.vmStillUp) else { return nil }
        let fault = faults[index].fault
        return "VM \(fault.vm) is down (\(fault.summary), during \(brokeFirst[index])): \(reason)"
    }

    /// Tear-downs get `hookTimeout`, but at most `interruptedTearDownTimeout` once a stop was requested.
    private var tearDownBound: Duration {
        control.stopReason == nil ? options.hookTimeout : min(options.hookTimeout, options.interruptedTearDownTimeout)
    }

    private func classify(_ outcome: RunControl.StepOutcome, timeout: Duration) -> (CaseStatus, String?) {
        // A case that ended with an error after a stop request ended because of it (its cancellation).
        if let stop = control.stopReason, case .finished(.failure(let error)) = outcome, !(error is TestFailure), !(error is TestSkip) {
            return (.error, "interrupted by \(stop) (\(Self.describe(error)))")
        }
        switch outcome {
        case .finished(.success): return (.passed, nil)
        case .finished(.failure(let failure as TestFailure)): return (.failed, failure.description)
        case .finished(.failure(let skip as TestSkip)): return (.skipped, skip.reason)
        case .finished(.failure(let error)): return (.error, Self.describe(error))
        case .timedOut(let stopped):
            return (.error, "timed out after \(timeout)" + (stopped ? "; cancelled" : "; did not stop within \(options.cancelGrace) of cancellation"))
        case .interrupted(let stopped):
            return (.error, "interrupted by \(control.stopReason?.description ?? "a stop request")" + (stopped ? "" : "; the case did not stop"))
        }
    }

    private static func hookProblem(_ outcome: RunControl.StepOutcome, hook: String, timeout: Duration) -> String? {
        switch outcome {
        case .finished(.success): return nil
        case .finished(.failure(let error)): return "\(hook) failed: \(describe(error))"
        case .timedOut, .interrupted: return "\(hook) did not finish within \(timeout)"
        }
    }

    /// What a failed `setUpAll` or `setUp` makes of its cases: ERROR when outside the tests
    /// (``InfrastructureError``: a VM that did not boot, a lost DUT), BLOCKED otherwise.
    static func blockedOrError(_ error: any Error) -> CaseStatus {
        error is any InfrastructureError ? .error : .blocked
    }

    /// The whole text of `error`, for the log: its type and description, or its
    /// ``DetailedError/details`` (a VM's start failure with the end of its console and stderr).
    static func describe(_ error: any Error) -> String {
        if error is CancellationError { return "cancelled" }
        let text = (error as? any DetailedError)?.details ?? String(describing: error)
        return "\(type(of: error)): \(text)"
    }

    /// At most this many lines of a reason go into the results.
    static let reasonLines = 2
    /// At most this many characters of each.
    static let reasonLineLength = 300

    /// A reason as the results keep it: its first ``reasonLines`` non-empty lines, each cut to
    /// ``reasonLineLength`` characters; what was left out is in the log (`dts.log` and the case's).
    static func shortReason(_ text: String) -> String {
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        var cut = lines.count > reasonLines
        let kept = lines.prefix(reasonLines).map { line -> String in
            guard line.count > reasonLineLength else { return line }
            cut = true
            return String(line.prefix(reasonLineLength)) + "…"
        }
        return kept.joined(separator: "\n") + (cut ? " (more in the log)" : "")
    }

    static func relative(_ path: String, to directory: String) -> String {
        let base = URL(fileURLWithPath: directory).standardizedFileURL.path + "/"
        let full = URL(fileURLWithPath: path).standardizedFileURL.path
        return full.hasPrefix(base) ? String(full.dropFirst(base.count)) : full
    }
}

/// Holds the suite instance created inside the setUpAll step.
private final class SuiteHolder<S: TestSuite>: Sendable {
    private let suite = Mutex<S?>(nil)
    func set(_ value: S) { suite.withLock { $0 = value } }
    var value: S? { suite.withLock { $0 } }
}
