@testable import DTS
import Testing

@Suite struct RateDropTests {
    /// DTS's check: the drop must stay strictly under the allowed fraction of the rate before.
    @Test func dropAgainstTheRateBefore() {
        #expect(RateDrop(before: 10, after: 9).isWithin(0.15))
        #expect(RateDrop(before: 10, after: 12).isWithin(0.15))          // a rise is no drop
        #expect(!RateDrop(before: 10, after: 8.5).isWithin(0.15))        // exactly 15 %: DTS's `<` fails it
        #expect(!RateDrop(before: 10, after: 0).isWithin(0.99))
        #expect(RateDrop(before: 10, after: 8.5).isWithin(0.5))
        #expect(abs(RateDrop(before: 10, after: 8.5).fraction - 0.15) < 1e-12)
    }

    /// Nothing measured before the reconnect never passes: there is no rate to keep.
    @Test func zeroBeforeNeverPasses() {
        #expect(!RateDrop(before: 0, after: 0).isWithin(1))
        #expect(!RateDrop(before: 0, after: 5).isWithin(1))
        #expect(RateDrop(before: 0, after: 5).fraction == 1)
    }

    @Test func describesBothRates() {
        #expect(RateDrop(before: 0.004, after: 0.003).description == "0.0040 -> 0.0030 (drop 25.0 %)")
        #expect(RateDrop(before: 120, after: 90).description == "120.0 -> 90.0 (drop 25.0 %)")
    }
}
