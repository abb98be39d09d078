import Foundation

/// The path of `program` (a path, or a name looked up in `PATH` and the usual bin and sbin
/// directories). The tests need real programs, so a missing one fails the test, saying what
/// installs it: `setup` names the script under `scripts/setup.d/` (else `scripts/setup.sh`, which
/// runs them all), `package` the Debian package.
@discardableResult
public func requireProgram(_ program: String, package: String? = nil, setup: String? = nil) throws -> String {
    if program.hasPrefix("/") {
        if FileManager.default.isExecutableFile(atPath: program) { return program }
    } else {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
            + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        for directory in directories where FileManager.default.isExecutableFile(atPath: directory + "/" + program) {
            return directory + "/" + program
        }
    }
    let install = package.map { "install the Debian package \($0) or " } ?? ""
    throw TestSetupError(description: "\(program) is missing: \(install)run scripts/\(setup.map { "setup.d/" + $0 } ?? "setup.sh")")
}

/// ``requireProgram(_:package:setup:)`` for each of `programs`.
public func requirePrograms(_ programs: [String], setup: String? = nil) throws {
    for program in programs { try requireProgram(program, setup: setup) }
}
