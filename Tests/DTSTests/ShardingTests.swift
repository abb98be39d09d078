@testable import DTS
import DTSTestSupport
import Foundation
import Suites
import Testing

/// A seeded generator, so that a failing random plan can be rebuilt from its seed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct ShardingTests {
    /// A plan of 1 to 4 DUTs, 1 to 3 targets each, and a random selection of the registered suites
    /// with random subsets of their cases (an empty subset included).
    static func randomPlan(_ generator: inout SeededGenerator) -> RunPlan {
        let suites = SuiteRegistry.all
        var executions: [PlannedExecution] = []
        for dut in 0..<Int.random(in: 1...4, using: &generator) {
            for target in 0..<Int.random(in: 1...3, using: &generator) {
                let picked = suites.shuffled(using: &generator).prefix(Int.random(in: 0...min(6, suites.count), using: &generator))
                let selections = picked.map { type -> SuiteSelection in
                    let names = SuiteInfo.cases(of: type).map(\.name)
                    return SuiteSelection(type, cases: names.filter { _ in Bool.random(using: &generator) })
                }
                executions.append(PlannedExecution(name: "Execution\(dut)", crb: .implicitLocal("dut\(dut)"), target: "t\(target)",
                                                   parameters: [:], suites: selections))
            }
        }
        return RunPlan(executions: executions)
    }

    /// 200 random plans (seeds 1...200) × N from 1 to 5; computed off the cooperative pool.
    @Test func shardsPartitionRandomPlansWithoutSplittingASuite() async throws {
        let problems = try await offPool { (UInt64(1)...200).flatMap(Self.partitionProblems(seed:)) }
        #expect(problems.isEmpty, "\(problems.prefix(10))")
    }

    /// What breaks the shard properties for the random plan of `seed`, for N from 1 to 5.
    static func partitionProblems(seed: UInt64) -> [String] {
        var problems: [String] = []
        func check(_ condition: Bool, _ what: @autoclosure () -> String) { if !condition { problems.append(what()) } }
        var generator = SeededGenerator(seed: seed)
        let plan = randomPlan(&generator)
        let units = plan.units
        for count in 1...5 {
            let at = "seed \(seed), N \(count)"
            let shards = (1...count).map { plan.sharded(Shard(index: $0, count: count)!) }
            // Every unit exactly once, and each shard keeps the plan's order.
            let all = shards.flatMap(\.units)
            check(all.count == units.count, "\(at): \(all.count) units in the shards, \(units.count) planned")
            check(Set(all) == Set(units), "\(at): the shards' units are not the plan's")
            for shard in shards {
                let positions = shard.units.compactMap { units.firstIndex(of: $0) }
                check(positions == positions.sorted(), "\(at): a shard is out of plan order")
            }
            // A suite of an execution (DUT, target) is in one shard only.
            var owner: [String: Int] = [:]
            for (index, shard) in shards.enumerated() {
                for unit in shard.units {
                    let block = "\(unit.dut) \(unit.target) \(unit.suite)"
                    if let earlier = owner[block] { check(earlier == index, "\(at): \(block) is split") }
                    owner[block] = index
                }
            }
            // Deterministic, and balanced as the greedy deal promises: loads differ by at most the largest suite.
            check(plan.sharded(Shard(index: count, count: count)!).units == shards[count - 1].units, "\(at): not deterministic")
            let loads = shards.map(\.units.count)
            check((loads.max() ?? 0) - (loads.min() ?? 0) <= (plan.blockSizes.max() ?? 0), "\(at): loads \(loads)")
            // No execution is left with nothing to do (its DUT is not contacted).
            check(shards.allSatisfy { $0.executions.allSatisfy { !$0.suites.isEmpty } }, "\(at): an execution without suites")
        }
        return problems
    }

    @Test func shardTextIsKOfN() {
        #expect(Shard("1/2") == Shard(index: 1, count: 2))
        #expect(Shard("2/2")?.description == "2/2")
        for bad in ["0/2", "3/2", "1/0", "1", "a/b", "1/2/3", "", "/2", "-1/2"] { #expect(Shard(bad) == nil, "\(bad)") }
    }
}

@Suite struct ShardingCLITests {
    /// An execution.cfg with two DUT sections of the local machine and three suites.
    static func conf(_ dir: TempDir) throws -> (execution: String, crbs: String) {
        let execution = dir.path + "/execution.cfg", crbs = dir.path + "/crbs.cfg"
        try """
            [Execution1]
            crbs = local-a
            test_suites = host_basic, runner_selftest
            targets = x86_64-native-linuxapp-gcc

            [Execution2]
            crbs = local-b
            test_suites = host_basic
            targets = x86_64-native-linuxapp-gcc

            """.write(toFile: execution, atomically: true, encoding: .utf8)
        try """
            [local-a]
            dut_ip = 127.0.0.1
            dut_user = root
            dut_passwd =

            [local-b]
            dut_ip = 127.0.0.1
            dut_user = root
            dut_passwd =

            """.write(toFile: crbs, atomically: true, encoding: .utf8)
        return (execution, crbs)
    }

    @Test func listPlanPrintsEachShardsUnitsAndTheShardsCoverThePlan() async throws {
        let dir = try TempDir("dts-listplan")
        let (execution, crbs) = try Self.conf(dir)
        let base = ["run", "--config-file", execution, "--crbs", crbs, "--output", dir.path + "/out", "--list-plan"]
        let whole = try await DTSBinary.run(base)
        #expect(whole.status == 0, "\(whole.stderr)")
        let planned = whole.stdout.split(separator: "\n").map(String.init)
        #expect(planned.contains("local-a x86_64-native-linuxapp-gcc host_basic/test_kernel_release"))
        #expect(planned.contains { $0.hasPrefix("local-b x86_64-native-linuxapp-gcc host_basic/") })
        var shards: [String] = []
        for k in 1...3 {
            let part = try await DTSBinary.run(base + ["--shard", "\(k)/3"])
            #expect(part.status == 0, "\(part.stderr)")
            shards += part.stdout.split(separator: "\n").map(String.init)
        }
        #expect(shards.sorted() == planned.sorted())
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/out"))

        // Four shards of three suites: the fourth has nothing to do, contacts no DUT, writes empty results.
        let empty = try await DTSBinary.run(["run", "--config-file", execution, "--crbs", crbs, "--output", dir.path + "/empty", "--shard", "4/4"])
        #expect(empty.status == 0, "\(empty.output)")
        let nothing = try ReportWriters.readResults(directory: dir.path + "/empty")
        #expect(nothing.allCases.isEmpty && nothing.shard?.planUnits == planned.count)

        let bad = try await DTSBinary.run(base + ["--shard", "4/3"])
        #expect(bad.status == 64 || bad.status == 2, "\(bad.status)")
        #expect(bad.stderr.contains("--shard"))
    }

    /// `--shard 1/2` and `--shard 2/2` of real suites on two (local) DUTs, merged, give the
    /// test_results.json of the unsharded run, which ran both DUTs at once with a log subtree each.
    @Test func twoShardsMergedEqualTheUnshardedRun() async throws {
        let dir = try TempDir("dts-shard-merge")
        let (execution, crbs) = try Self.conf(dir)
        let base = ["run", "--config-file", execution, "--crbs", crbs]
        let whole = try await DTSBinary.run(base + ["--output", dir.path + "/whole"])
        #expect(whole.status == 0, "\(whole.output)")
        for k in 1...2 {
            let part = try await DTSBinary.run(base + ["--output", dir.path + "/shard-\(k)", "--shard", "\(k)/2"])
            #expect(part.status == 0, "\(part.output)")
        }
        let merge = try await DTSBinary.run(["report", "merge", dir.path + "/merged", dir.path + "/shard-1", dir.path + "/shard-2"])
        #expect(merge.status == 0, "\(merge.output)")
        #expect(!merge.stderr.contains("warning"), "\(merge.stderr)")

        func tree(_ name: String) throws -> [String: [String: [String: String]]] {
            let data = try Data(contentsOf: URL(fileURLWithPath: dir.path + "/" + name + "/test_results.json"))
            return try #require(try JSONSerialization.jsonObject(with: data) as? [String: [String: [String: String]]])
        }
        let expected = try tree("whole")
        #expect(expected["local-a"]?["x86_64-native-linuxapp-gcc"]?.count == 6)
        #expect(expected["local-b"]?["x86_64-native-linuxapp-gcc"]?.count == 4)
        #expect(try tree("merged") == expected)
        #expect(try tree("shard-1") != expected)

        // The unsharded run: one subtree per DUT; the merged report links into the shards' logs.
        let fm = FileManager.default
        for dut in ["local-a", "local-b"] {
            #expect(fm.fileExists(atPath: "\(dir.path)/whole/\(dut)/dut.log"))
            #expect(fm.fileExists(atPath: "\(dir.path)/whole/\(dut)/host_basic/suite.log"))
            #expect(fm.fileExists(atPath: "\(dir.path)/whole/\(dut)/host_basic/test_kernel_release.log"))
        }
        let dutLog = try String(contentsOfFile: dir.path + "/whole/local-b/dut.log", encoding: .utf8)
        #expect(!dutLog.contains("runner_selftest"), "local-b's log holds only local-b's lines")
        let html = try String(contentsOfFile: dir.path + "/merged/report.html", encoding: .utf8)
        #expect(html.contains("<a href=\"../shard-1/report.html\">"))
        let merged = try ReportWriters.readResults(directory: dir.path + "/merged")
        for entry in merged.allCases {
            #expect(fm.fileExists(atPath: dir.path + "/merged/" + entry.case.log), "\(entry.case.log)")
        }
    }
}
