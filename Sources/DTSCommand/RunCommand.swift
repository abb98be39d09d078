import ArgumentParser
import DTS
import Foundation
import Suites

/// `dts run`: runs suites as DTS's `dts` did, from execution.cfg and crbs.cfg, with overrides.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run test suites on the DUTs of execution.cfg (or on this machine) and write results.",
        discussion: """
            Without --config-file, <conf-dir>/execution.cfg is used when it exists; --suite replaces its test_suites. \
            Without any execution.cfg, --suite runs on this machine (127.0.0.1). Results go to --output \
            (default $DTS_OUTPUT, else output/): dts.log, <suite>/<case>.log, test_results.json, results.json, \
            junit.xml, report.html.

            Exit status: \(DTSExitCode.success.rawValue) every case passed or was skipped; \
            \(DTSExitCode.testFailures.rawValue) a case FAILED or was BLOCKED; \
            \(DTSExitCode.configError.rawValue) invalid config or options (nothing ran); \
            \(DTSExitCode.infrastructureError.rawValue) a case ended in ERROR (infrastructure: a VM did not boot or died, a DUT is unreachable); \
            \(DTSExitCode.interrupted.rawValue)/\(DTSExitCode.terminated.rawValue) interrupted by SIGINT/SIGTERM \
            (partial results written). With --baseline and --fail-on-regression: 1 only for new failures \
            and perf drops against the baseline, 0 otherwise (interruptions and config errors keep theirs).

            Several DUTs run at once, one worker per DUT (--jobs caps it); each DUT's logs go to <output>/<dut>/. \
            --shard K/N runs part K of N of the plan (whole suites; the N parts run each case once); \
            `dts report merge` joins the parts' output directories.
            """)

    @Option(name: .long, help: "Suite to run (repeatable). Replaces execution.cfg's test_suites.")
    var suite: [String] = []

    @Option(name: .long, help: "Comma-separated cases of the single --suite to run (any kind).")
    var testCases: String?

    @Option(name: .long, help: "DTS execution.cfg. Default: <conf-dir>/execution.cfg if present.")
    var configFile: String?

    @Option(name: .long, help: "DTS crbs.cfg. Default: <conf-dir>/crbs.cfg if present.")
    var crbs: String?

    @Option(name: .long, help: "Run on this DUT (a crbs.cfg section, or 127.0.0.1) instead of execution.cfg's crbs. Repeatable.")
    var dut: [String] = []

    @Option(name: .long, help: "Output directory. Default: $DTS_OUTPUT, else output.")
    var output: String?

    @Option(name: .long, help: "Run a FAILED or ERROR case up to N more times (every attempt is recorded).")
    var reRun: Int = 0

    @Option(name: .long, help: "Deadline in seconds for every case, replacing the suites' own.")
    var caseTimeout: Int?

    @Flag(name: .long, help: "Copy the run log to standard error.")
    var verbose = false

    @Option(name: .long, help: "How many DUTs run at once. Default: every DUT of the plan at once.")
    var jobs: Int?

    @Option(name: .long, help: ArgumentHelp("Run part K of N of the plan (whole suites; the N parts together run each case once).",
                                            valueName: "K/N"))
    var shard: Shard?

    @Flag(name: .long, help: "Print the planned cases (dut target suite/case), after --shard, and exit without running.")
    var listPlan = false

    @Option(name: .long, help: ArgumentHelp("Compare with this earlier output directory at the end: compare.html, compare.json, top of report.html.",
                                            valueName: "dir"))
    var baseline: String?

    @Flag(name: .long, help: "With --baseline: exit 1 only for new failures and perf drops, else 0.")
    var failOnRegression = false

    @Flag(name: .long, help: "Write measured throughput back into each suite config that says update_expected = True.")
    var updateExpected = false

    @OptionGroup var options: VMOptions

    func validate() throws {
        if reRun < 0 { throw ValidationError("--re-run must be 0 or more") }
        if let caseTimeout, caseTimeout <= 0 { throw ValidationError("--case-timeout must be positive") }
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be 1 or more") }
        if failOnRegression && baseline == nil { throw ValidationError("--fail-on-regression needs --baseline DIR") }
    }

    func run() async throws {
        let cases = (testCases ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        // Suite and case names name output directories and logs.
        do {
            try PathComponentName.checkCommandLine(suite.map { ("--suite", $0, "suite name") } + cases.map { ("--test-cases", $0, "case name") })
        } catch {
            throw reportConfigErrors(error)
        }
        let fm = FileManager.default
        let confDir = options.confDir
        var settings = try options.settings()
        settings.updateExpected = updateExpected
        let outputDirectory = output ?? ProcessInfo.processInfo.environment["DTS_OUTPUT"].flatMap { $0.isEmpty ? nil : $0 } ?? "output"

        let problems = SuiteInfo.validate(SuiteRegistry.all)
        guard problems.isEmpty else {
            FileHandle.standardError.write(Data(("suite registry: " + problems.joined(separator: "\n") + "\n").utf8))
            throw ExitCode(.configError)
        }

        var plan: RunPlan
        do {
            let executionPath = configFile ?? (fm.fileExists(atPath: confDir + "/execution.cfg") ? confDir + "/execution.cfg" : nil)
            let crbsPath = crbs ?? (fm.fileExists(atPath: confDir + "/crbs.cfg") ? confDir + "/crbs.cfg" : nil)
            let execution = try executionPath.map { path throws(ConfigErrors) in try ExecutionConfig(path: path) }
            let crbsConfig = try crbsPath.map { path throws(ConfigErrors) in try CRBsConfig(path: path) }
            plan = try RunPlan.resolve(execution: execution, crbs: crbsConfig, suites: suite, testCases: cases,
                                       registry: SuiteRegistry.all, duts: dut)
            // Suite configs are read up front, so a typo stops the run before anything starts.
            var errors: [ConfigError] = []
            for name in Set(plan.executions.flatMap { $0.suites.map { $0.type.name } }).sorted() {
                do {
                    let config = try SuiteConfig(path: confDir + "/" + name + ".cfg")
                    // DTS's perf keys are Python literals: a typo in them stops the run here too.
                    if config.value("test_parameters") != nil {
                        do { _ = try PerfConfig(config) } catch { errors.append(error) }
                    }
                } catch { errors += error.errors }
            }
            if !errors.isEmpty { throw ConfigErrors(errors) }
        } catch let errors as ConfigErrors {
            throw reportConfigErrors(errors)
        }
        var shardRecord: ShardRecord?
        if let shard {
            shardRecord = ShardRecord(shard: shard, planUnits: plan.units.count)
            plan = plan.sharded(shard)
        }
        if listPlan {
            for unit in plan.units { print(unit) }
            return
        }
        var compareWith: Baseline?
        if let baseline {
            do { compareWith = try Baseline(directory: baseline) } catch {
                FileHandle.standardError.write(Data("dts run: --baseline \(error)\n".utf8))
                throw ExitCode(.configError)
            }
        }
        do {
            try Runner.prepareOutputDirectory(outputDirectory)
        } catch {
            FileHandle.standardError.write(Data("dts run: \(error)\n".utf8))
            throw ExitCode(.configError)
        }

        let progress = TerminalProgress()
        // VM boots show on the live progress line (stage and time so far).
        settings.onVMStage = { progress.vmStage($0) }
        let control = RunControl()
        let trap = SignalTrap.stopping(control) { progress.note($0) }
        defer { trap.uninstall() }
        let run = Run()
        var runnerOptions = RunnerOptions(
            outputDirectory: outputDirectory, settings: settings, reRuns: reRun,
            caseTimeout: caseTimeout.map { .seconds($0) }, command: CommandLine.arguments, echoLog: verbose, jobs: jobs)
        runnerOptions.shard = shardRecord
        runnerOptions.baseline = compareWith
        runnerOptions.failOnRegression = failOnRegression
        let runner = Runner(plan: plan, options: runnerOptions, run: run, control: control, progress: progress)

        let outcome: Result<RunReport, any Error>
        do { outcome = .success(try await runner.run()) } catch { outcome = .failure(error) }
        // The runner tears the run down; this covers a runner that could not even start its log.
        await run.tearDown()
        switch outcome {
        case .success(let report):
            print("")
            print(TerminalProgress.summary(report), terminator: "")
            print("results: \(outputDirectory)/report.html, junit.xml, results.json, test_results.json; logs: \(outputDirectory)/dts.log")
            if compareWith != nil { print("compared with \(baseline ?? ""): \(outputDirectory)/compare.html, compare.json") }
            if report.exitStatus != 0 { throw ExitCode(report.exitStatus) }
        case .failure(let error):
            FileHandle.standardError.write(Data("dts run: \(error)\n".utf8))
            throw ExitCode(.infrastructureError)
        }
    }
}

extension Shard: ExpressibleByArgument {
    /// `--shard K/N` (`$CI_NODE_INDEX/$CI_NODE_TOTAL`), 1 ≤ K ≤ N.
    public init?(argument: String) { self.init(argument) }
}
