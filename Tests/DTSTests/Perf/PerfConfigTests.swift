@testable import DTS
import DTSTestSupport
import Foundation
import Testing

@Suite struct PerfConfigTests {
    static let dtsText = """
        # perf settings as DTS writes them
        [suite]
        update_expected = True
        test_parameters = {64: [1024], 1518: [1024]}
        test_duration = 60
        accepted_tolerance = 1
        ; the baselines
        expected_throughput = {'split_ring_mergeable': {64: {1024: 0.00}, 1518: {1024: 0.00}},
            # packed ring too
            'packed_ring_mergeable': {64: {1024: 2.5}, 1518: {1024: 1}}}
        other = kept as is

        """

    func write(_ text: String, _ dir: TempDir) throws -> String {
        let path = dir.path + "/perf.cfg"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func readsDTSConfig() throws {
        let dir = try TempDir()
        let perf = try PerfConfig(SuiteConfig(path: write(Self.dtsText, dir)))
        #expect(perf.testParameters == [.init(frameSize: 64, descriptors: [1024]), .init(frameSize: 1518, descriptors: [1024])])
        #expect(perf.testDuration == 60)
        #expect(perf.acceptedTolerance == 1)
        #expect(perf.updateExpected)
        #expect(perf.expected(path: "packed_ring_mergeable", frameSize: 64, descriptors: 1024) == .mpps(2.5))
        #expect(perf.expected(path: "packed_ring_mergeable", frameSize: 1518, descriptors: 1024) == .mpps(1))
        #expect(perf.expected(path: "split_ring_mergeable", frameSize: 64, descriptors: 1024) == .mpps(0))
        #expect(perf.expected(path: "nope", frameSize: 64, descriptors: 1024) == .missing("no 'nope' in expected_throughput"))
        #expect(perf.expected(path: "split_ring_mergeable", frameSize: 128, descriptors: 1024)
            == .missing("no frame size 128 under 'split_ring_mergeable' in expected_throughput"))
    }

    @Test(arguments: [
        ("test_parameters = [64]", ":2: [suite] test_parameters: expected a dict of frame size → list of descriptor counts, e.g. {64: [1024], 1518: [1024]} (column 19)"),
        ("test_parameters = {64: 1024}", ":2: [suite] test_parameters: descriptor counts of frame size 64 must be a list, e.g. [1024], not a int (column 24)"),
        ("test_parameters = {64: [1024]}\nupdate_expected = yes", ":3: [suite] update_expected: not a Python literal (column 19): 'yes' is not a literal (names, calls and expressions are not allowed); quote strings: 'yes'"),
        ("test_parameters = {64: [1024]}\ntest_duration = 0", ":3: [suite] test_duration: expected a number > 0, got 0 (column 17)"),
        ("test_parameters = {64: [1024]}\nexpected_throughput = {'p': {64: {1024: 'x'}}}", ":3: [suite] expected_throughput: under 'p' 64: descriptors 1024 must map to a number of Mpps ≥ 0 (column 41)"),
        ("test_parameters = {64: [1024],\n  1518: [1024}", ":3: [suite] test_parameters: not a Python literal (column 14): expected ',' or ']' in the list opened at line 3, column 9, found '}'"),
        ("x = 1", ":1: [suite] test_parameters: required suite setting missing (section [suite] has no key 'test_parameters')"),
    ])
    func errorsNameFileLineAndKey(body: String, message: String) throws {
        let dir = try TempDir()
        let path = try write("[suite]\n" + body + "\n", dir)
        do { _ = try PerfConfig(SuiteConfig(path: path)); Issue.record("accepted") } catch {
            #expect("\(error)" == path + message)
        }
    }

    @Test func baselineVerdicts() throws {
        let dir = try TempDir()
        let perf = try PerfConfig(SuiteConfig(path: write(Self.dtsText, dir)))
        // Above the floor (2.5 × 0.99 = 2.475): pass; below: fail, naming path, size, figures.
        let pass = ThroughputVerdict.evaluate(path: "packed_ring_mergeable", [
            .init(frameSize: 64, descriptors: 1024, mpps: 2.48), .init(frameSize: 1518, descriptors: 1024, mpps: 1.2)], config: perf)
        #expect(pass.failures.isEmpty)
        #expect(pass.table.rows.map { $0.last } == ["PASS", "PASS"])
        let fail = ThroughputVerdict.evaluate(path: "packed_ring_mergeable", [.init(frameSize: 64, descriptors: 1024, mpps: 2.4)], config: perf)
        #expect(fail.failures == ["packed_ring_mergeable 64 B, 1024 descriptors: measured 2.400 Mpps, expected 2.500 Mpps (at least 2.475 with accepted_tolerance 1%)"])
        #expect(fail.table.rows == [["64", "1024", "2.400", "1.613", "2.500", "-0.100", "FAIL"]])
        // Expected 0 and no entry: no baseline yet, which passes and says so.
        let none = ThroughputVerdict.evaluate(path: "split_ring_mergeable", [.init(frameSize: 64, descriptors: 1024, mpps: 0.1)], config: perf)
        #expect(none.failures.isEmpty)
        #expect(none.noBaseline == ["split_ring_mergeable 64 B, 1024 descriptors: 0.100 Mpps, no baseline yet (expected_throughput is 0)"])
        #expect(none.table.rows.first?.last == "no baseline yet")
        let missing = ThroughputVerdict.evaluate(path: "vectorized", [.init(frameSize: 64, descriptors: 1024, mpps: 0.1)], config: perf)
        #expect(missing.failures.isEmpty)
        #expect(missing.noBaseline.first?.hasSuffix("no baseline yet (no 'vectorized' in expected_throughput)") == true)
        #expect(none.table.chart == PerfChart(x: "Frame Size", y: "Throughput", series: "TXD/RXD", expected: "Expected Throughput", status: "Status"))
    }

    /// update_expected changes only the numbers: every other byte of the file stays.
    @Test func updateExpectedRoundTrip() throws {
        let dir = try TempDir()
        let text = Self.dtsText.replacingOccurrences(of: "\n", with: "\r\n")
        let path = try write(text, dir)
        let missing = try PerfConfig.writeExpected(file: path, path: "split_ring_mergeable",
                                                   [(64, 1024, 3.14159), (1518, 1024, 0.8125), (128, 1024, 1)])
        #expect(missing == ["split_ring_mergeable 128/1024: no frame size 128 under 'split_ring_mergeable' in expected_throughput"])
        let after = try String(contentsOfFile: path, encoding: .utf8)
        #expect(after == text.replacingOccurrences(of: "{64: {1024: 0.00}, 1518: {1024: 0.00}}", with: "{64: {1024: 3.142}, 1518: {1024: 0.812}}"))
        let perf = try PerfConfig(SuiteConfig(path: path))
        #expect(perf.expected(path: "split_ring_mergeable", frameSize: 64, descriptors: 1024) == .mpps(3.142))
        #expect(perf.expected(path: "packed_ring_mergeable", frameSize: 1518, descriptors: 1024) == .mpps(1))
        // A second write (a later case of the same run) keeps the first.
        try PerfConfig.writeExpected(file: path, path: "packed_ring_mergeable", [(1518, 1024, 12)])
        let again = try PerfConfig(SuiteConfig(path: path))
        #expect(again.expected(path: "split_ring_mergeable", frameSize: 64, descriptors: 1024) == .mpps(3.142))
        #expect(again.expected(path: "packed_ring_mergeable", frameSize: 1518, descriptors: 1024) == .mpps(12))
        #expect(try String(contentsOfFile: path, encoding: .utf8).contains("1518: {1024: 12.000}}}\r\nother = kept as is\r\n"))
    }

    @Test func typedTableJSONRoundTrip() throws {
        var table = PerfTable(title: "t", columns: [PerfColumn("Frame Size", unit: "bytes"), PerfColumn("Throughput", unit: "Mpps", digits: 3),
                                                    PerfColumn("Status")], chart: PerfChart(x: "Frame Size", y: "Throughput"))
        table.add(values: [.number(64), .number(1.5), .text("PASS")])
        table.add(values: [.number(1518), .empty, .text("no baseline yet")])
        let data = try JSONEncoder().encode(table)
        let json = try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let rows = try #require(json["rows"] as? [[Any]])
        #expect(rows[0][0] as? Double == 64)
        #expect(rows[0][1] as? Double == 1.5)
        #expect(rows[1][1] is NSNull)
        #expect((json["columns"] as? [[String: Any]])?[1]["unit"] as? String == "Mpps")
        #expect(try JSONDecoder().decode(PerfTable.self, from: data) == table)
        #expect(table.rows == [["64", "1.500", "PASS"], ["1518", "", "no baseline yet"]])
        // A results.json from before typed tables still reads.
        let old = try JSONDecoder().decode(PerfTable.self, from: Data(#"{"title":"x","columns":["a"],"rows":[["1"]]}"#.utf8))
        #expect(old == PerfTable(title: "x", columns: ["a"], rows: [["1"]]))
    }
}
