import DTS
import Foundation

/// `runner_selftest`: checks the runner itself on a real DUT (exit codes, signals, deadlines,
/// tear-downs). Harmless to run: with no settings every case passes in about a second.
/// Internal: `dts list` shows it only with `--all`.
///
/// Settings (`[suite]` of `conf/runner_selftest.cfg`):
/// - `sleep_seconds = 1`: how long `test_sleep` runs `sleep` on the DUT (make it long to try Ctrl-C);
/// - `fail = false`: `test_verify` fails when true;
/// - `marker_dir =`: when set, `tearDown` and `tearDownAll` create `teardown-<case>` and
///   `teardown-all` files there (proof that tear-downs ran, e.g. after SIGINT).
final class RunnerSelfTest: TestSuite {
    static let name = "runner_selftest"
    static let isInternal = true
    static let cases: [TestCase<RunnerSelfTest>] = [
        .functional("test_verify") { try await $0.testVerify() },
        .functional("test_sleep") { try await $0.testSleep() },
        .performance("test_perf_exec_latency") { try await $0.testExecLatency() },
    ]

    let context: TestContext

    init(context: TestContext) {
        self.context = context
    }

    func tearDown() async throws {
        try mark("teardown-\(context.currentCase ?? "none")")
    }

    func tearDownAll() async throws {
        try mark("teardown-all")
    }

    private func mark(_ name: String) throws {
        let directory = context.config.string("marker_dir", default: "")
        guard !directory.isEmpty else { return }
        guard FileManager.default.createFile(atPath: directory + "/" + name, contents: Data(name.utf8)) else {
            throw TestFailure(message: "cannot create marker \(directory)/\(name)")
        }
    }

    func testVerify() async throws {
        let shouldFail = try context.config.bool("fail", default: false)
        let result = try await context.dut.exec("echo ok", timeout: .seconds(10))
        try verify(result.output == "ok\n", "echo printed '\(result.output)'")
        try verify(!shouldFail, "failing on purpose (fail = true in [suite])")
    }

    func testSleep() async throws {
        let seconds = try context.config.int("sleep_seconds", default: 1)
        let result = try await context.dut.exec(argv: ["sleep", String(seconds)], timeout: .seconds(Int64(seconds) + 30))
        try verify(result.succeeded, "sleep exited \(result.status)")
    }

    func testExecLatency() async throws {
        var table = PerfTable(title: "exec latency", columns: ["run", "milliseconds"])
        for run in 1...5 {
            let start = ContinuousClock.now
            _ = try await context.dut.exec("true", timeout: .seconds(10))
            let elapsed = ContinuousClock.now - start
            table.add([run, String(format: "%.2f", elapsed.seconds * 1000)])
        }
        context.recordPerformance(table)
    }
}
