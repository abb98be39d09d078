import ArgumentParser
import DTS
import Foundation
import Suites

/// `dts list`: the registered suites and their cases.
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the suites and their cases (functional or performance).")

    @Argument(help: "Suites to show. Default: all.")
    var suites: [String] = []

    func run() throws {
        let problems = SuiteInfo.validate(SuiteRegistry.all)
        guard problems.isEmpty else {
            FileHandle.standardError.write(Data(("suite registry: " + problems.joined(separator: "\n") + "\n").utf8))
            throw ExitCode(ExitCodes.config)
        }
        let known = SuiteRegistry.all.map { $0.name }
        for name in suites where !known.contains(name) {
            FileHandle.standardError.write(Data("unknown suite '\(name)'; known: \(known.joined(separator: ", "))\n".utf8))
            throw ExitCode(ExitCodes.config)
        }
        for type in SuiteRegistry.all where suites.isEmpty || suites.contains(type.name) {
            print(type.name)
            for info in SuiteInfo.cases(of: type) {
                let timeout = info.timeout.components.seconds
                print("  " + info.name.padding(toLength: 36, withPad: " ", startingAt: 0)
                      + info.kind.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0) + "timeout \(timeout) s")
            }
        }
    }
}
