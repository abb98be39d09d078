@testable import DTS
import DTSTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The lifecycle's decisions on a ``ScriptedVMHost``: no QEMU runs, QMP and the guest agent are
/// in-process peers on real unix sockets, and deadlines are half the real ones (QMP's 7.5 s,
/// plenty for a peer in the same process even on a loaded machine). The same paths run against
/// real QEMU in ``RealGuestTests``.
@Suite struct VMLifecycleStepTests {
    /// A VM with a guest agent and short guest deadlines (wait_seconds 2 and login_timeout 2: 1 s each).
    static let vm = """
        enable_kvm = enable=no;
        kernel = guest_image=dts-guest;
        login = user=root,password=tester;
        start = wait_seconds=2,login_timeout=2;
        """

    /// Starts `vm0` of `config` on a scripted host; returns the error, the host and the run (torn down).
    static func start(_ script: ScriptedVMHost.Script, config: String = vm, portRetries: Int = 2, timeoutFactor: Double = 0.5,
                      onStage: (@Sendable (VMStageEvent, ScriptedVMHost) -> Void)? = nil)
        async throws -> (error: VMStartError?, host: ScriptedVMHost, events: [VMStageEvent], pending: [String], timeline: [String]) {
        let fixture = try VMFixture(["vm0": config])
        let run = Run.isolated(prefix: "dts-test", hugepageMount: nil, timeoutFactor: timeoutFactor)
        let host = ScriptedVMHost(script, runDirectory: try run.directory.path)
        let params = try VirtConfig.load(vm: "vm0", suite: fixture.suite, confDirectory: fixture.confDirectory)
        let seen = LockedBox<[VMStageEvent]>([])
        var options = VMStartOptions { event in
            seen.update { $0.append(event) }
            onStage?(event, host)
        }
        options.portRetries = portRetries
        var failure: VMStartError?
        do {
            let instance = try await VMInstance.launch(vmName: "vm0", params: params, buildOptions: QEMUBuildOptions(accelerator: .tcg), run: run, host: host, options: options)
            Issue.record("a scripted VM came up (no SSH server exists for it)")
            await instance.stop()
        } catch {
            failure = error
        }
        let pending = await run.pending
        await run.tearDown()
        return (failure, host, seen.get(), pending, run.timeline.events.map(\.stage))
    }

    // MARK: Port clashes

    @Test func aPortClashRetriesWithFreshPorts() async throws {
        var script = ScriptedVMHost.Script()
        script.portClashes = 2
        script.agentAnswers = false
        let (error, host, _, pending, _) = try await Self.start(script)
        // Two clashes, then a third command line whose QEMU runs (and whose agent never answers).
        let launches = host.events.filter { $0.hasPrefix("launch") }
        #expect(launches == ["launch 1 (ssh 6000)", "launch 2 (ssh 6001)", "launch 3 (ssh 6002)"], "\(host.events)")
        #expect(Set(host.launchedCommands.compactMap(\.ports.ssh)).count == 3, "the retries reused a port")
        // Each failed attempt was stopped and its host resources freed before the next.
        #expect(host.events.filter { $0 == "finish" }.count == 3, "\(host.events)")
        let failure = try #require(error)
        #expect(failure.stage == .guestAgent)
        guard case .timedOut = failure.reason else { Issue.record("reason: \(failure.reason)"); return }
        #expect(pending.isEmpty, "failed attempts are still registered with the run: \(pending)")
    }

    @Test func portClashRetriesAreBounded() async throws {
        var script = ScriptedVMHost.Script()
        script.portClashes = 10
        let (error, host, _, _, _) = try await Self.start(script, portRetries: 2)
        #expect(host.events.filter { $0.hasPrefix("launch") }.count == 3, "\(host.events)")
        let failure = try #require(error)
        #expect(failure.stage == .spawn)
        guard case .qemuExited(let status) = failure.reason else { Issue.record("reason: \(failure.reason)"); return }
        #expect(status == 1)
        #expect(failure.qemuStderr.contains("Address already in use"), "\(failure.qemuStderr)")
        #expect(failure.isPortClash)
    }

    @Test func aFailureThatIsNoPortClashIsNotRetried() async throws {
        let (error, host, _, _, _) = try await Self.start(ScriptedVMHost.Script(agentAnswers: false))
        #expect(host.events.filter { $0.hasPrefix("launch") }.count == 1, "\(host.events)")
        #expect(error?.stage == .guestAgent)
        #expect(error?.isPortClash == false)
    }

    // MARK: Stage errors

    /// QEMU exiting during a stage ends that stage at once with QEMU's status, stderr and console.
    @Test(arguments: [VMStage.qmp, .guestAgent, .managementAddress])
    func qemuExitingDuringAStageFailsThatStage(stage: VMStage) async throws {
        var script = ScriptedVMHost.Script(managementAddress: false)
        script.stderr = "qemu-system-x86_64: scripted failure at \(stage.rawValue)"
        script.console = "scripted console, last line"
        // Deadlines of 10 s for the guest stages, 7.5 s for QMP: the exit, not the deadline, ends the stage.
        let config = Self.vm.replacingOccurrences(of: "wait_seconds=2", with: "wait_seconds=20")
        let (error, host, events, pending, timeline) = try await Self.start(script, config: config) { event, host in
            if event.stage == stage, event.outcome == .started { host.current?.exit(status: 3) }
        }
        let failure = try #require(error)
        #expect(failure.stage == stage)
        guard case .qemuExited(let status) = failure.reason else { Issue.record("reason: \(failure.reason)"); return }
        #expect(status == 3)
        #expect(failure.qemuStderr.contains("scripted failure at \(stage.rawValue)"))
        #expect(failure.consoleTail.contains("last line"))
        #expect("\(failure)".contains("VM vm0 failed at stage '\(stage.rawValue)'"), "\(failure)")
        // The reason says how QEMU ended and its last words; the console stays in the details.
        #expect("\(failure)".contains("QEMU exited (status 3); qemu stderr: qemu-system-x86_64: scripted failure"), "\(failure)")
        #expect(!"\(failure)".contains("last line") && failure.details.contains("last line"))
        #expect(events.contains { $0.stage == stage && $0.outcome == .failed })
        #expect(timeline.contains("\(stage.rawValue) (failed)"), "\(timeline)")
        // QEMU was gone: nothing was asked of it.
        #expect(!host.events.contains { ["guest-shutdown", "quit", "SIGTERM", "SIGKILL"].contains($0) }, "\(host.events)")
        #expect(host.events.last == "finish")
        #expect(pending.isEmpty)
    }

    /// A kernel panic on the console ends the stage at once, with the panic line as the reason;
    /// QEMU, still running (the guest hangs after a panic), is stopped.
    @Test func aGuestPanicFailsTheStageAtOnce() async throws {
        var script = ScriptedVMHost.Script(agentAnswers: false)
        script.console = "[    0.000000] Linux version 6.1.0\n"
        let config = Self.vm.replacingOccurrences(of: "wait_seconds=2", with: "wait_seconds=60")
        let began = LockedBox<ContinuousClock.Instant?>(nil)
        let (error, host, _, pending, _) = try await Self.start(script, config: config) { event, host in
            guard event.stage == .guestAgent, event.outcome == .started, let console = host.launchedCommands.last?.paths.consoleLog,
                  let file = FileHandle(forWritingAtPath: console) else { return }
            began.set(ContinuousClock.now)
            // Written in two pieces, as a serial console does.
            _ = try? file.seekToEnd()
            try? file.write(contentsOf: Data("[    2.204120] Kernel panic - not sync".utf8))
            try? file.write(contentsOf: Data("ing: Attempted to kill init! exitcode=0x00000100\n[    2.2] CPU: 0 PID: 1\n".utf8))
            try? file.close()
        }
        let failure = try #require(error)
        #expect(failure.stage == .guestAgent)
        guard case .guestPanicked(let line) = failure.reason else { Issue.record("reason: \(failure.reason)"); return }
        #expect(line == "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100")
        let at = try #require(began.get())
        #expect(ContinuousClock.now - at < .seconds(10), "the deadline (30 s), not the panic, ended the stage")
        #expect("\(failure)".split(separator: "\n").count <= 2 && "\(failure)".contains("the guest kernel panicked: Kernel panic"), "\(failure)")
        #expect(host.events.contains("quit") || host.events.contains("SIGTERM"), "\(host.events)")
        #expect(pending.isEmpty)
    }

    @Test func aStageThatRunsOutOfTimeIsTimedOut() async throws {
        let (error, _, events, _, _) = try await Self.start(ScriptedVMHost.Script(agentAnswers: false))
        let failure = try #require(error)
        #expect(failure.stage == .guestAgent)
        guard case .timedOut(let deadline) = failure.reason else { Issue.record("reason: \(failure.reason)"); return }
        #expect(deadline == .seconds(1), "wait_seconds=2 × 0.5")
        #expect("\(failure)".contains("not done within its deadline of 1 s"), "\(failure)")
        // Stages before it passed; pinning was skipped (nothing to pin).
        #expect(events.filter { $0.outcome == .passed }.map(\.stage) == [.spawn, .qmp])
        #expect(events.filter { $0.outcome == .skipped }.map(\.stage) == [.pinning])
    }

    @Test func aStageWhoseWorkFailsNamesTheReason() async throws {
        // cpupin lists two host CPUs, QEMU reports one vCPU.
        let (error, _, _, _, _) = try await Self.start(ScriptedVMHost.Script(vcpus: 1),
                                                       config: Self.vm + "\ncpu = model=host,number=2,cpupin=0 1;")
        let failure = try #require(error)
        #expect(failure.stage == .pinning)
        guard case .failed(let message) = failure.reason else { Issue.record("reason: \(failure.reason)"); return }
        #expect(message == "QEMU has 1 vCPUs, cpupin lists 2")
    }

    @Test func aLaunchThatFailsIsASpawnFailure() async throws {
        var script = ScriptedVMHost.Script()
        script.launchFailure = "posix_spawn: no such file"
        let (error, host, _, pending, _) = try await Self.start(script)
        let failure = try #require(error)
        #expect(failure.stage == .spawn)
        guard case .failed(let message) = failure.reason else { Issue.record("reason: \(failure.reason)"); return }
        #expect(message.contains("posix_spawn: no such file"))
        #expect(host.events == ["launch 1 (ssh 6000)", "finish"])
        #expect(pending.isEmpty)
    }

    @Test func aBadConfigFailsAtPrepareBeforeAnyLaunch() async throws {
        let config = Self.vm.replacingOccurrences(of: "guest_image=dts-guest", with: "guest_image=images/dts-guest")
        let (error, host, events, _, _) = try await Self.start(ScriptedVMHost.Script(), config: config)
        #expect(error?.stage == .prepare)
        #expect("\(error.map { "\($0)" } ?? "")".contains("guest_image takes an image name, not a path"), "\(String(describing: error))")
        #expect(host.events.isEmpty, "\(host.events)")
        #expect(events.isEmpty)
    }

    // MARK: Stopping

    /// Stopping a VM that is still running (here: one whose management address never came)
    /// escalates guest-agent power-off → QMP quit → SIGTERM → SIGKILL, each step only when QEMU
    /// is still there after the one before. (Deadlines × 0.25: what QEMU ignores is waited for.)
    @Test(arguments: [
        (ScriptedVMHost.StopRequest.agentShutdown, ["guest-shutdown"]),
        (.qmpQuit, ["guest-shutdown", "quit"]),
        (.sigterm, ["guest-shutdown", "quit", "SIGTERM"]),
    ])
    func stopEscalatesOnlyAsFarAsNeeded(exitsOn: ScriptedVMHost.StopRequest, expected: [String]) async throws {
        let (error, host, _, pending, _) = try await Self.start(ScriptedVMHost.Script(managementAddress: false, exitsOn: [exitsOn]),
                                                                timeoutFactor: 0.25)
        #expect(error?.stage == .managementAddress)
        #expect(Self.stopSteps(host) == expected + ["finish"], "\(host.events)")
        #expect(pending.isEmpty)
    }

    @Test func aQEMUThatIgnoresEverythingIsKilled() async throws {
        let (_, host, _, _, _) = try await Self.start(ScriptedVMHost.Script(managementAddress: false, exitsOn: []), timeoutFactor: 0.25)
        #expect(Self.stopSteps(host) == ["guest-shutdown", "quit", "SIGTERM", "SIGKILL", "finish"], "\(host.events)")
        #expect(host.current?.running == false)
    }

    @Test func withoutAGuestAgentStoppingStartsWithQuit() async throws {
        // No guest agent (the console on a socket instead): the start goes on to SSH, where nothing
        // listens on the forwarded port.
        let config = Self.vm + "\ncontrol = type=socket;"
        let (error, host, events, _, _) = try await Self.start(ScriptedVMHost.Script(exitsOn: [.qmpQuit]), config: config)
        #expect(error?.stage == .ssh)
        #expect(events.filter { $0.outcome == .skipped }.map(\.stage) == [.pinning, .guestAgent, .managementAddress])
        #expect(Self.stopSteps(host) == ["quit", "finish"], "\(host.events)")
    }

    /// The stop steps among the host's events.
    static func stopSteps(_ host: ScriptedVMHost) -> [String] {
        host.events.filter { ["guest-shutdown", "quit", "SIGTERM", "SIGKILL", "finish"].contains($0) }
    }
}
