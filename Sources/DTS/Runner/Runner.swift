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

    /// Creates options; defaults suit a lab run.
    public init(outputDirectory: String, settings: RunSettings = RunSettings(), reRuns: Int = 0, caseTimeout: Duration? = nil,
                setUpAllTimeout: Duration = .seconds(1800), hookTimeout: Duration = .seconds(300),
                cancelGrace: Duration = .seconds(10), command: [String] = [], echoLog: Bool = false) {
        self.outputDirectory = outputDirectory
        self.settings = settings
        self.reRuns = reRuns
        self.caseTimeout = caseTimeout
        self.setUpAllTimeout = setUpAllTimeout
        self.hookTimeout = hookTimeout
        self.cancelGrace = cancelGrace
        self.command = command
        self.echoLog = echoLog
    }
}

/// Runs a ``RunPlan``: suites, hooks and cases with deadlines, re-runs, logs; then reports.
///
/// States: PASSED, FAILED (`verify`), SKIPPED (`skip`), BLOCKED (`setUpAll` or `setUp` failed),
/// ERROR (anything else: unexpected errors, timeouts, interruption). `tearDown` follows every
/// case and `tearDownAll` every suite, even after failures and signals; the ``Run`` is torn down
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
        defer { log.close() }
        let logger = log.logger(label: "dts")
        logger.info("dts run: \(options.command.joined(separator: " "))")
        let several = plan.executions.count > 1
        var executions: [ExecutionResult] = []
        var cleaned: [String] = []

        for planned in plan.executions {
            if control.stopReason != nil { break }
            let prefix = several ? "\(Self.safe(planned.crb.name))-\(Self.safe(planned.target))/" : ""
            var result = ExecutionResult(execution: planned.name, dut: planned.crb.name, target: planned.target, suites: [])
            logger.info("execution \(planned.name): DUT \(planned.crb.name) target \(planned.target)")
            let dut: Dut
            do {
                var session = try await connector(planned.crb, log, redactor)
                if session.sessionLog == nil {
                    session = LoggingSession(wrapping: session, log: log, redactor: redactor)
                }
                var settings = options.settings
                if settings.vmLogDirectory == nil { settings.vmLogDirectory = options.outputDirectory + "/vms" }
                dut = Dut(name: planned.crb.name, settings: settings, session: session, run: current)
            } catch {
                let reason = "DUT \(planned.crb.name): \(error)"
                logger.error("\(reason)")
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
                executions.append(result)
                continue
            }
            for selection in planned.suites {
                if control.stopReason != nil { break }
                let suite = await runSuite(selection, planned: planned, dut: dut, log: log, prefix: prefix)
                result.suites.append(suite)
            }
            // What the execution started on the DUT (VMs, backends, a remote DUT's VM directory)
            // is torn down while the DUT's session is still open.
            cleaned += await current.cleanUpAll()
            await dut.close()
            executions.append(result)
        }

        // What is left, then the run directory of the VMs (sockets, pid files).
        cleaned += await current.tearDown()
        for line in await current.history { logger.info("cleanup \(line)") }
        if !cleaned.isEmpty { progress.note("cleaned up: " + cleaned.joined(separator: ", ")) }

        let signal: Int32? = control.stopReason.map { if case .signal(let n) = $0 { return n }; return SIGINT }
        let report = RunReport(start: start, duration: (ContinuousClock.now - clock).seconds, command: options.command,
                               interrupted: control.stopReason?.description, executions: executions,
                               timeline: current.timeline.events,
                               exitStatus: RunReport.exitStatus(for: executions, interruptedBy: signal))
        try ReportWriters.writeAll(report, to: options.outputDirectory)
        logger.info("results written to \(options.outputDirectory); exit status \(report.exitStatus)")
        return report
    }

    static func safe(_ text: String) -> String {
        String(text.map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" })
    }

    // MARK: one suite

    private func runSuite(_ selection: SuiteSelection, planned: PlannedExecution, dut: Dut, log: RunLog,
                          prefix: String) async -> SuiteResult {
        func open<S: TestSuite>(_ type: S.Type) async -> SuiteResult {
            await runSuite(type, cases: selection.caseNames(parameters: planned.parameters), planned: planned, dut: dut,
                           log: log, prefix: prefix)
        }
        return await open(selection.type)
    }

    private func runSuite<S: TestSuite>(_ type: S.Type, cases names: [String], planned: PlannedExecution, dut: Dut,
                                        log: RunLog, prefix: String) async -> SuiteResult {
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
                                  outputDirectory: options.outputDirectory, config: config, logger: logger)
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
        case .finished(.failure(let error)): blocked = (.blocked, "setUpAll failed: \(Self.describe(error))")
        case .timedOut: blocked = (.blocked, "setUpAll did not finish within \(options.setUpAllTimeout)")
        case .interrupted: blocked = (.blocked, "setUpAll interrupted by \(control.stopReason?.description ?? "a stop request")")
        }
        if let (status, reason) = blocked {
            if status != .skipped { result.setUpAllError = reason }
            logger.error("\(reason)")
            progress.note("\(S.name): \(reason)")
            result.cases = allCases(status, reason)
        } else if let suite = holder.value {
            for testCase in cases {
                if control.stopReason != nil { break }
                result.cases.append(await runCase(testCase, suite: suite, context: context, log: log, logger: logger,
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
                result.tearDownAllError = problem
                logger.error("\(problem)")
                progress.note("\(S.name): \(problem)")
            }
        }
        result.duration = (ContinuousClock.now - suiteStart).seconds
        return result
    }

    // MARK: one case

    private func runCase<S: TestSuite>(_ testCase: TestCase<S>, suite: S, context: TestContext, log: RunLog, logger: Logger,
                                       logPath: String) async -> CaseResult {
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
                (status, reason) = (.blocked, "setUp failed: \(Self.describe(error))")
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
            let attempt = CaseAttempt(status: status, reason: reason, start: startDate, duration: (ContinuousClock.now - start).seconds)
            attempts.append(attempt)
            let recorded = context.recorder.take()
            perf += recorded.perf
            artifacts += recorded.artifacts.map { Self.relative($0, to: options.outputDirectory) }
            logger.info("=== \(S.name)/\(testCase.name) \(status.rawValue)\(reason.map { ": \($0)" } ?? "")")
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

    static func describe(_ error: any Error) -> String {
        if error is CancellationError { return "cancelled" }
        let text = String(describing: error)
        return "\(type(of: error)): \(text)"
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
