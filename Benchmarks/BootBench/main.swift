// Boot benchmark: the same guest booted by a raw QEMU command with a tight SSH poll, by
// QEMUKvm.start() booting cold, and by QEMUKvm.start() restoring a snapshot (warm boot); then two
// cold VMs at once against one. Run it with scripts/bench-boot.sh (or `make bench-boot`).
import DTS
import DTSProcess
import DTSSSH
import Foundation

@main
struct BootBench {
    static func main() async throws {
        let rounds = Int(ProcessInfo.processInfo.environment["BENCH_ROUNDS"] ?? "") ?? 3
        let conf = try makeConf()
        defer { try? FileManager.default.removeItem(atPath: conf) }
        // A private snapshot cache: the first warm start takes the snapshot the others restore.
        let snapshots = SnapshotCache(directory: conf + "/snapshots")
        let (first, firstEvents) = try await dtsBoot(conf: conf, vm: "vm0", boot: .warm, snapshots: snapshots)
        let saved = firstEvents.first { $0.stage == .snapshot && $0.outcome == .passed }?.duration ?? 0
        print(String(format: "first warm start (cold boot + snapshot %.2f s): %.2f s", saved, first))

        var raw: [Double] = [], cold: [Double] = [], warm: [Double] = []
        var stages: [BootMode: [String: [Double]]] = [:]
        for round in 1...rounds {
            raw.append(try await rawBoot(conf: conf))
            print(String(format: "round %d raw qemu + ssh poll:      %.2f s", round, raw.last!))
            for mode in [BootMode.cold, .warm] {
                let (seconds, events) = try await dtsBoot(conf: conf, vm: "vm0", boot: mode, snapshots: snapshots)
                if mode == .warm, !events.contains(where: { $0.stage == .restore && $0.outcome == .passed }) {
                    print("round \(round): the warm start did not restore: \(events.map { "\($0.stage.rawValue) \($0.outcome.rawValue)" })")
                }
                for e in events where e.outcome == .passed { stages[mode, default: [:]][e.stage.rawValue, default: []].append(e.duration ?? 0) }
                if mode == .cold { cold.append(seconds) } else { warm.append(seconds) }
                print(String(format: "round %d QEMUKvm.start() %@: %.2f s", round, mode == .cold ? "cold" : "warm", seconds))
            }
        }
        let one = median(cold)
        let twoStart = ContinuousClock.now
        async let a = dtsBoot(conf: conf, vm: "vm0", boot: .cold, snapshots: snapshots)
        async let b = dtsBoot(conf: conf, vm: "vm1", boot: .cold, snapshots: snapshots)
        _ = try await (a, b)
        let two = (ContinuousClock.now - twoStart).seconds
        print(String(format: "two cold VMs concurrently: %.2f s", two))

        for mode in [BootMode.cold, .warm] {
            print("\nper-stage median, \(mode.rawValue) (s):")
            for stage in VMStage.allCases {
                if let values = stages[mode]?[stage.rawValue] {
                    print("  " + stage.rawValue.padding(toLength: 20, withPad: " ", startingAt: 0) + String(format: "%.3f", median(values)))
                }
            }
        }
        let rawMedian = median(raw), warmMedian = median(warm)
        // Each round boots raw, cold and warm back to back: the median of the per-round ratios is
        // less exposed to the machine's drift (other load, page cache) than a ratio of medians.
        let paired = median(zip(cold, raw).map { $0 / $1 })
        let warmRatio = median(zip(warm, cold).map { $0 / $1 })
        print(String(format: "\nraw %.2f s, cold %.2f s, warm %.2f s (medians); cold/raw %.3f (goal <= 1.05); two/one %.3f (goal <= 1.3); warm/cold %.3f (goal <= 0.15)",
                     rawMedian, one, warmMedian, paired, two / one, warmRatio))
        print(String(format: "boot_ratio=%.3f concurrent_ratio=%.3f warm_ratio=%.3f overhead_ms=%.0f", paired, two / one, warmRatio, (one - rawMedian) * 1000))
    }

    static func makeConf() throws -> String {
        let dir = NSTemporaryDirectory() + "dts-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "[KVM]\ncontrol = type=qga;\nvnc = disable=True;\n".write(toFile: dir + "/virt_global.cfg", atomically: true, encoding: .utf8)
        let vm = "enable_kvm = enable=no;\ncpu = model=host,number=1;\nmem = size=256;\nkernel = guest_image=dts-guest;\nlogin = user=root,password=tester;\n"
        try "[vm0]\n\(vm)[vm1]\n\(vm)".write(toFile: dir + "/bench.cfg", atomically: true, encoding: .utf8)
        return dir
    }

    /// QEMUKvm.start() until the VM DUT is returned.
    static func dtsBoot(conf: String, vm: String, boot: BootMode, snapshots: SnapshotCache) async throws -> (Double, [VMStageEvent]) {
        let run = Run.isolated(prefix: "dts-bench")
        do {
            let settings = RunSettings(confDirectory: conf, accelerator: .tcg, boot: boot, snapshots: snapshots)
            let kvm = try QEMUKvm(dut: Dut(settings: settings, run: run), vmName: vm, suite: "bench")
            let begin = ContinuousClock.now
            _ = try await kvm.start()
            let seconds = (ContinuousClock.now - begin).seconds
            let events = kvm.instance?.stageEvents ?? []
            await kvm.stop()
            await run.tearDown()
            return (seconds, events)
        } catch {
            await run.tearDown()
            throw error
        }
    }

    /// The same command line, started directly, with SSH logins attempted every 20 ms.
    static func rawBoot(conf: String) async throws -> Double {
        let run = Run.isolated(prefix: "dts-bench")
        do {
            let seconds = try await rawBoot(conf: conf, run: run)
            await run.tearDown()
            return seconds
        } catch {
            await run.tearDown()
            throw error
        }
    }

    static func rawBoot(conf: String, run: Run) async throws -> Double {
        let kvm = try QEMUKvm(dut: Dut(settings: RunSettings(confDirectory: conf, accelerator: .tcg), run: run), vmName: "vm0", suite: "bench")
        let command = try kvm.commandLine(allocator: run.allocator)
        let dir = try run.directory.vmDirectory("vm0")
        let begin = ContinuousClock.now
        let qemu = try ChildProcess.spawn(command.command, stdout: dir + "/out", stderr: dir + "/err", dieWithParent: true)
        defer { qemu.signal(SIGKILL) }
        let options = SSHConnectOptions(host: "127.0.0.1", port: command.ports.ssh!, user: "root", authentication: .password("tester"),
                                        hostKeyPolicy: .perInstance(directory: dir, instanceID: "raw"), connectTimeout: .seconds(2))
        while true {
            if let ssh = try? await SSHConnection.connect(options) {
                let seconds = (ContinuousClock.now - begin).seconds
                await ssh.close()
                await qemu.terminate(grace: .seconds(2))
                return seconds
            }
            guard qemu.isRunning else { throw SSHError.closed(endpoint: "qemu exited") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }
}

