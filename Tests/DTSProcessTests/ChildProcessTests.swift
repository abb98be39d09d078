import DTSProcess
import DTSTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The one child type against real children (`/bin/sh`, `/bin/sleep`).
@Suite struct ChildProcessTests {
    /// Waits up to 5 s until `pid` is gone or a zombie.
    func gone(_ pid: pid_t) async -> Bool {
        for _ in 0..<250 {
            if !ProcessTable.isAlive(pid) || ProcessTable.entry(pid)?.state == UInt8(ascii: "Z") { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// The pid a child script wrote to `path` (waiting up to 5 s for it).
    func pid(in path: String) async throws -> pid_t {
        for _ in 0..<250 {
            if let text = try? String(contentsOfFile: path, encoding: .utf8), text.hasSuffix("\n"),
               let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) { return pid }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw SpawnError(program: path, code: ENOENT)
    }

    @Test func statusAndWaits() async throws {
        let child = try ChildProcess.spawn(["/bin/sh", "-c", "exit 7"])
        #expect(child.argv == ["/bin/sh", "-c", "exit 7"])
        #expect(child.scope == .process)
        #expect(await child.waitForExit() == 7)
        #expect(child.exitStatus == 7 && !child.isRunning)
        // Waiting again, with or without a deadline, returns the status at once.
        #expect(await child.waitForExit(timeout: .seconds(5)) == 7)
        #expect(child.waitUntilExit() == 7)
        let killed = try ChildProcess.spawn(["/bin/sh", "-c", "kill -TERM $$"])
        #expect(await killed.waitForExit() == 128 + SIGTERM)
        #expect(throws: SpawnError(program: "/nonexistent/program", code: ENOENT)) {
            _ = try ChildProcess.spawn(["/nonexistent/program"])
        }
    }

    @Test func deadlineAndCancellationReturnAtOnce() async throws {
        let child = try ChildProcess.spawn(["/bin/sleep", "30"], SpawnOptions(processGroup: .newGroup))
        defer { child.signal(SIGKILL); child.waitUntilExit() }
        let start = ContinuousClock.now
        #expect(await child.waitForExit(timeout: .milliseconds(200)) == nil)
        #expect(ContinuousClock.now - start >= .milliseconds(200))
        #expect(child.isRunning)
        // A cancelled wait ends without waiting for its deadline, also when cancelled before it began.
        let waiting = Task { await child.waitForExit(timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(100))
        waiting.cancel()
        #expect(await waiting.value == nil)
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await child.waitForExit(timeout: .seconds(60))
        }
        #expect(await early.value == nil)
        #expect(ContinuousClock.now - start < .seconds(30))
        // A waiter with a long deadline wakes up when the child exits.
        let exit = Task { await child.waitForExit(timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(100))
        child.signal(SIGKILL)
        #expect(await exit.value == 128 + SIGKILL)
    }

    @Test func signalReachesTheGroupOrTheSession() async throws {
        let scratch = try TempDir("dts-child")
        let dir = scratch.path

        // A group leader and a descendant in its group.
        let group = try ChildProcess.spawn(["/bin/sh", "-c", "sleep 30 & echo $! > \"$0\"; wait", dir + "/g"],
                                           SpawnOptions(processGroup: .newGroup))
        #expect(group.scope == .group)
        let inGroup = try await pid(in: dir + "/g")
        group.signal(SIGKILL)
        #expect(await group.waitForExit() == 128 + SIGKILL)
        #expect(await gone(inGroup), "the group's sleep survived")

        // A session leader whose job runs in a process group of its own (`set -m`).
        let session = try ChildProcess.spawn(["/bin/bash", "-c", "set -m; sleep 30 & echo $! > \"$0\"; wait", dir + "/s"],
                                             SpawnOptions(processGroup: .newSession))
        #expect(session.scope == .session)
        let job = try await pid(in: dir + "/s")
        #expect(ProcessTable.entry(job).map { $0.group != session.pid && $0.session == session.pid } == true)
        session.signal(SIGKILL, to: .group)
        #expect(await session.waitForExit() == 128 + SIGKILL)
        #expect(ProcessTable.isAlive(job), "the job's own group was not signalled")
        // After the leader is reaped, its session's survivors are still reached.
        session.signal(SIGKILL)
        #expect(await gone(job), "the job survived a signal to the session")
    }

    @Test func terminateEscalatesAfterTheGrace() async throws {
        let polite = try ChildProcess.spawn(["/bin/sleep", "30"], SpawnOptions(processGroup: .newGroup))
        #expect(await polite.terminate(grace: .seconds(5)) == 128 + SIGTERM)
        let stubborn = try ChildProcess.spawn(["/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"],
                                              SpawnOptions(processGroup: .newGroup, standardOutput: .null))
        try await Task.sleep(for: .milliseconds(200))
        let start = ContinuousClock.now
        #expect(await stubborn.terminate(grace: .milliseconds(300)) == 128 + SIGKILL)
        #expect(ContinuousClock.now - start >= .milliseconds(300))
        #expect(await stubborn.terminate() == 128 + SIGKILL)
    }

    /// The thread that spawns the child is the one that reaps it, so a parent death signal does not
    /// fire when the caller's thread ends, only when the child is gone.
    @Test func parentDeathSignalOutlivesTheCallingThread() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "setpriv (util-linux) is missing")
        let box = LockedBox<ChildProcess?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            box.set(try? ChildProcess.spawn(["/bin/sleep", "30"], stdout: "/dev/null", stderr: "/dev/null", dieWithParent: true))
            done.signal()
        }
        thread.start()
        done.wait()
        let child = try #require(box.get())
        defer { child.signal(SIGKILL); child.waitUntilExit() }
        try await Task.sleep(for: .milliseconds(300))
        #expect(child.isRunning, "the child died with the thread that asked for it")
        #expect(ProcessTable.commandLine(of: child.pid) == ["/bin/sleep", "30"])
    }

}

/// The `/proc` reader.
@Suite struct ProcessTableTests {
    @Test func startTimeCommandLineAndLiveness() async throws {
        // A program named with spaces and parentheses: the stat fields are read after the last ')'.
        let scratch = try TempDir("dts-proc")
        let dir = scratch.path
        let program = dir + "/a) (b"
        try FileManager.default.copyItem(atPath: "/bin/sleep", toPath: program)
        let child = try ChildProcess.spawn([program, "30"], SpawnOptions(processGroup: .newGroup))
        defer { child.signal(SIGKILL); child.waitUntilExit() }
        // posix_spawn returns once the child released this process's memory, which is before the
        // kernel has set up the new program's arguments: a fresh child may show an empty cmdline.
        var argv: [String] = []
        for _ in 0..<250 where argv.isEmpty {
            argv = ProcessTable.commandLine(of: child.pid)
            if argv.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(argv == [program, "30"])
        #expect((try? String(contentsOfFile: "/proc/\(child.pid)/comm", encoding: .utf8)) == "a) (b\n")
        let entry = try #require(ProcessTable.entry(child.pid))
        #expect(entry.parent == getpid() && entry.group == child.pid && entry.state != UInt8(ascii: "Z"))
        let mine = try #require(ProcessTable.startTime(of: getpid()))
        #expect(entry.startTime >= mine)
        #expect(ProcessTable.isAlive(child.pid))
        child.signal(SIGKILL)
        child.waitUntilExit()
        #expect(!ProcessTable.isAlive(child.pid))
        #expect(ProcessTable.startTime(of: child.pid) == nil && ProcessTable.commandLine(of: child.pid).isEmpty)
    }
}
