import ArgumentParser
import DTS
import Foundation
import Suites

/// `dts list`: the registered suites and their cases.
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the suites and their cases (functional or performance).",
        discussion: """
            Internal suites, which check dts itself (runner_selftest), are listed only with --all \
            or when named; they run like any other suite with `dts run --suite`.
            """)

    @Argument(help: "Suites to show. Default: all but the internal ones.")
    var suites: [String] = []

    @Flag(name: .long, help: "Also list internal suites (checks of dts itself, such as runner_selftest).")
    var all = false

    func run() throws {
        let problems = SuiteInfo.validate(SuiteRegistry.all)
        guard problems.isEmpty else {
            FileHandle.standardError.write(Data(("suite registry: " + problems.joined(separator: "\n") + "\n").utf8))
            throw ExitCode(.configError)
        }
        let known = SuiteRegistry.all.map { $0.name }
        for name in suites where !known.contains(name) {
            FileHandle.standardError.write(Data("unknown suite '\(name)'; known: \(known.joined(separator: ", "))\n".utf8))
            throw ExitCode(.configError)
        }
        // Named suites are shown whatever they are; otherwise internal ones only with --all.
        let shown = SuiteRegistry.all.filter { suites.isEmpty ? (all || !$0.isInternal) : suites.contains($0.name) }
        for type in shown {
            print(type.name + (type.isInternal ? " (internal)" : ""))
            let cases = SuiteInfo.cases(of: type)
            // Names are shown whole (they are what --test-cases takes): the column fits the longest.
            let width = max(36, (cases.map(\.name.count).max() ?? 0) + 2)
            for info in cases {
                print("  " + info.name.padding(toLength: width, withPad: " ", startingAt: 0)
                      + info.kind.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0) + "timeout \(info.timeout.secondsText)")
            }
        }
    }
}
