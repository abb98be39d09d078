#if canImport(Glibc)
import Glibc
#endif

/// The exit statuses of the `dts` command, every subcommand: the one definition. README.md and
/// docs/running.md list the same numbers (a test compares docs/running.md with this enum).
public enum DTSExitCode: Int32, Sendable, CaseIterable {
    /// Every case PASSED or was SKIPPED; for `dts vm start`, Ctrl-C stopped the VM it kept.
    case success = 0
    /// At least one case FAILED or was BLOCKED, and none ended in ERROR.
    case testFailures = 1
    /// A config file or option is invalid: nothing ran.
    case configError = 2
    /// Something outside the tests failed: a case ended in ERROR (timeout, lost session, framework
    /// error), a VM did not boot, a DUT is unreachable.
    case infrastructureError = 3
    /// Interrupted by SIGINT (Ctrl-C): 128 + 2.
    case interrupted = 130
    /// Interrupted by SIGTERM: 128 + 15.
    case terminated = 143

    /// The status of a run stopped by `signal`: 128 + its number, as a shell reports a process
    /// killed by it (``interrupted`` for SIGINT, ``terminated`` for SIGTERM).
    public static func status(stoppedBy signal: Int32) -> Int32 { 128 + signal }
}
