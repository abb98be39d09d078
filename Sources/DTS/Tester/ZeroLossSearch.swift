/// What one generator trial saw: frames that left the generator and frames that came back, over
/// a measured time.
public struct GeneratorTrial: Sendable, Equatable {
    /// The rate asked for, packets per second; `nil` is line rate (as fast as the generator goes).
    public var requestedPPS: Double?
    /// Frames sent.
    public var sent: UInt64
    /// Frames received back (the kernel's receive counter of the receive interface).
    public var received: UInt64
    /// Frames the generator's DPDK receiver counted (`nil` when not measured); it may miss a few
    /// that reached the interface (its ring), so the kernel's count decides the loss.
    public var receivedByGenerator: UInt64?
    /// Seconds the generator sent for.
    public var seconds: Double

    /// Creates a trial's result.
    public init(requestedPPS: Double?, sent: UInt64, received: UInt64, seconds: Double, receivedByGenerator: UInt64? = nil) {
        self.requestedPPS = requestedPPS
        self.sent = sent
        self.received = received
        self.seconds = seconds
        self.receivedByGenerator = receivedByGenerator
    }

    /// Frames per second that left the generator (the offered rate).
    public var sentPPS: Double { seconds > 0 ? Double(sent) / seconds : 0 }
    /// Frames per second that came back.
    public var receivedPPS: Double { seconds > 0 ? Double(received) / seconds : 0 }
    /// Lost frames in percent of those sent (0 when nothing was sent; more received counts as 0).
    public var lossPercent: Double { sent == 0 ? 0 : max(0, Double(Int64(sent) - Int64(received))) / Double(sent) * 100 }
}

/// RFC 2544 throughput: the highest offered rate whose loss is at or under a tolerance, found by
/// a binary search over the rate with one trial of a fixed duration per step. The first trial is
/// at line rate (the generator's own ceiling); if it passes, that is the answer.
public struct ZeroLossSearch: Sendable {
    /// Loss allowed in a passing trial, percent (0 is zero loss).
    public var tolerancePercent: Double
    /// The search stops when the bracket is narrower than this fraction of line rate.
    public var resolution: Double
    /// At most this many trials, line-rate trial included.
    public var maxTrials: Int

    /// Creates a search.
    public init(tolerancePercent: Double = 0, resolution: Double = 0.02, maxTrials: Int = 10) {
        self.tolerancePercent = tolerancePercent
        self.resolution = resolution
        self.maxTrials = maxTrials
    }

    /// The outcome: the best passing trial (if any) and every trial in order.
    public struct Result: Sendable, Equatable {
        /// The passing trial with the highest offered rate, `nil` when even the lowest rate lost frames.
        public var best: GeneratorTrial?
        /// The line-rate trial's offered rate, packets per second.
        public var lineRatePPS: Double
        /// Every trial, in the order run.
        public var trials: [GeneratorTrial]
        /// The zero-loss throughput, packets per second (what came back in the best trial; 0 when none passed).
        public var throughputPPS: Double { best?.receivedPPS ?? 0 }
    }

    /// Runs the search; `trial(rate)` sends at `rate` packets per second (`nil`: line rate) for the
    /// fixed duration and reports what it saw.
    public func run(_ trial: @Sendable (Double?) async throws -> GeneratorTrial) async throws -> Result {
        let first = try await trial(nil)
        var trials = [first]
        let lineRate = first.sentPPS
        if pass(first) || lineRate <= 0 {
            return Result(best: pass(first) ? first : nil, lineRatePPS: lineRate, trials: trials)
        }
        var low = 0.0, high = lineRate
        var best: GeneratorTrial?
        while trials.count < maxTrials, high - low > resolution * lineRate {
            let rate = (low + high) / 2
            let result = try await trial(rate)
            trials.append(result)
            if pass(result) {
                low = rate
                if best.map({ result.sentPPS > $0.sentPPS }) ?? true { best = result }
            } else {
                high = rate
            }
        }
        return Result(best: best, lineRatePPS: lineRate, trials: trials)
    }

    func pass(_ trial: GeneratorTrial) -> Bool { trial.sent > 0 && trial.lossPercent <= tolerancePercent }
}
