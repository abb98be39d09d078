/// One case of a plan: what `dts run --list-plan` prints and what shards divide.
public struct PlanUnit: Sendable, Hashable, CustomStringConvertible {
    /// The DUT (its `crbs.cfg` section).
    public var dut: String
    /// The target.
    public var target: String
    /// The suite.
    public var suite: String
    /// The case.
    public var testCase: String

    /// Creates a unit.
    public init(dut: String, target: String, suite: String, testCase: String) {
        self.dut = dut
        self.target = target
        self.suite = suite
        self.testCase = testCase
    }

    /// The key of the same case in results (``CaseKey``).
    public var key: CaseKey { CaseKey(dut: dut, target: target, suite: suite, testCase: testCase) }

    /// `dut target suite/case`, one line of `--list-plan`.
    public var description: String { "\(dut) \(target) \(suite)/\(testCase)" }
}

/// `--shard K/N`: the K-th of N parts of a plan (K from 1).
public struct Shard: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Which part, from 1.
    public var index: Int
    /// How many parts.
    public var count: Int

    /// Creates a shard; `nil` unless `1 <= index <= count`.
    public init?(index: Int, count: Int) {
        guard count >= 1, (1...count).contains(index) else { return nil }
        self.index = index
        self.count = count
    }

    /// Reads `K/N`, as `--shard` and CI variables (`$CI_NODE_INDEX/$CI_NODE_TOTAL`) give it.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]) else { return nil }
        self.init(index: index, count: count)
    }

    /// `K/N`.
    public var description: String { "\(index)/\(count)" }
}

extension RunPlan {
    /// Every case the plan runs, in run order: per execution (DUT × target), per suite, per case.
    public var units: [PlanUnit] {
        executions.flatMap { execution in
            execution.suites.flatMap { selection in
                selection.caseNames(parameters: execution.parameters).map {
                    PlanUnit(dut: execution.crb.name, target: execution.target, suite: selection.type.name, testCase: $0)
                }
            }
        }
    }

    /// The part of the plan `shard` runs. The plan is cut into blocks, one per suite of an
    /// execution (a suite is never split, so its `setUpAll` runs once), and the blocks are dealt
    /// out so that every shard gets about as many cases: the largest block first, each to the
    /// shard with the fewest cases so far (the lowest-numbered on a tie).
    ///
    /// The deal depends only on the order and sizes of the blocks, not on names: every shard
    /// computes the same deal from the same execution.cfg, also when each shard runs it on another
    /// DUT (`--dut`). The N shards together run each unit of the plan exactly once. Executions left
    /// with no suite are dropped (their DUT is not contacted).
    public func sharded(_ shard: Shard) -> RunPlan {
        let owners = Self.deal(blockSizes, into: shard.count)
        var block = 0
        var kept: [PlannedExecution] = []
        for var execution in executions {
            var suites: [SuiteSelection] = []
            for selection in execution.suites {
                if owners[block] == shard.index { suites.append(selection) }
                block += 1
            }
            execution.suites = suites
            if !execution.suites.isEmpty { kept.append(execution) }
        }
        return RunPlan(executions: kept)
    }

    /// The number of cases of each (execution, suite) block, in plan order.
    var blockSizes: [Int] {
        executions.flatMap { execution in execution.suites.map { $0.caseNames(parameters: execution.parameters).count } }
    }

    /// The shard (from 1) of each block: largest first, to the least loaded shard, ties to the lower
    /// block and the lower shard.
    static func deal(_ sizes: [Int], into count: Int) -> [Int] {
        var load = [Int](repeating: 0, count: count)
        var owner = [Int](repeating: 0, count: sizes.count)
        let order = sizes.indices.sorted { sizes[$0] != sizes[$1] ? sizes[$0] > sizes[$1] : $0 < $1 }
        for block in order {
            let target = load.indices.min { load[$0] != load[$1] ? load[$0] < load[$1] : $0 < $1 }!
            owner[block] = target + 1
            load[target] += sizes[block]
        }
        return owner
    }
}
