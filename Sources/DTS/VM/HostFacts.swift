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

    /// Whether `path` names an executable regular file here; a name without `/` is looked up in
    /// `PATH`, as `execvp` would.
    public static func isExecutableFile(_ path: String, searchPath: String? = ProcessInfo.processInfo.environment["PATH"]) -> Bool {
        func executable(_ candidate: String) -> Bool {
            var info = stat()
            return stat(candidate, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && access(candidate, X_OK) == 0
        }
        guard !path.isEmpty else { return false }
        if path.unicodeScalars.contains("/") { return executable(path) }
        let directories = (searchPath ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":", omittingEmptySubsequences: false)
        return directories.contains { executable(($0.isEmpty ? "." : String($0)) + "/" + path) }
    }

    /// Online host CPUs (`/sys/devices/system/cpu/online`).
    public static func onlineCPUs() -> [Int] {
        let text = (try? String(contentsOfFile: "/sys/devices/system/cpu/online", encoding: .utf8)) ?? "0"
        return ValueKind.parseCPUList(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? [0]
    }
}
