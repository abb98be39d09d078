import DTSSession
import Foundation

/// Hugepage accounting for hugepage-backed guests.
public enum Hugepages {
    /// The page size of a hugetlbfs mount in kB (its `pagesize=` option, else the default size).
    public static func pageSizeKB(mount: String, mounts: String = "/proc/mounts", meminfo: String = "/proc/meminfo") -> Int {
        if let text = try? String(contentsOfFile: mounts, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count >= 4, fields[1] == mount, fields[2] == "hugetlbfs" else { continue }
                for option in fields[3].split(separator: ",") where option.hasPrefix("pagesize=") {
                    let value = option.dropFirst("pagesize=".count)
                    if value.hasSuffix("M"), let n = Int(value.dropLast()) { return n * 1024 }
                    if value.hasSuffix("G"), let n = Int(value.dropLast()) { return n * 1024 * 1024 }
                    if value.hasSuffix("K") || value.hasSuffix("k"), let n = Int(value.dropLast()) { return n }
                }
            }
        }
        if let text = try? String(contentsOfFile: meminfo, encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Hugepagesize:") }),
           let n = Int(line.split(separator: " ")[1]) { return n }
        return 2048
    }

    /// Free pages of `pageSizeKB`.
    public static func freePages(pageSizeKB: Int) -> Int? {
        let path = "/sys/kernel/mm/hugepages/hugepages-\(pageSizeKB)kB/free_hugepages"
        return (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Pages currently used by files on a hugetlbfs mount (`statvfs`), or `nil` if it is not one.
    public static func pagesInUse(mount: String) -> Int? {
        var info = statvfs()
        guard statvfs(mount, &info) == 0, info.f_blocks > 0 else { return nil }
        return Int(info.f_blocks - info.f_bfree)
    }

    /// Checks that `memoryMiB` of guest memory fits in the free pages of `mount`.
    public static func check(memoryMiB: Int, mount: String) throws {
        let pageKB = pageSizeKB(mount: mount)
        try check(memoryMiB: memoryMiB, mount: mount, pageKB: pageKB, free: freePages(pageSizeKB: pageKB) ?? 0)
    }

    /// Checks that `memoryMiB` fits in `free` pages of `pageKB` (a remote host's counts).
    public static func check(memoryMiB: Int, mount: String, pageKB: Int, free: Int) throws {
        let needed = (memoryMiB * 1024 + pageKB - 1) / pageKB
        guard free >= needed else {
            throw ResourceError("mem hugepage=yes needs \(needed) free \(pageKB) kB hugepages for \(memoryMiB) MiB on \(mount), but \(free) are free; reserve them, e.g. echo \(needed) > /sys/kernel/mm/hugepages/hugepages-\(pageKB)kB/nr_hugepages")
        }
    }

    /// The lock every dts component holds while it changes the 2 MB reservation (OVS-DPDK uses the same).
    public static let reservationLock = "/run/dts-hugepages.lock"
    /// The kernel's count of reserved 2 MB pages.
    public static let reservationCounter = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"

    /// Adds `delta` 2 MB pages (negative to give pages back; never below 0) to the host's reservation
    /// on `session`, under ``reservationLock`` so that concurrent dts runs do not lose each other's
    /// changes. Returns the counts before and after; the kernel may reserve fewer than asked.
    public static func adjustReservation(by delta: Int, on session: any DUTSession) async throws -> (before: Int, after: Int) {
        let result = try await session.exec(argv: adjustmentArgv(by: delta), timeout: .seconds(120))
        guard result.succeeded, let counts = adjustmentCounts(result.output) else {
            throw ResourceError("changing the 2 MB hugepage reservation by \(delta) failed (status \(result.status)): \(result.output) \(result.errorOutput)")
        }
        return counts
    }

    /// The command that adds `delta` pages to the reservation under ``reservationLock`` and
    /// prints the counts before and after (read them with ``adjustmentCounts(_:)``).
    public static func adjustmentArgv(by delta: Int) -> [String] {
        let script = "n=$(cat \"$1\"); t=$((n + $2)); [ \"$t\" -ge 0 ] || t=0; echo \"$t\" > \"$1\"; echo \"$n $(cat \"$1\")\""
        return ["flock", reservationLock, "sh", "-c", script, "sh", reservationCounter, String(delta)]
    }

    /// The counts before and after that ``adjustmentArgv(by:)`` printed.
    public static func adjustmentCounts(_ output: String) -> (before: Int, after: Int)? {
        let numbers = output.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int($0) }
        return numbers.count == 2 ? (numbers[0], numbers[1]) : nil
    }
}

/// 2 MB pages added to the host's reservation on a DUT (``Hugepages/adjustReservation(by:on:)``)
/// for something that needs them for a while, such as a hugepage-backed guest; given back once,
/// by whichever comes first of its owner's tear-down and the run's cleanups.
///
/// ```swift
/// let hold = HugepageHold(session: dut.session)
/// await run.register("guest hugepages") { await hold.release() }
/// let (before, after) = try await hold.reserve(128)
/// ...
/// await hold.release()
/// ```
public actor HugepageHold {
    /// The DUT session the reservation is changed through.
    public let session: any DUTSession
    private var pages = 0

    /// A hold of nothing yet on `session`'s host.
    public init(session: any DUTSession) { self.session = session }

    /// Adds `count` pages; returns the reservation before and after (the kernel may reserve fewer
    /// than asked: the hold gives back what it got).
    public func reserve(_ count: Int) async throws -> (before: Int, after: Int) {
        let result = try await Hugepages.adjustReservation(by: count, on: session)
        pages += max(0, result.after - result.before)
        return result
    }

    /// The pages this hold added and has not given back.
    public var held: Int { pages }

    /// Gives back what was added. Idempotent.
    public func release() async {
        guard pages > 0 else { return }
        let count = pages
        pages = 0
        _ = try? await Hugepages.adjustReservation(by: -count, on: session)
    }
}
