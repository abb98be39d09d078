@_exported import DTSSession

extension Duration {
    /// The duration in seconds, for Dispatch deadlines.
    var dtsSeconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
