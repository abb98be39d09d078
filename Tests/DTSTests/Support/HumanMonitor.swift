import DTSTestSupport
import Foundation

/// QEMU's human monitor on a loopback TCP port (`monitor = port=N;`), driven with socat.
enum HumanMonitor {
    /// Sends `command` to the monitor on 127.0.0.1:`port` and returns what it printed (its
    /// greeting, the prompt and the reply).
    static func command(_ command: String, port: Int) async throws -> String {
        let script = #"printf '%s\n' "$1" | socat -t 2 - "TCP:127.0.0.1:$2""#
        let result = try await runProgram("/bin/sh", ["-c", script, "sh", command, String(port)])
        return result.output
    }
}
