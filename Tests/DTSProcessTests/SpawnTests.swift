import DTSProcess
import DTSTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The spawn primitive against real children (`/bin/sh`, `/bin/sleep`).
@Suite struct SpawnTests {
    /// Runs `script` under /bin/sh with `options` and returns its status.
    func sh(_ script: String, _ options: SpawnOptions) throws -> Int32? {
        WaitStatus.wait(for: try Spawn.start(["/bin/sh", "-c", script], options))
    }

    @Test func outputErrorAndStatus() throws {
        let scratch = try TempDir("dts-spawn")
        let log = scratch.path + "/log"
        #expect(try sh("echo out; echo err >&2; exit 7", .output(to: log)) == 7)
        #expect(try sh("echo again", .output(to: log)) == 0)
        #expect(scratch.read("log") == "out\nerr\nagain\n")
        // stdin is /dev/null by default.
        #expect(try sh("cat; echo end", .output(to: log)) == 0)
        #expect(scratch.read("log").hasSuffix("again\nend\n"))
        // A signal is reported as 128 + its number.
        #expect(try sh("kill -TERM $$", .output(to: log)) == 128 + SIGTERM)
    }

    @Test func descriptorsEnvironmentAndDirectory() throws {
        let scratch = try TempDir("dts-spawn")
        let fd = open(scratch.path + "/captured", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        try #require(fd >= 0)
        defer { close(fd) }
        let relative = "dts-spawn-test-\(UUID().uuidString).err"
        var options = SpawnOptions(environment: ["ONLY": "this"], directory: scratch.path,
                                   standardOutput: .descriptor(fd), standardError: .append(relative))
        #expect(try sh("echo \"$ONLY ${HOME:-unset}\"; pwd; echo oops >&2", options) == 0)
        #expect(scratch.read("captured") == "this unset\n\(scratch.path)\n")
        // Redirection paths are opened before the child changes directory.
        let cwd = FileManager.default.currentDirectoryPath
        #expect((try? String(contentsOfFile: cwd + "/" + relative, encoding: .utf8)) == "oops\n")
        try? FileManager.default.removeItem(atPath: cwd + "/" + relative)

        options.directory = scratch.path + "/missing"
        options.standardError = .inherit
        #expect(throws: SpawnError.self) { _ = try Spawn.start(["/bin/true"], options) }
        #expect(throws: SpawnError(program: "/nonexistent/program", code: ENOENT)) {
            _ = try Spawn.start(["/nonexistent/program"])
        }
        #expect(throws: SpawnError(program: "", code: EINVAL)) { _ = try Spawn.start([]) }
        // A name without a slash is looked up in PATH.
        #expect(WaitStatus.wait(for: try Spawn.start(["true"])) == 0)
    }

    /// The child gets default signal dispositions, an empty mask and no descriptor above 2, even one
    /// this process opened without close-on-exec.
    @Test func cleanSignalStateAndNoLeakedDescriptors() throws {
        let scratch = try TempDir("dts-spawn")
        let leaky = open(scratch.path + "/leaky", O_WRONLY | O_CREAT, 0o644)
        try #require(leaky >= 0)
        defer { close(leaky) }
        let ignored = signal(SIGUSR1, SIG_IGN)
        var blocked = sigset_t(), previous = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGUSR2)
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        defer {
            pthread_sigmask(SIG_SETMASK, &previous, nil)
            signal(SIGUSR1, ignored)
        }
        let status = try sh("grep -E '^Sig(Blk|Ign):' /proc/self/status; ls /proc/self/fd", .output(to: scratch.path + "/out"))
        #expect(status == 0)
        let lines = scratch.read("out").split(separator: "\n").map(String.init)
        #expect(lines.contains("SigBlk:\t0000000000000000"), "\(lines)")
        // No standard signal (1 to 31) is ignored; glibc keeps its two internal real-time signals ignored.
        let ignoredMask = lines.first { $0.hasPrefix("SigIgn:") }.flatMap { UInt64($0.dropFirst(8), radix: 16) }
        #expect(ignoredMask.map { $0 & 0x7fff_ffff } == 0, "\(lines)")
        // ls itself holds one descriptor for reading the directory.
        let descriptors = lines.filter { Int($0) != nil }
        #expect(descriptors.count <= 4 && !descriptors.contains(String(leaky)), "\(descriptors)")
    }

    @Test func processGroupsAndSessions() throws {
        let own = try Spawn.start(["/bin/sleep", "30"], SpawnOptions(processGroup: .newGroup))
        let session = try Spawn.start(["/bin/sleep", "30"], SpawnOptions(processGroup: .newSession))
        let shared = try Spawn.start(["/bin/sleep", "30"])
        defer {
            for pid in [own, session, shared] { kill(pid, SIGKILL); _ = WaitStatus.wait(for: pid) }
        }
        let me = try #require(ProcessTable.entry(getpid()))
        let ownEntry = try #require(ProcessTable.entry(own))
        #expect(ownEntry.group == own && ownEntry.session == me.session && ownEntry.parent == getpid())
        let sessionEntry = try #require(ProcessTable.entry(session))
        #expect(sessionEntry.group == session && sessionEntry.session == session)
        #expect(ProcessTable.members(ofSession: session) == [session])
        let sharedEntry = try #require(ProcessTable.entry(shared))
        #expect(sharedEntry.group == me.group)
        #expect(Set(ProcessTable.children(of: getpid())).isSuperset(of: [own, session, shared]))
        #expect(WaitStatus.reapIfExited(own) == nil)
        kill(own, SIGKILL)
        #expect(WaitStatus.wait(for: own) == 128 + SIGKILL)
        #expect(WaitStatus.wait(for: own) == nil)
    }

    /// With a parent death signal the program runs under setpriv, in the same process, and dies
    /// when the thread that spawned it ends.
    @Test func parentDeathSignal() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "setpriv (util-linux) is missing")
        let box = LockedBox<Result<pid_t, any Error>?>(nil)
        let release = DispatchSemaphore(value: 0)
        let thread = Thread {
            box.set(Result { try Spawn.start(["/bin/sleep", "30"], SpawnOptions(parentDeathSignal: SIGKILL)) })
            release.wait()
        }
        thread.start()
        var pid: pid_t?
        for _ in 0..<500 where pid == nil {
            if let result = box.get() { pid = try result.get() } else { usleep(10_000) }
        }
        let child = try #require(pid)
        defer { kill(child, SIGKILL); _ = WaitStatus.wait(for: child) }
        // setpriv execs sleep in the same process once it has set the signal.
        var command = ""
        for _ in 0..<500 where command != "sleep\n" {
            command = (try? String(contentsOfFile: "/proc/\(child)/comm", encoding: .utf8)) ?? ""
            if command != "sleep\n" { usleep(10_000) }
        }
        #expect(command == "sleep\n")
        #expect(WaitStatus.reapIfExited(child) == nil)
        release.signal()
        var status: Int32?
        for _ in 0..<500 where status == nil {
            status = WaitStatus.reapIfExited(child)
            if status == nil { usleep(10_000) }
        }
        #expect(status == 128 + SIGKILL)
    }

}

/// Signal names come from glibc's table.
@Suite struct SignalNameTests {
    @Test func namesAndNumbers() {
        #expect(SignalName.number(of: "KILL") == SIGKILL)
        #expect(SignalName.number(of: "SIGTERM") == SIGTERM)
        #expect(SignalName.number(of: "int") == SIGINT)
        #expect(SignalName.number(of: "BOGUS") == nil)
        #expect(SignalName.abbreviation(of: SIGUSR1) == "USR1")
        #expect(SignalName.describe(SIGINT) == "SIGINT")
        #expect(SignalName.describe(SIGTERM) == "SIGTERM")
        #expect(SignalName.describe(0) == "signal 0")
        // Every name maps back to its number (the SSH exit-signal path relies on it).
        for signal in Int32(1)...31 {
            if let name = SignalName.abbreviation(of: signal) { #expect(SignalName.number(of: name) == signal, "\(name)") }
        }
    }
}
