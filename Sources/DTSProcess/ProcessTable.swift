import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// This machine's processes as `/proc` lists them (Linux): the one reader of `/proc/<pid>/stat`
/// and `/proc/<pid>/cmdline` in dts.
public enum ProcessTable {
    /// What `/proc/<pid>/stat` gives for one process.
    public struct Entry: Sendable, Equatable {
        /// The process.
        public var pid: pid_t
        /// Its parent.
        public var parent: pid_t
        /// Its process group.
        public var group: pid_t
        /// Its session.
        public var session: pid_t
        /// Its state letter (`R`, `S`, `D`, `Z` for a zombie, ...).
        public var state: UInt8
        /// When it started, in clock ticks since boot (field 22): tells a pid from a reused one.
        public var startTime: UInt64
    }

    /// Every process that can be read now (one that exits meanwhile is left out).
    public static func entries() -> [Entry] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return names.compactMap { name in pid_t(name).flatMap(entry) }
    }

    /// The entry of `pid`, if it exists.
    public static func entry(_ pid: pid_t) -> Entry? {
        guard let stat = FileManager.default.contents(atPath: "/proc/\(pid)/stat").map(Array.init),
              let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // After "pid (comm)": state ppid pgrp session ... starttime is field 22. comm may hold any
        // byte but NUL (spaces and parentheses too), so the fields start after its last ')'.
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
        guard fields.count > 19, fields[0].utf8.count == 1, let parent = pid_t(fields[1]), let group = pid_t(fields[2]),
              let session = pid_t(fields[3]), let start = UInt64(fields[19].trimmingCharacters(in: .newlines))
        else { return nil }
        return Entry(pid: pid, parent: parent, group: group, session: session, state: fields[0].utf8.first!, startTime: start)
    }

    /// The direct children of `pid`.
    public static func children(of pid: pid_t) -> [pid_t] {
        entries().filter { $0.parent == pid }.map(\.pid)
    }

    /// The processes of session `session` (its leader included).
    public static func members(ofSession session: pid_t) -> [pid_t] {
        entries().filter { $0.session == session }.map(\.pid)
    }

    /// The start time of `pid` (``Entry/startTime``), `nil` if it is gone.
    public static func startTime(of pid: pid_t) -> UInt64? { entry(pid)?.startTime }

    /// The argv of `pid`, empty if it is gone (or a kernel thread).
    public static func commandLine(of pid: pid_t) -> [String] {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return [] }
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether a process with this pid exists (a zombie included).
    public static func isAlive(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 || errno == EPERM }
}
