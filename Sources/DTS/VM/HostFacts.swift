import Foundation

/// Facts read from the host dts runs on.
public enum HostFacts {
    /// The first hugetlbfs mount point in `/proc/mounts`, if any.
    public static func hugetlbfsMount(mounts path: String = "/proc/mounts") -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count >= 3, fields[2] == "hugetlbfs" { return String(fields[1]) }
        }
        return nil
    }

    /// Where guest images are stored: `DTS_IMAGE_DIR`, else `~/.cache/dts/images`.
    public static var imageDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["DTS_IMAGE_DIR"], !dir.isEmpty { return dir }
        return NSHomeDirectory() + "/.cache/dts/images"
    }

    /// `uname -m`.
    public static var architecture: String {
        var info = utsname()
        uname(&info)
        return withUnsafeBytes(of: &info.machine) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Online host CPUs (`/sys/devices/system/cpu/online`).
    public static func onlineCPUs() -> [Int] {
        let text = (try? String(contentsOfFile: "/sys/devices/system/cpu/online", encoding: .utf8)) ?? "0"
        return ValueKind.parseCPUList(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? [0]
    }
}
