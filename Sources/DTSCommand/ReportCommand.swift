import ArgumentParser
import DTS
import Foundation

/// `dts report`: work on output directories of earlier runs (merge shards, compare two nights).
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Merge or compare the results of earlier runs (their output directories).",
        subcommands: [Merge.self, Compare.self])

    /// `dts report merge OUT DIR...`.
    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "merge", abstract: "Merge output directories (the shards of one plan, or separate runs) into one.",
            discussion: """
                Writes OUT/test_results.json, results.json, junit.xml and report.html as a run does; report.html links \
                to each directory's logs. A case found in two directories keeps the later one's result (a warning). \
                Shards (--shard) are checked: missing or repeated shards and cases of the plan no shard reports are warned about.

                Exit status: that of the merged results (\(DTSExitCode.success.rawValue), \
                \(DTSExitCode.testFailures.rawValue), \(DTSExitCode.infrastructureError.rawValue), or the \
                interrupted status of an interrupted directory); \(DTSExitCode.configError.rawValue) when a \
                directory cannot be read or OUT cannot be written.
                """)

        @Argument(help: "The merged output directory (emptied first when it holds earlier dts output).")
        var out: String

        @Argument(help: "Output directories to merge, in order.")
        var directories: [String]

        func validate() throws {
            if directories.isEmpty { throw ValidationError("give at least one directory to merge") }
            let target = URL(fileURLWithPath: out).standardizedFileURL.path
            for directory in directories where URL(fileURLWithPath: directory).standardizedFileURL.path == target {
                throw ValidationError("OUT (\(out)) is also one of the directories to merge; choose another OUT")
            }
        }

        func run() throws {
            var inputs: [ReportMerge.Input] = []
            for directory in directories {
                do { inputs.append(try ReportMerge.Input(directory: directory)) } catch {
                    FileHandle.standardError.write(Data("dts report merge: \(error)\n".utf8))
                    throw ExitCode(.configError)
                }
            }
            do {
                try Runner.prepareOutputDirectory(out)
                let outcome = ReportMerge.merge(inputs, into: out, command: CommandLine.arguments)
                for warning in outcome.warnings { FileHandle.standardError.write(Data("dts report merge: warning: \(warning)\n".utf8)) }
                try ReportWriters.writeAll(outcome.report, to: out)
                print(TerminalProgress.summary(outcome.report), terminator: "")
                print("merged \(inputs.count) directories: \(out)/report.html, junit.xml, results.json, test_results.json")
                if outcome.report.exitStatus != 0 { throw ExitCode(outcome.report.exitStatus) }
            } catch let error as RunnerError {
                FileHandle.standardError.write(Data("dts report merge: \(error)\n".utf8))
                throw ExitCode(.configError)
            }
        }
    }

    /// `dts report compare OLD NEW`.
    struct Compare: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "compare", abstract: "What changed from OLD to NEW: new failures, fixed, still failing, newly skipped, perf drops.",
            discussion: """
                Prints the changes and writes compare.json and compare.html (into NEW unless --output). Perf figures \
                are compared per table, row and column; a figure worse by more than its suite's accepted_tolerance \
                (percent; default \(PerfComparison.defaultTolerance.formatted())) is a drop.

                Exit status: \(DTSExitCode.success.rawValue) no new failures and no perf drops; \
                \(DTSExitCode.testFailures.rawValue) new failures or perf drops; \
                \(DTSExitCode.configError.rawValue) a directory cannot be read or the output cannot be written.
                """)

        @Argument(help: "The earlier output directory (last night's).")
        var old: String

        @Argument(help: "The later output directory.")
        var new: String

        @Option(name: .long, help: "Where compare.json and compare.html go. Default: NEW.")
        var output: String?

        func run() throws {
            let before: RunReport, after: RunReport
            do {
                before = try ReportWriters.readResults(directory: old)
                after = try ReportWriters.readResults(directory: new)
            } catch {
                FileHandle.standardError.write(Data("dts report compare: \(error)\n".utf8))
                throw ExitCode(.configError)
            }
            var comparison = RunComparison(old: before, new: after, oldLabel: old, newLabel: new)
            let destination = output ?? new
            if output != nil {
                // Case logs are relative to NEW; the page links them from where it is written.
                let base = ReportMerge.relativePath(from: destination, to: new)
                comparison.relocateLogs(under: base)
            }
            print(ReportWriters.comparisonText(comparison), terminator: "")
            do {
                try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
                try ReportWriters.writeComparison(comparison, to: destination)
            } catch {
                FileHandle.standardError.write(Data("dts report compare: \(destination): \(error)\n".utf8))
                throw ExitCode(.configError)
            }
            print("written: \(destination)/compare.html, compare.json")
            if comparison.hasRegressions { throw ExitCode(.testFailures) }
        }
    }
}
