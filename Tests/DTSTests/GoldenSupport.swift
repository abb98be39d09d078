import DTS
import DTSTestSupport
import Foundation

/// A golden command-line case: `Golden/cmdline/<name>.cfg` in, `<name>.args` or `<name>.err` out.
///
/// The `.cfg` is the suite config (suite name = case name) read together with the golden
/// `virt_global.cfg`. Comment lines starting with `#@` steer the test:
/// `#@ accel tcg|kvm`, `#@ device <entry>` (as `setVMDevice`), `#@ vm <name>` (default vm0),
/// `#@ hugepages none` (no hugetlbfs mount on the fake host).
struct GoldenCase: CustomStringConvertible, Sendable {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Golden/cmdline").path
    /// Set to regenerate `.args`/`.err` files from the current builder.
    static let updating = ProcessInfo.processInfo.environment["DTS_UPDATE_GOLDEN"] == "1"

    var name: String
    var description: String { name }

    static var all: [GoldenCase] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return files.filter { $0.hasSuffix(".cfg") && $0 != "virt_global.cfg" }.sorted()
            .map { GoldenCase(name: String($0.dropLast(4))) }
    }

    var configPath: String { "\(Self.directory)/\(name).cfg" }
    var argsPath: String { "\(Self.directory)/\(name).args" }
    var errPath: String { "\(Self.directory)/\(name).err" }
    var expectsError: Bool { name.hasPrefix("err_") }

    var directives: [(String, String)] {
        let text = (try? String(contentsOfFile: configPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("#@ ") else { return nil }
            let words = line.dropFirst(3).split(separator: " ", maxSplits: 1)
            return (String(words[0]), words.count > 1 ? String(words[1]) : "")
        }
    }

    /// Builds the case in a scratch conf dir. Returns the command line or the error text, with
    /// the scratch dir removed from paths so the output is stable.
    func build(runtimeRoot: String = "/run/dts/golden",
               allocator makeAllocator: ((Bool) -> any VMResourceAllocator)? = nil) throws -> Result<QEMUCommandLine, ConfigErrors> {
        let scratchDir = try TempDir("dts-golden")
        let scratch = scratchDir.path
        try FileManager.default.copyItem(atPath: "\(Self.directory)/virt_global.cfg", toPath: "\(scratch)/virt_global.cfg")
        try FileManager.default.copyItem(atPath: configPath, toPath: "\(scratch)/\(name).cfg")

        var accelerator: Accelerator?
        var vm = "vm0"
        var hugepages = true
        var devices: [String] = []
        for (key, value) in directives {
            switch key {
            case "accel": accelerator = Accelerator(rawValue: value)
            case "device": devices.append(value)
            case "vm": vm = value
            case "hugepages": hugepages = value != "none"
            default: break
            }
        }
        let allocator = makeAllocator?(hugepages) ?? StaticAllocator(
            runtimeRoot: runtimeRoot, hugepageMount: hugepages ? "/dev/hugepages" : nil,
            imageDirectory: "/var/cache/dts/images", hostArchitecture: "x86_64")
        do throws(ConfigErrors) {
            let kvm = try QEMUKvm(dut: Dut(settings: RunSettings(confDirectory: scratch, accelerator: accelerator)), vmName: vm, suite: name)
            for (index, device) in devices.enumerated() { try kvm.setVMDevice(device, source: "device #\(index + 1)") }
            return .success(try kvm.commandLine(allocator: allocator))
        } catch {
            let cleaned = ConfigErrors(error.errors.map { e in
                var e = e
                e.location.file = e.location.file.replacingOccurrences(of: scratch + "/", with: "")
                return e
            })
            return .failure(cleaned)
        }
    }
}

extension QEMUCommandLine {
    /// One argument per line: the prefix (if any), then argv.
    var goldenText: String { command.joined(separator: "\n") + "\n" }
}
