@testable import DTS
import DTSProcess
import DTSTestSupport
import Foundation
import Testing

/// A `dts vm start` run by the test as a user would: the built binary, a private `DTS_RUN_ROOT`,
/// standard output and error in one file.
final class VMStartProcess {
    let process: ChildProcess
    let root: String
    let log: String

    init(fixture: VMFixture, directory: String, arguments: [String] = []) throws {
        root = directory + "/run-root"
        log = directory + "/output"
        process = try ChildProcess.spawn(
            [DTSBinary.path, "vm", "start", "--conf-dir", fixture.confDirectory, "--suite", fixture.suite, "--accel", "tcg"] + arguments,
            SpawnOptions(environment: ProcessInfo.processInfo.environment.merging(["DTS_RUN_ROOT": root]) { $1 },
                         standardOutput: .append(log), standardError: .sameAs(1)))
    }

    /// What dts printed so far.
    var printed: String { String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self) }

    /// Waits for the "VM is up" banner; returns the SSH port it names.
    func waitForBanner(within limit: Duration = .seconds(180)) async throws -> Int {
        let deadline = ContinuousClock.now + limit
        while !printed.contains("Press Ctrl-C"), process.isRunning, ContinuousClock.now < deadline, !Task.isCancelled {
            try await Task.sleep(for: .milliseconds(200))
        }
        let text = printed
        try #require(text.contains("Press Ctrl-C"), "dts vm start never reported the VM up:\n\(text)")
        let sshLine = try #require(text.split(separator: "\n").first { $0.contains("ssh -p ") }, "no ssh line in:\n\(text)")
        let words = sshLine.split(separator: " ")
        let index = try #require(words.firstIndex(of: "-p"))
        return try #require(words.indices.contains(index + 1) ? Int(words[index + 1]) : nil, "no port in '\(sshLine)'")
    }

    /// The pids in the pid files under the run root (QEMU's, one per VM).
    var pidFilePIDs: [Int32] {
        let runs = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasPrefix("run-") }
        return runs.flatMap { run in
            (FileManager.default.enumerator(atPath: root + "/" + run)?.allObjects as? [String] ?? [])
                .filter { $0.hasSuffix(".pid") }.map { root + "/" + run + "/" + $0 }
        }.compactMap { file in
            (try? String(contentsOfFile: file, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    /// Run directories left under the private run root.
    var runDirectories: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasPrefix("run-") }
    }

    /// Waits for dts to exit; returns its exit status, or `nil` if it still runs.
    func waitForExit(within limit: Duration) async throws -> Int32? {
        await process.waitForExit(timeout: limit)
    }

    /// Kills dts if it still runs and cleans up what it left (its QEMU dies with it).
    func finish() {
        process.signal(SIGKILL)
        process.waitUntilExit()
        RunDirectory.cleanStale(root: root)
    }
}

extension RealGuestTests {
    /// `dts vm start`: boots a real TCG guest, keeps it until a signal, then stops it cleanly.
    @Suite struct VMStartCommandTests {
        @Test(arguments: [SIGINT, SIGTERM])
        func stopsTheVMOnSignalAndExitsZero(signal: Int32) async throws {
            try VMFixture.requireGuestImage()
            let fixture = try VMFixture(["vm0": VMFixture.guest])
            let out = try TempDir("dts-vmstart")
            let dts = try VMStartProcess(fixture: fixture, directory: out.path)
            defer { dts.finish() }

            // The printed SSH port reaches the guest's sshd.
            let port = try await dts.waitForBanner()
            #expect(try readBanner(port: port).hasPrefix("SSH-2.0-"))
            // This run's QEMU: the one process of the run root, the pid its pid file names.
            let qemu = qemuProcesses(matching: dts.root)
            #expect(qemu.count == 1)
            #expect(dts.pidFilePIDs == qemu, "pid files say \(dts.pidFilePIDs), processes \(qemu)")

            kill(dts.process.pid, signal)
            let status = try await dts.waitForExit(within: .seconds(60))
            #expect(status == 0, "dts vm start did not exit 0 after signal \(signal):\n\(dts.printed)")
            #expect(dts.printed.contains("stopping vm0") && dts.printed.contains("vm0 stopped"), "\(dts.printed)")
            for pid in qemu { #expect(!ProcessTable.isAlive(pid), "QEMU \(pid) survived dts vm start") }
            #expect(qemuProcesses(matching: dts.root).isEmpty)
            #expect(dts.runDirectories.isEmpty, "run directory left behind: \(dts.runDirectories)")
        }

        @Test func qemuDyingWhileUpEndsInStatus3WithAMessage() async throws {
            try VMFixture.requireGuestImage()
            let fixture = try VMFixture(["vm0": VMFixture.guest])
            let out = try TempDir("dts-vmstart-dies")
            let dts = try VMStartProcess(fixture: fixture, directory: out.path)
            defer { dts.finish() }

            _ = try await dts.waitForBanner()
            let qemu = try #require(qemuProcesses(matching: dts.root).first)
            kill(qemu, SIGKILL)
            let status = try await dts.waitForExit(within: .seconds(60))
            #expect(status == 3, "\(dts.printed)")
            #expect(dts.printed.contains("dts: VM vm0: QEMU (pid \(qemu)) exited (signal 9 SIGKILL) while the VM was up"), "\(dts.printed)")
            #expect(dts.runDirectories.isEmpty, "run directory left behind: \(dts.runDirectories)")
        }
    }
}
