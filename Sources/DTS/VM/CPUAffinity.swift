import CSystemShims
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// vCPU pinning.
public enum CPUAffinity {
    /// Pins thread `tid` to host CPU `cpu`.
    public static func pin(thread tid: Int32, to cpu: Int) throws {
        guard dts_pin_thread(tid, Int32(cpu)) == 0 else {
            throw ResourceError("cannot pin thread \(tid) to CPU \(cpu): \(String(cString: strerror(errno)))")
        }
    }

    /// The CPUs a thread may run on, from `/proc/<pid>/task/<tid>/status` (`Cpus_allowed_list`).
    public static func allowedList(pid: Int32, thread: Int32) -> [Int] {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) else { return [] }
        return ValueKind.parseCPUList(String(line.dropFirst("Cpus_allowed_list:".count)).trimmingCharacters(in: .whitespaces)) ?? []
    }
}
