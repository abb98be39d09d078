@testable import DTS
import DTSProcess
import DTSTestSupport
import Foundation
import Testing

/// dts on a host shared with other users: the run root must be the user's own.
@Suite struct RunRootTests {
    /// The unprivileged user of the SSH tests (scripts/setup.d/ssh.sh).
    static let user = "dtstest"

    static func uid(of user: String) -> uid_t? { getpwnam(user).map { $0.pointee.pw_uid } }

    /// A root another user made, or one others may write to, is refused with its path, owner and mode.
    @Test func runRootNotOwnedByTheUserWithMode0700IsRefused() throws {
        let scratch = try TempDir("dts-rootcheck")
        let other = try #require(Self.uid(of: Self.user), "user \(Self.user) is missing: run scripts/setup.d/ssh.sh")
        let foreign = scratch.file("foreign")
        try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        #expect(chown(foreign, other, other) == 0)
        let error = #expect(throws: ResourceError.self) { _ = try RunDirectory(root: foreign) }
        let text = error?.description ?? ""
        #expect(text.contains(foreign) && text.contains(Self.user) && text.contains("0700"), "\(text)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: foreign))?.isEmpty == true, "dts wrote into a foreign root")

        let open = scratch.file("open")
        try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: false)
        chmod(open, 0o777)
        let openError = #expect(throws: ResourceError.self) { _ = try RunDirectory(root: open) }
        #expect(openError?.description.contains("0777") == true, "\(openError?.description ?? "")")

        // A symbolic link to the user's own directory is not the directory.
        let own = scratch.file("own")
        try FileManager.default.createDirectory(atPath: own, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        try FileManager.default.createSymbolicLink(atPath: scratch.file("link"), withDestinationPath: own)
        #expect(throws: ResourceError.self) { _ = try RunDirectory(root: scratch.file("link")) }
        // The user's own 0700 directory, or a new one, is fine.
        #expect(throws: Never.self) { try RunDirectory(root: own).remove() }
        #expect(throws: Never.self) { try RunDirectory(root: scratch.file("new")).remove() }
    }

    /// Stale-run cleanup never looks into a root that is not the user's own.
    @Test func cleanStaleLeavesAForeignRootAlone() throws {
        let scratch = try TempDir("dts-rootstale")
        let root = scratch.file("root")
        let run = try RunDirectory(root: root)
        try "999999 1\n".write(toFile: run.path + "/owner", atomically: true, encoding: .utf8)
        chmod(root, 0o755)
        let report = RunDirectory.cleanStale(root: root)
        #expect(report.removedRuns.isEmpty)
        #expect(FileManager.default.fileExists(atPath: run.path))
    }

    /// As the unprivileged user, without XDG_RUNTIME_DIR: a planted `/tmp/dts-<uid>` that root
    /// made and left writable to all, and such a DTS_RUN_ROOT, stop `dts vm start` before it makes
    /// anything, with exit 3.
    @Test func plantedRunRootStopsAnUnprivilegedUser() async throws {
        let uid = try #require(Self.uid(of: Self.user), "user \(Self.user) is missing: run scripts/setup.d/ssh.sh")
        // A guest whose image does not exist: whatever goes wrong, no VM boots.
        let fixture = try VMFixture(["vm0": "enable_kvm = enable=no;\nkernel = guest_image=dts-no-such-image;\nlogin = user=root,password=x;"])
        let scratch = try TempDir("dts-planted")
        func dts(_ environment: [String]) async throws -> ProgramResult {
            try await runProgram("/usr/bin/env", ["-u", "XDG_RUNTIME_DIR", "-u", "DTS_RUN_ROOT", "HOME=" + scratch.path] + environment
                + ["/usr/bin/setpriv", "--reuid=\(Self.user)", "--regid=\(Self.user)", "--clear-groups", "--",
                   DTSBinary.path, "vm", "start", "--conf-dir", fixture.confDirectory, "--suite", fixture.suite, "--accel", "tcg"])
        }

        let planted = scratch.file("planted")
        try FileManager.default.createDirectory(atPath: planted, withIntermediateDirectories: false)
        chmod(planted, 0o777)
        let explicit = try await dts(["DTS_RUN_ROOT=" + planted])
        #expect(explicit.status == DTSExitCode.infrastructureError.rawValue, "\(explicit.output)")
        #expect(explicit.stderr.contains(planted) && explicit.stderr.contains("owner root") && explicit.stderr.contains("0777"), "\(explicit.stderr)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: planted))?.isEmpty == true)

        // The default root of a user without XDG_RUNTIME_DIR. Planted only if no one uses it now.
        let defaultRoot = "/tmp/dts-\(uid)"
        guard mkdir(defaultRoot, 0o777) == 0, chmod(defaultRoot, 0o777) == 0 else {
            Issue.record("\(defaultRoot) exists already; cannot plant it")
            return
        }
        defer { try? FileManager.default.removeItem(atPath: defaultRoot) }
        let implicit = try await dts([])
        #expect(implicit.status == DTSExitCode.infrastructureError.rawValue, "\(implicit.output)")
        #expect(implicit.stderr.contains(defaultRoot) && implicit.stderr.contains("owner root"), "\(implicit.stderr)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: defaultRoot))?.isEmpty == true)
    }

    /// A planted "dead run" whose pid file names a live process of the user: even when that
    /// process's command line names the run's directory, it is not the run's (the run never
    /// recorded it), and it survives the cleanup.
    @Test func plantedDeadRunDoesNotKillAnUnrelatedProcess() async throws {
        let scratch = try TempDir("dts-plantedrun")
        let root = scratch.file("root")
        let planted = try RunDirectory(root: root)
        try "999999 1\n".write(toFile: planted.path + "/owner", atomically: true, encoding: .utf8)
        let vmDir = try planted.vmDirectory("vm0")
        // The victim: any process of the user whose argv happens to hold the path (an editor, a tail -f).
        let victim = try ChildProcess.spawn(["/bin/sh", "-c", "while :; do sleep 1; done", "sh", vmDir + "/console.log"],
                                            stdout: "/dev/null", stderr: "/dev/null")
        defer { victim.signal(SIGKILL) }
        try "\(victim.pid)\n".write(toFile: vmDir + "/qemu.pid", atomically: true, encoding: .utf8)
        let report = RunDirectory.cleanStale(root: root)
        #expect(report.killedProcesses.isEmpty)
        #expect(await victim.waitForExit(timeout: .milliseconds(300)) == nil, "the planted run's pid file got a process killed")
        // The dead run's directory itself goes.
        #expect(report.removedRuns == [planted.path])
    }

    /// Port reservations hold nothing on disk: after reserving, releasing and removing the run,
    /// the root is empty (lock files used to pile up: 1,099 after a few hours).
    @Test func portReservationsLeaveNoFiles() throws {
        let scratch = try TempDir("dts-portfiles")
        let root = scratch.file("root")
        let run = try RunDirectory(root: root)
        var ranges = HostResourceAllocator.Ranges()
        ranges.ssh = 46100...46109
        ranges.serial = 46110...46119
        let allocator = try HostResourceAllocator(run: run, ranges: ranges)
        let ssh = try allocator.hostForwardPort(vm: "vm0", guestPort: 22)
        _ = try allocator.serialPort(vm: "vm0")
        // Still exclusive between runs.
        let other = try HostResourceAllocator(run: try RunDirectory(root: root), ranges: ranges)
        for _ in 0..<9 { #expect(try other.hostForwardPort(vm: "vm1", guestPort: 22) != ssh) }
        #expect(throws: ResourceError.self) { try other.hostForwardPort(vm: "vm1", guestPort: 22) }
        allocator.release(vm: "vm0")
        #expect(try other.hostForwardPort(vm: "vm1", guestPort: 22) == ssh)
        other.release(vm: "vm1")
        other.run.remove()
        run.remove()
        #expect((try? FileManager.default.contentsOfDirectory(atPath: root)) == [], "left in the run root")
    }

    /// The lock files older dts versions left are removed, except one a process still holds.
    @Test func oldPortLockFilesAreRemoved() throws {
        let scratch = try TempDir("dts-oldlocks")
        let root = scratch.file("root")
        try RunDirectory.prepareRoot(root)
        try FileManager.default.createDirectory(atPath: root + "/locks", withIntermediateDirectories: false)
        for port in [6001, 6002] { _ = FileManager.default.createFile(atPath: root + "/locks/port-\(port).lock", contents: nil) }
        let held = open(root + "/locks/port-6002.lock", O_RDWR)
        defer { close(held) }
        #expect(flock(held, LOCK_EX | LOCK_NB) == 0)
        RunDirectory.cleanStale(root: root)
        #expect((try? FileManager.default.contentsOfDirectory(atPath: root + "/locks")) == ["port-6002.lock"])
        flock(held, LOCK_UN)
        RunDirectory.cleanStale(root: root)
        #expect(!FileManager.default.fileExists(atPath: root + "/locks"))
    }
}
