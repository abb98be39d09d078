@testable import DTS
import DTSTestSupport
import Foundation
import Testing

/// The warm-boot controls of the `dts` binary: `--boot`, `DTS_BOOT` and `dts image snapshots`.
@Suite struct WarmBootCLITests {
    func cmdline(_ extra: [String] = [], environment: [String: String] = [:]) async throws -> ProgramResult {
        try await DTSBinary.run(["vm", "cmdline", "--conf-dir", GoldenCase.directory, "--suite", "defaults", "--accel", "tcg"] + extra,
                                environment: environment)
    }

    /// Warm boot by default (the vmgenid device is there); `--boot cold` and `DTS_BOOT=cold` turn it
    /// off; `--boot` wins over `DTS_BOOT`; a bad value names the variable.
    @Test func bootFromTheCommandLineAndTheEnvironment() async throws {
        let byDefault = try await cmdline()
        #expect(byDefault.status == 0 && byDefault.stdout.contains("\nvmgenid,guid=auto\n"), "\(byDefault.stderr)")
        let cold = try await cmdline(["--boot", "cold"])
        #expect(cold.status == 0 && !cold.stdout.contains("vmgenid"), "\(cold.stderr)")
        let coldByEnvironment = try await cmdline(environment: ["DTS_BOOT": "cold"])
        #expect(coldByEnvironment.status == 0 && !coldByEnvironment.stdout.contains("vmgenid"), "\(coldByEnvironment.stderr)")
        let flagWins = try await cmdline(["--boot", "warm"], environment: ["DTS_BOOT": "cold"])
        #expect(flagWins.stdout.contains("vmgenid"), "\(flagWins.stderr)")
        let bad = try await cmdline(environment: ["DTS_BOOT": "lukewarm"])
        #expect(bad.status != 0 && bad.stderr.contains("DTS_BOOT=lukewarm: expected warm or cold"), "\(bad.stderr)")
        let badFlag = try await cmdline(["--boot", "lukewarm"])
        #expect(badFlag.status != 0 && badFlag.stderr.contains("lukewarm"), "\(badFlag.stderr)")
    }

    /// `dts image snapshots` lists a cache's snapshots with key, size, VM and machine; `--verbose`
    /// adds the key's lines; `--clear` removes them all, record and state file.
    @Test func imageSnapshotsListsAndClears() async throws {
        let dir = try TempDir("dts-snapcli")
        let cache = SnapshotCache(directory: dir.file("snapshots"), capacity: 1_000_000)
        try FileManager.default.createDirectory(atPath: cache.directory, withIntermediateDirectories: true)
        let key = String(repeating: "ab", count: 32)
        let partial = cache.partialPath(for: key)
        #expect(FileManager.default.createFile(atPath: partial, contents: Data(repeating: 1, count: 300_000)))
        _ = try await cache.commit(SnapshotRecord(key: key, vm: "vm7", summary: "x86_64 pc tcg, 1 vCPU max, 256 MiB, kernel k/vmlinux",
                                                  keyLines: ["qemu /usr/bin/qemu-system-x86_64", "-m 256"], created: Date(),
                                                  stateBytes: 0, coldBootSeconds: 8.4, saveSeconds: 0.6), partial: partial)
        let empty = try await DTSBinary.run(["image", "snapshots", "--directory", dir.file("none")])
        #expect(empty.status == 0 && empty.stdout.hasPrefix("0 snapshots in "), "\(empty.stdout)\(empty.stderr)")

        let list = try await DTSBinary.run(["image", "snapshots", "--directory", cache.directory, "--verbose"])
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.hasPrefix("1 snapshot in \(cache.directory), "), "\(list.stdout)")
        let row = try #require(list.stdout.split(separator: "\n").first { $0.hasPrefix("abababababab ") }, "\(list.stdout)")
        #expect(row.contains("vm7") && row.contains("8.4 s") && row.hasSuffix("x86_64 pc tcg, 1 vCPU max, 256 MiB, kernel k/vmlinux"), "\(row)")
        #expect(list.stdout.contains("\n\(key):\n  qemu /usr/bin/qemu-system-x86_64\n  -m 256"), "\(list.stdout)")

        let clear = try await DTSBinary.run(["image", "snapshots", "--directory", cache.directory, "--clear"])
        #expect(clear.status == 0 && clear.stdout.hasPrefix("removed 1 snapshot ("), "\(clear.stdout)\(clear.stderr)")
        #expect(cache.list().isEmpty)
        let left = try FileManager.default.contentsOfDirectory(atPath: cache.directory).filter { !$0.hasPrefix(".") }
        #expect(left.isEmpty, "\(left)")
    }
}
