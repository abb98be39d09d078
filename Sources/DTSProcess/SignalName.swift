import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// Signal names from glibc's own table (`sigabbrev_np`): the one place dts turns signal numbers
/// into names and back (SSH `exit-signal`, `setpriv --pdeathsig`, "stopped by SIGINT" messages).
public enum SignalName {
    /// The name without its `SIG` prefix (`KILL` for 9), or `nil` for a number glibc does not name.
    public static func abbreviation(of signal: Int32) -> String? {
        dts_signal_abbrev(signal).map { String(cString: $0) }
    }

    /// `SIGINT`, `SIGTERM`, ...; `signal N` for a number without a name.
    public static func describe(_ signal: Int32) -> String {
        abbreviation(of: signal).map { "SIG" + $0 } ?? "signal \(signal)"
    }

    /// The number of the signal named `name` (`KILL`, `SIGKILL`, `kill`), or `nil` if none has that name.
    public static func number(of name: String) -> Int32? {
        var bare = name.uppercased()
        if bare.hasPrefix("SIG") { bare.removeFirst(3) }
        return (1..<128).first { abbreviation(of: $0) == bare }
    }
}
