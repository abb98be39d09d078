/// The one place dts turns a `Duration` into seconds and into text; every module reaches it
/// (`DTS` re-exports this module).
extension Duration {
    /// The duration in seconds (`.milliseconds(1500)` is 1.5), for Dispatch deadlines, JSON and arithmetic.
    public var seconds: Double { self / .seconds(1) }

    /// Seconds rounded to the millisecond without trailing zeros, for messages: `5 s`, `1.5 s`, `0.25 s`.
    public var secondsText: String {
        let scaled = (seconds * 1000).rounded()
        guard let milliseconds = Int64(exactly: scaled) else { return "\(seconds) s" }
        let sign = milliseconds < 0 ? "-" : ""
        let whole = milliseconds.magnitude / 1000, fraction = milliseconds.magnitude % 1000
        guard fraction != 0 else { return "\(sign)\(whole) s" }
        var digits = String(fraction)
        digits = String(repeating: "0", count: 3 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(sign)\(whole).\(digits) s"
    }
}
