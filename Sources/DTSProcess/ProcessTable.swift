import Foundation

/// This machine's processes as `/proc` lists them (Linux).
public enum ProcessTable {
    /// The ids `/proc/<pid>/stat` gives for one process.
    public struct Entry: Sendable, Equatable {
        /// The process.
        public var pid: pid_t
        /// Its parent.
        public var parent: pid_t
        /// Its process group.
        public var group: pid_t
        /// Its session.
        public var session: pid_t
    }

    /// Every process that can be read now (one that exits meanwhile is left out).
    public static func entries() -> [Entry] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return names.compactMap { name in pid_t(name).flatMap(entry) }
    }

    /// The entry of `pid`, if it exists.
    public static func entry(_ pid: pid_t) -> Entry? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After "pid (comm)": state ppid pgrp session ... (comm may hold spaces and parentheses).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 3, let parent = pid_t(fields[1]), let group = pid_t(fields[2]), let session = pid_t(fields[3])
        else { return nil }
        return Entry(pid: pid, parent: parent, group: group, session: session)
    }

    /// The direct children of `pid`.
    public static func children(of pid: pid_t) -> [pid_t] {
        entries().filter { $0.parent == pid }.map(\.pid)
    }

    /// The processes of session `session` (its leader included).
    public static func members(ofSession session: pid_t) -> [pid_t] {
        entries().filter { $0.session == session }.map(\.pid)
    }
}
