import DTSProcess
import Foundation
import Synchronization

/// Something that happened to a VM while it was up, without dts asking: QEMU exited, or the
/// guest kernel panicked. The VM's watcher records it with the run (``Run/vmFaults(settling:)``)
/// at once, and the runner gives it as the reason of the first case it broke (and in `dts.log`),
/// instead of that case's symptom (a lost SSH channel, a closed QMP socket).
public struct VMFault: DetailedError, Sendable, Equatable, CustomStringConvertible {
    /// What happened.
    public enum Kind: Sendable, Equatable {
        /// QEMU exited with `status` (128 + N for signal N; unknown for a daemon).
        case qemuExited(status: Int32, daemon: Bool)
        /// The guest printed this kernel panic line on its console.
        case guestPanicked(line: String)
    }

    /// The VM.
    public var vm: String
    /// What happened.
    public var kind: Kind
    /// When dts saw it.
    public var at: Date
    /// The end of QEMU's standard error (its last lines go into the description).
    public var qemuStderr: String
    /// The end of the console.
    public var consoleTail: String
    /// Where the VM's logs (console, QEMU's stderr) are kept.
    public var logDirectory: String

    /// Creates a fault.
    public init(vm: String, kind: Kind, at: Date, qemuStderr: String, consoleTail: String, logDirectory: String) {
        self.vm = vm
        self.kind = kind
        self.at = at
        self.qemuStderr = qemuStderr
        self.consoleTail = consoleTail
        self.logDirectory = logDirectory
    }

    /// What happened, in a few words (`QEMU exited (signal 9 SIGKILL)`).
    public var summary: String {
        switch kind {
        case .qemuExited(let status, let daemon): return "QEMU exited " + (daemon ? "(a daemon: its status is unknown)" : "(\(QEMUExit.describe(status)))")
        case .guestPanicked(let line): return "the guest kernel panicked: \(line)"
        }
    }

    /// One or two lines: what happened, the end of QEMU's stderr, where the logs are.
    public var description: String {
        var text = "VM \(vm): \(summary) while the VM was up"
        if case .qemuExited = kind { text += QEMUExit.lastWords(qemuStderr) }
        return text + " (logs: \(logDirectory))"
    }

    /// ``description`` with the end of QEMU's stderr and of the console.
    public var details: String { QEMUExit.withTails(description, qemuStderr: qemuStderr, consoleTail: consoleTail) }
}

/// What ends a VM's stage, or its life while it is up, besides dts itself.
enum VMInterruption: Sendable {
    /// QEMU exited with this status (128 + N for signal N).
    case exited(Int32)
    /// The guest printed this kernel panic line.
    case panicked(String)
}

/// QEMU's exit, in words.
public enum QEMUExit {
    /// `signal 9 SIGKILL` for 128 + 9, `status 1` otherwise (the convention of ``ChildProcess/exitStatus``).
    public static func describe(_ status: Int32) -> String {
        status > 128 && status < 128 + 65 ? "signal \(status - 128) \(SignalName.describe(status - 128))" : "status \(status)"
    }

    /// `; qemu stderr: <its last two lines>`, or nothing when QEMU said nothing.
    static func lastWords(_ qemuStderr: String) -> String {
        let last = lastLines(qemuStderr, 2)
        return last.isEmpty ? "" : "; qemu stderr: " + last
    }

    /// `text`, then the end of QEMU's stderr and of the console, each under a heading.
    static func withTails(_ text: String, qemuStderr: String, consoleTail: String) -> String {
        var text = text
        if !qemuStderr.isEmpty { text += "\n--- qemu stderr (end) ---\n" + qemuStderr }
        if !consoleTail.isEmpty { text += "\n--- console (end) ---\n" + consoleTail }
        return text
    }

    /// The last `count` non-empty lines of `text`, joined with ` | `, each cut to 200 characters.
    static func lastLines(_ text: String, _ count: Int) -> String {
        text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
            .suffix(count).map { $0.count > 200 ? String($0.prefix(200)) + "…" : $0 }.joined(separator: " | ")
    }
}

/// Finds the guest kernel's panic line in its console log as the log grows.
///
/// Linux prints `Kernel panic - not syncing: <why>` and, at the end of the trace,
/// `---[ end Kernel panic - not syncing: <why> ]---`; with the default `panic=0` it then hangs
/// forever, so without this watch a start waits out its deadline (120 s) for a guest that died
/// at 2 s. QEMU's `pvpanic` device would also tell, but only once the guest loaded its driver
/// (a module in Debian's kernel), which a guest panicking in its initramfs never does.
final class ConsoleWatch: Sendable {
    /// What marks a panic on the console.
    static let marker = "Kernel panic - not syncing"

    let path: String
    let host: any VMHost
    private let offset = Mutex<UInt64>(0)
    private let found = Mutex<String?>(nil)

    init(path: String, host: any VMHost) {
        self.path = path
        self.host = host
    }

    /// The panic line, if the console shows one by now (reads only what was added since the last look).
    func check() async -> String? {
        if let line = found.withLock({ $0 }) { return line }
        let from = offset.withLock { $0 }
        let (line, next) = await host.search(path, for: Self.marker, from: from)
        offset.withLock { $0 = max($0, next) }
        guard let line else { return nil }
        let clean = Self.clean(line)
        found.withLock { if $0 == nil { $0 = clean } }
        return clean
    }

    /// Looks every `interval` until the console shows a panic; `nil` when the task is cancelled.
    func waitForPanic(every interval: Duration) async -> String? {
        while !Task.isCancelled {
            if let line = await check() { return line }
            try? await Task.sleep(for: interval)
        }
        return nil
    }

    /// The line without its kernel timestamp and control characters, cut to 200 characters.
    static func clean(_ line: String) -> String {
        var text = line.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7f }.map(String.init).joined()
        text = text.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            text = text[text.index(after: close)...].trimmingCharacters(in: .whitespaces)
        }
        return text.count > 200 ? String(text.prefix(200)) + "…" : text
    }
}

extension VMHost {
    /// A file on this machine: see ``ConsoleSearch/local(_:for:from:)``.
    func search(_ path: String, for text: String, from offset: UInt64) async -> (line: String?, next: UInt64) {
        ConsoleSearch.local(path, for: text, from: offset)
    }
}

/// Searching a growing file on this machine.
enum ConsoleSearch {
    /// The first line holding `text` in file `path`, searching from byte `offset`; returns it and
    /// where the next search starts (the start of the last, unfinished line, so that a line written
    /// in pieces is found whole). Reads at most 1 MiB per call.
    static func local(_ path: String, for text: String, from offset: UInt64) -> (line: String?, next: UInt64) {
        guard let handle = FileHandle(forReadingAtPath: path) else { return (nil, offset) }
        defer { try? handle.close() }
        guard (try? handle.seek(toOffset: offset)) != nil, let data = try? handle.read(upToCount: 1 << 20), !data.isEmpty else {
            return (nil, offset)
        }
        let bytes = [UInt8](data)
        let needle = Array(text.utf8)
        var lineStart = 0
        for index in bytes.indices where bytes[index] == UInt8(ascii: "\n") {
            if let line = match(bytes[lineStart..<index], needle) { return (line, offset + UInt64(index + 1)) }
            lineStart = index + 1
        }
        // The unfinished last line: a match there is reported now (the kernel may never end it).
        if let line = match(bytes[lineStart...], needle) { return (line, offset + UInt64(bytes.count)) }
        // A line longer than a whole read: go on from near its end, where a match may still start.
        if lineStart == 0, bytes.count == 1 << 20 { return (nil, offset + UInt64(bytes.count - needle.count)) }
        return (nil, offset + UInt64(lineStart))
    }

    private static func match(_ line: ArraySlice<UInt8>, _ needle: [UInt8]) -> String? {
        guard line.count >= needle.count else { return nil }
        var start = line.startIndex
        while start + needle.count <= line.endIndex {
            if line[start..<(start + needle.count)].elementsEqual(needle) { return String(decoding: line, as: UTF8.self) }
            start += 1
        }
        return nil
    }
}

/// QEMU's exit or a guest panic, whichever comes first; `nil` when the calling task is cancelled.
func firstInterruption(qemu: any QEMUProcess, console: ConsoleWatch, every interval: Duration) async -> VMInterruption? {
    await withTaskGroup(of: VMInterruption?.self) { group in
        group.addTask { await qemu.waitForExit().map { .exited($0) } }
        group.addTask { await console.waitForPanic(every: interval).map { .panicked($0) } }
        defer { group.cancelAll() }
        for await interruption in group {
            if let interruption { return interruption }
        }
        return nil
    }
}
