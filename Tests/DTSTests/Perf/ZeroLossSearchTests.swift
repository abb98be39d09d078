@testable import DTS
import Testing

@Suite struct ZeroLossSearchTests {
    /// A path that forwards up to `capacity` packets per second and drops the rest, behind a
    /// generator whose line rate is `lineRate`.
    struct FakePath {
        var lineRate: Double
        var capacity: Double
        var seconds = 2.0
        func trial(_ rate: Double?) -> GeneratorTrial {
            let offered = min(rate ?? lineRate, lineRate)
            let sent = UInt64(offered * seconds)
            return GeneratorTrial(requestedPPS: rate, sent: sent, received: min(sent, UInt64(capacity * seconds)), seconds: seconds)
        }
    }

    @Test(arguments: [(1_000_000.0, 300_000.0), (1_000_000.0, 999_000.0), (500_000.0, 12_345.0), (800_000.0, 799_999.0)])
    func findsTheCapacityWithinResolution(lineRate: Double, capacity: Double) async throws {
        let path = FakePath(lineRate: lineRate, capacity: capacity)
        let search = ZeroLossSearch(tolerancePercent: 0, resolution: 0.01, maxTrials: 20)
        let result = try await search.run { path.trial($0) }
        #expect(result.lineRatePPS == lineRate)
        #expect(result.throughputPPS <= capacity)
        #expect(result.throughputPPS >= capacity - 0.01 * lineRate)
        #expect(result.trials.first?.requestedPPS == nil)            // line rate first
        #expect(result.best.map { $0.lossPercent == 0 } == true)
    }

    @Test func lineRateThatPassesEndsAtOnce() async throws {
        let path = FakePath(lineRate: 400_000, capacity: 1_000_000)
        let result = try await ZeroLossSearch().run { path.trial($0) }
        #expect(result.trials.count == 1)
        #expect(result.throughputPPS == 400_000)
    }

    @Test func toleranceAllowsSomeLoss() async throws {
        // 0.5 % tolerance: offered 1.004 × capacity loses 0.4 % and passes.
        let path = FakePath(lineRate: 1_004_000, capacity: 1_000_000)
        let result = try await ZeroLossSearch(tolerancePercent: 0.5).run { path.trial($0) }
        #expect(result.trials.count == 1)
        #expect(result.best?.lossPercent ?? 1 > 0.3)
    }

    @Test func aPathThatForwardsNothingHasNoBestAndStops() async throws {
        let path = FakePath(lineRate: 1_000_000, capacity: 0)
        let result = try await ZeroLossSearch(resolution: 0.0001, maxTrials: 8).run { path.trial($0) }
        #expect(result.best == nil)
        #expect(result.throughputPPS == 0)
        #expect(result.trials.count == 8)
    }

    @Test func lossArithmetic() {
        #expect(GeneratorTrial(requestedPPS: nil, sent: 1000, received: 990, seconds: 2).lossPercent == 1)
        #expect(GeneratorTrial(requestedPPS: nil, sent: 1000, received: 1001, seconds: 2).lossPercent == 0)
        #expect(GeneratorTrial(requestedPPS: nil, sent: 0, received: 0, seconds: 0).sentPPS == 0)
        #expect(ThroughputMeasurement.gbps(mpps: 14.88, frameSize: 64) > 9.99)
    }
}
