import DTS
import Foundation
import Testing

/// Golden files for the command-line builder: every handler, option and error class.
/// Regenerate with `DTS_UPDATE_GOLDEN=1 swift test --filter GoldenCommandLine` and review the diff.
@Suite struct GoldenCommandLineTests {
    @Test(arguments: GoldenCase.all)
    func golden(_ golden: GoldenCase) throws {
        let result = try golden.build()
        switch result {
        case .success(let command):
            #expect(!golden.expectsError, "\(golden.name) should fail but built:\n\(command.goldenText)")
            try compare(command.goldenText, golden.argsPath)
        case .failure(let errors):
            #expect(golden.expectsError, "\(golden.name) failed:\n\(errors)")
            try compare(errors.description + "\n", golden.errPath)
        }
    }

    @Test func everyParameterHasAGoldenCase() throws {
        var seen = Set<String>()
        for golden in GoldenCase.all where !golden.expectsError {
            guard case .success = try golden.build() else { continue }
            let text = try String(contentsOfFile: golden.configPath, encoding: .utf8)
            for name in VMParamSchema.names where text.contains("\n\(name) =") || text.contains("\n\(name):") { seen.insert(name) }
        }
        // Parameters that only come from defaults are covered by `defaults`.
        let fromDefaults: Set = ["name", "enable_kvm", "machine", "pid_file", "daemon", "monitor", "net", "cpu", "mem", "start", "control", "vnc", "def_driver"]
        let missing = Set(VMParamSchema.names).subtracting(seen).subtracting(fromDefaults)
        #expect(missing.isEmpty, "parameters with no golden case of their own: \(missing.sorted())")
    }

    @Test func everyParameterOfTheSchemaHasOneHandler() {
        #expect(VMParameters.handlers.map { $0.spec.name } == VMParamSchema.names)
    }

    @Test func buildIsDeterministic() throws {
        for golden in GoldenCase.all where !golden.expectsError {
            let a = try golden.build(), b = try golden.build()
            #expect(a == b, "\(golden.name) built twice gave different results")
        }
    }

    private func compare(_ actual: String, _ path: String) throws {
        if GoldenCase.updating {
            try actual.write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        guard let expected = try? String(contentsOfFile: path, encoding: .utf8) else {
            Issue.record("missing golden file \(path); run with DTS_UPDATE_GOLDEN=1 to create it. Actual:\n\(actual)")
            return
        }
        #expect(actual == expected, "\(path) differs:\n--- expected\n\(expected)--- actual\n\(actual)")
    }
}
