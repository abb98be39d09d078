@testable import DTS
import DTSControl
import DTSProcess
import DTSTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension RealGuestTests {
    /// VMs on a remote host DUT: a second "host" (network namespace, its own address, a real
    /// dropbear logged into as the unprivileged `dtstest`) on which QEMU is launched through the
    /// DUT's SSH session, with QMP and the guest agent reached through forwarded sockets and the
    /// guest's SSH forward bound on the DUT's address.
    @Suite struct RemoteVMTests {
        /// Lines of `/proc/<pid>/status` starting with `key:`, its first value.
        static func status(_ pid: Int32, _ key: String) -> String? {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                  let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return nil }
            return line.dropFirst(key.count + 1).split(whereSeparator: \.isWhitespace).first.map(String.init)
        }

        /// Run directories on the DUT (the namespace host shares this machine's /tmp) owned by this machine.
        static func ownRunDirectories() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter { $0.hasPrefix("dts-vms.") }.map { "/tmp/" + $0 }
                .filter { (try? String(contentsOfFile: $0 + "/owner", encoding: .utf8))?.hasPrefix(RunDirectory.machineID) == true }
        }

        @Test func vmOnARemoteDUTBootsThereAndLeavesNothingBehind() async throws {
            try VMFixture.requireGuestImage()
            let host = try RemoteNamespaceHost()
            defer { host.tearDown() }
            let fixture = try VMFixture(["vm0": VMFixture.guest])
            let scratch = try TempDir("dts-remote-vm")
            let dut = try await Dut.remote(host.crb("ns-dut"), settings: RunSettings(confDirectory: fixture.confDirectory, accelerator: .tcg,
                                                                      vmLogDirectory: scratch.path + "/vms"),
                                           run: testRun(), knownHostsPath: scratch.path + "/known_hosts")

            // What a killed earlier run from this machine left on the DUT: its directory and a
            // process it recorded (pid and start time). The first VM start on the DUT cleans it up.
            // A process named only by a pid file there (planted, or a reused pid) is left alone.
            let stale = try await dut.exec("d=$(mktemp -d /tmp/dts-vms.XXXXXXXX) && mkdir \"$d/vm0\" \"$d/vm1\" && echo \"$d\"", timeout: .seconds(10))
                .output.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(stale.hasPrefix("/tmp/dts-vms."))
            _ = try await dut.exec(argv: ["sh", "-c", "printf '%s 999999 1\\n' \"$2\" > \"$1/owner\"; setsid sh -c 'sleep 1283; true' \"$1/vm0\" > /dev/null 2>&1 < /dev/null & echo $! > \"$1/vm0/qemu.pid\"; "
                                          + "setsid sh -c 'sleep 1284; true' \"$1/vm1\" > /dev/null 2>&1 < /dev/null & echo $! > \"$1/vm1/qemu.pid\"",
                                          "sh", stale, RunDirectory.machineID], timeout: .seconds(10))
            func pid(_ vm: String) throws -> Int32 {
                try #require(Int32(try String(contentsOfFile: stale + "/\(vm)/qemu.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
            }
            let stalePid = try pid("vm0"), plantedPid = try pid("vm1")
            defer { kill(-plantedPid, SIGKILL) }
            let staleStart = try #require(ProcessTable.startTime(of: stalePid))
            try "\(stalePid) \(staleStart) qemu vm0\n".write(toFile: stale + "/processes", atomically: true, encoding: .utf8)
            #expect(ProcessTable.isAlive(stalePid) && ProcessTable.isAlive(plantedPid))

            // No guest image on the DUT yet: the start copies it.
            let remoteImage = "/home/\(RemoteNamespaceHost.user)/.cache/dts/images/dts-guest"
            try? FileManager.default.removeItem(atPath: remoteImage)

            let kvm = try QEMUKvm(dut: dut, vmName: "vm0", suite: fixture.suite)
            let vm = try await kvm.start()
            let instance = try #require(kvm.instance)
            let qemu = instance.pid

            // The stale run is gone: its process group killed (the shell and its sleep), its directory removed.
            #expect(!ProcessTable.isAlive(stalePid) || Self.status(stalePid, "State") == "Z")
            #expect(localProcesses(running: "sleep 1283").isEmpty, "the stale run's child survived")
            #expect(ProcessTable.isAlive(plantedPid) && Self.status(plantedPid, "State") != "Z", "a process the dead run never recorded was killed")
            #expect(!FileManager.default.fileExists(atPath: stale))

            // QEMU runs on the DUT: in the namespace's network namespace, as the DUT's user,
            // daemonized, its files in the run's private directory there.
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(qemu)/ns/net") == host.namespaceInode)
            #expect(Self.status(qemu, "Uid") == String(getpwnam(RemoteNamespaceHost.user)!.pointee.pw_uid))
            let argv = ProcessTable.commandLine(of: qemu)
            #expect(argv.contains("-daemonize"), "\(argv)")
            let remoteDir = instance.command.paths.runtimeDirectory
            #expect(remoteDir.hasPrefix("/tmp/dts-vms.") && remoteDir.hasSuffix("/vm0"), "\(remoteDir)")
            #expect(instance.command.paths.qmpSocket == remoteDir + "/qmp.sock")
            let mode = try FileManager.default.attributesOfItem(atPath: (remoteDir as NSString).deletingLastPathComponent)[.posixPermissions] as? Int
            #expect(mode == 0o700)
            // The guest image was copied into the DUT user's cache.
            let copied = "/home/\(RemoteNamespaceHost.user)/.cache/dts/images/dts-guest/vmlinux"
            #expect(argv.contains(copied), "\(argv)")
            let size = { (path: String) in (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue }
            #expect(size(copied) != nil && size(copied) == size(HostFacts.imageDirectory + "/dts-guest/vmlinux"))
            let modified = { (path: String) in (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date).map { Int($0.timeIntervalSince1970) } }
            #expect(modified(copied) != nil && modified(copied) == modified(HostFacts.imageDirectory + "/dts-guest/vmlinux"))
            let owner = try FileManager.default.attributesOfItem(atPath: copied)[.ownerAccountName] as? String
            #expect(owner == RemoteNamespaceHost.user)
            let partials = ((try? FileManager.default.contentsOfDirectory(atPath: remoteImage)) ?? []).filter { $0.contains(".partial") }
            #expect(partials.isEmpty, "\(partials)")

            // The guest's SSH forward listens on the DUT's address; the VM DUT works through it.
            #expect(vm.ssh.options.host == host.address)
            #expect(argv.contains { $0.contains("hostfwd=tcp:\(host.address):\(vm.ssh.options.port)-:22") }, "\(argv)")
            #expect(try await vm.exec("uname -m", timeout: .seconds(30)).output == "x86_64\n")
            #expect(try await vm.sendExpect("echo $((6 * 7))", "# ", timeout: .seconds(30)).contains("42"))
            // QMP and the guest agent answer through sockets forwarded over the DUT's SSH connection.
            #expect(try await vm.qmp.queryStatus().status == "running")
            let agent = try #require(vm.guestAgent)
            try await agent.ping(timeout: .seconds(10))
            let names = try await agent.networkInterfaces(timeout: .seconds(10)).map(\.name)
            #expect(names.contains("lo"), "\(names)")

            await kvm.stop()
            // QEMU is gone, so are its files on the DUT; its logs came back here.
            var alive = ProcessTable.isAlive(qemu)
            for _ in 0..<50 where alive {
                try await Task.sleep(for: .milliseconds(100))
                alive = ProcessTable.isAlive(qemu) && Self.status(qemu, "State") != "Z"
            }
            #expect(!alive)
            #expect(!FileManager.default.fileExists(atPath: remoteDir))
            let logs = scratch.path + "/vms/vm0"
            let console = (try? String(contentsOfFile: logs + "/console.log", encoding: .utf8)) ?? ""
            #expect(console.contains("DTS-GUEST-READY"), "console log: \(console.suffix(500))")
            for file in ["argv", "qemu.stderr", "qmp.log", "qga.log"] {
                #expect(FileManager.default.fileExists(atPath: logs + "/" + file), "missing \(file)")
            }
            let qmpLog = (try? String(contentsOfFile: logs + "/qmp.log", encoding: .utf8)) ?? ""
            #expect(qmpLog.contains("query-status"))
            #expect(!FileManager.default.fileExists(atPath: try dut.run.directory.vmPath("vm0")), "local VM directory left")

            // The run's directory on the DUT goes with the run's cleanups.
            let root = (remoteDir as NSString).deletingLastPathComponent
            #expect(FileManager.default.fileExists(atPath: root))
            await dut.run.tearDown()
            #expect(!FileManager.default.fileExists(atPath: root))
            await dut.close()
            #expect(host.waitForNoSessions(), "dropbear still serves a connection after the DUT closed")
        }

        /// The DUT's SSH connection breaks while its VM is up (its server-side session killed, as a
        /// network blip or a send that timed out would): stopping the VM reconnects to the DUT and
        /// kills QEMU there, and the run's directory there still goes. Before, QEMU stayed on the
        /// DUT until a later run from this machine cleaned it up.
        @Test func aBrokenDUTConnectionStillStopsTheVMThere() async throws {
            try VMFixture.requireGuestImage()
            let host = try RemoteNamespaceHost()
            defer { host.tearDown() }
            let fixture = try VMFixture(["vm0": VMFixture.guest])
            let scratch = try TempDir("dts-remote-vmbreak")
            let dut = try await Dut.remote(host.crb("ns-dut"), settings: RunSettings(confDirectory: fixture.confDirectory, accelerator: .tcg,
                                                                      vmLogDirectory: scratch.path + "/vms"),
                                           run: testRun(), knownHostsPath: scratch.path + "/known_hosts")
            let kvm = try QEMUKvm(dut: dut, vmName: "vm0", suite: fixture.suite)
            _ = try await kvm.start()
            let instance = try #require(kvm.instance)
            let qemu = instance.pid
            let root = (instance.command.paths.runtimeDirectory as NSString).deletingLastPathComponent
            defer { kill(qemu, SIGKILL) }

            host.dropSessions()
            let remote = try #require(dut.underlyingSession as? RemoteHostSession)
            var usable = true
            for _ in 0..<100 where usable {
                try await Task.sleep(for: .milliseconds(100))
                usable = await remote.connection.isUsable
            }
            try #require(!usable, "the DUT's connection survived its server session")
            #expect(ProcessTable.isAlive(qemu), "QEMU went with the SSH session")

            await kvm.stop()
            var alive = ProcessTable.isAlive(qemu)
            for _ in 0..<100 where alive {
                try await Task.sleep(for: .milliseconds(100))
                alive = ProcessTable.isAlive(qemu) && Self.status(qemu, "State") != "Z"
            }
            #expect(!alive, "QEMU \(qemu) still runs on the DUT after stop()")
            await dut.run.tearDown()
            #expect(!FileManager.default.fileExists(atPath: root), "\(root) left on the DUT")
            await dut.close()
        }

        /// `dts run --suite virt_basic --dut NAME` with a crbs.cfg DUT in the namespace: every case
        /// passes with the VM on the remote DUT, the case logs show the VM's commands on its
        /// forwarded port at the DUT's address, the VM logs are collected, and nothing stays.
        @Test func dtsRunVirtBasicOnARemoteDUT() async throws {
            try VMFixture.requireGuestImage()
            let host = try RemoteNamespaceHost()
            defer { host.tearDown() }
            let conf = try TempDir("dts-remote-vmconf")
            let out = try TempDir("dts-remote-vmout")
            for file in ["virt_global.cfg", "virt_basic.cfg"] {
                try FileManager.default.copyItem(atPath: DTSBinary.packageRoot + "/conf/" + file, toPath: conf.path + "/" + file)
            }
            _ = try conf.write("crbs.cfg", host.crbsSection("ns-dut"))
            let dir = out.path + "/r"
            let result = try await DTSBinary.run(["run", "--suite", "virt_basic", "--dut", "ns-dut", "--accel", "tcg",
                                            "--conf-dir", conf.path, "--output", dir])
            #expect(result.status == 0, "stdout: \(result.stdout)\nstderr: \(result.stderr)")
            let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: dir + "/results.json")))
            #expect(report.allCases.count == 5 && report.allCases.allSatisfy { $0.case.status == .passed },
                    "\(report.allCases.map { "\($0.case.name): \($0.case.status) \($0.case.reason ?? "")" })")
            let caseLog = try String(contentsOfFile: dir + "/virt_basic/test_vm_kernel.log", encoding: .utf8)
            #expect(caseLog.contains("root@\(host.address):") && caseLog.contains("$ uname -r"), "case log:\n\(caseLog)")
            // The QEMU launch went through the DUT's session and is in the logs.
            let suiteLog = (try? String(contentsOfFile: dir + "/virt_basic.log", encoding: .utf8)) ?? ""
            let dtsLog = (try? String(contentsOfFile: dir + "/dts.log", encoding: .utf8)) ?? ""
            #expect((suiteLog + dtsLog).contains("\(RemoteNamespaceHost.user)@\(host.address):22 $ sh -c"), "no QEMU launch in the logs")
            let console = (try? String(contentsOfFile: dir + "/vms/vm0/console.log", encoding: .utf8)) ?? ""
            #expect(console.contains("DTS-GUEST-READY"))
            // No QEMU of the run and no run directory of this machine are left on the DUT.
            #expect(qemuProcesses(matching: "/tmp/dts-vms.").filter { Self.status($0, "Uid") == String(getpwnam(RemoteNamespaceHost.user)!.pointee.pw_uid) }.isEmpty)
            let leftovers = Self.ownRunDirectories()
            #expect(leftovers.isEmpty, "run directories left on the DUT: \(leftovers)")
            #expect(host.waitForNoSessions(), "dropbear still serves a connection after dts exited")
        }

        /// `dts vm start --dut NAME`: the VM boots on the remote DUT, the printed SSH command names
        /// the DUT's address and port (the guest's sshd answers there), and Ctrl-C stops it: exit 0,
        /// no QEMU and no run directory left on the DUT.
        @Test func dtsVMStartOnARemoteDUT() async throws {
            try VMFixture.requireGuestImage()
            let host = try RemoteNamespaceHost()
            defer { host.tearDown() }
            let fixture = try VMFixture(["vm0": VMFixture.guest])
            let out = try TempDir("dts-remote-vmstart")
            _ = try out.write("crbs.cfg", host.crbsSection("ns-dut"))
            let dts = try VMStartProcess(fixture: fixture, directory: out.path, arguments: ["--dut", "ns-dut", "--crbs", out.path + "/crbs.cfg"])
            defer { dts.finish() }
            let port = try await dts.waitForBanner()
            #expect(dts.printed.contains("VM vm0 is up (on DUT ns-dut)"), "\(dts.printed)")
            #expect(dts.printed.contains("root@\(host.address)"), "\(dts.printed)")
            #expect(try readBanner(port: port, address: host.address).hasPrefix("SSH-2.0-"))
            let uid = String(getpwnam(RemoteNamespaceHost.user)!.pointee.pw_uid)
            let qemu = qemuProcesses(matching: "/tmp/dts-vms.").filter { Self.status($0, "Uid") == uid }
            #expect(qemu.count == 1)

            kill(dts.process.pid, SIGINT)
            let status = try await dts.waitForExit(within: .seconds(60))
            #expect(status == 0, "\(dts.printed)")
            for pid in qemu { #expect(!ProcessTable.isAlive(pid) || Self.status(pid, "State") == "Z", "QEMU \(pid) survived on the DUT") }
            let leftovers = Self.ownRunDirectories()
            #expect(leftovers.isEmpty, "run directories left on the DUT: \(leftovers)")
            #expect(dts.runDirectories.isEmpty, "local run directory left: \(dts.runDirectories)")
            #expect(host.waitForNoSessions(), "dropbear still serves a connection after dts exited")

            // dts killed outright leaves its daemonized QEMU on the DUT; the next run from this
            // machine that starts a VM there kills it and removes the dead run's directory.
            try FileManager.default.createDirectory(atPath: out.path + "/killed", withIntermediateDirectories: true)
            let killed = try VMStartProcess(fixture: fixture, directory: out.path + "/killed", arguments: ["--dut", "ns-dut", "--crbs", out.path + "/crbs.cfg"])
            defer { killed.finish() }
            _ = try await killed.waitForBanner()
            let orphan = try #require(qemuProcesses(matching: "/tmp/dts-vms.").first { Self.status($0, "Uid") == uid })
            kill(killed.process.pid, SIGKILL)
            _ = try await killed.waitForExit(within: .seconds(10))
            try await Task.sleep(for: .seconds(1))
            #expect(ProcessTable.isAlive(orphan), "the daemonized QEMU died with dts")
            let next = try await Dut.remote(host.crb("ns-dut"), run: testRun(), knownHostsPath: out.path + "/known_hosts")
            let remote = try await RemoteVMHost.host(for: next)
            #expect(!ProcessTable.isAlive(orphan) || Self.status(orphan, "State") == "Z", "the dead run's QEMU still runs on the DUT")
            await remote.remove()
            await next.run.tearDown()
            await next.close()
            let remaining = Self.ownRunDirectories()
            #expect(remaining.isEmpty, "run directories left on the DUT: \(remaining)")

            // An unknown DUT name is a config error (2) naming the file and the DUTs it has.
            let unknown = try await DTSBinary.run(["vm", "start", "--conf-dir", fixture.confDirectory, "--suite", fixture.suite,
                                             "--dut", "nope", "--crbs", out.path + "/crbs.cfg"])
            #expect(unknown.status == 2)
            #expect(unknown.stderr.contains("--dut nope: no such DUT in \(out.path)/crbs.cfg (it has: ns-dut)"), "\(unknown.stderr)")
        }

        /// Ctrl-C while a case of `dts run --dut` uses a VM on the remote DUT: exit 130, partial
        /// results, and the VM stopped on the DUT (over the DUT's session, before it closes) with
        /// nothing left in /tmp there.
        @Test func sigintDuringARemoteVMCaseLeavesNothingOnTheDUT() async throws {
            try VMFixture.requireGuestImage()
            let host = try RemoteNamespaceHost()
            defer { host.tearDown() }
            let conf = try TempDir("dts-remote-vmint-conf")
            let out = try TempDir("dts-remote-vmint")
            for file in ["virt_global.cfg", "virt_basic.cfg"] {
                try FileManager.default.copyItem(atPath: DTSBinary.packageRoot + "/conf/" + file, toPath: conf.path + "/" + file)
            }
            _ = try conf.write("crbs.cfg", host.crbsSection("ns-dut"))
            let dts = try DTSProcessHarness.start(["run", "--suite", "virt_basic", "--dut", "ns-dut", "--accel", "tcg",
                                                   "--conf-dir", conf.path, "--output", out.path + "/r"], log: out.path + "/stdout")
            defer { dts.killIfRunning() }

            let uid = String(getpwnam(RemoteNamespaceHost.user)!.pointee.pw_uid)
            var qemu: [Int32] = []
            _ = await dts.waitUntil(timeout: .seconds(180), every: .milliseconds(200)) {
                qemu = qemuProcesses(matching: "/tmp/dts-vms.").filter { Self.status($0, "Uid") == uid }
                return !qemu.isEmpty && FileManager.default.fileExists(atPath: out.path + "/r/virt_basic/test_vm_kernel.log")
            }
            try #require(!qemu.isEmpty, "the VM never came up on the DUT: \(dts.output)")
            let (status, _) = await dts.interrupt(waitingUpTo: .seconds(90))
            #expect(status == 130, "\(dts.output)")
            for pid in qemu { #expect(!ProcessTable.isAlive(pid) || Self.status(pid, "State") == "Z", "QEMU \(pid) survived on the DUT") }
            #expect(Self.ownRunDirectories().isEmpty, "run directories left on the DUT: \(Self.ownRunDirectories())")
            let report = try ReportWriters.readResults(Data(contentsOf: URL(fileURLWithPath: out.path + "/r/results.json")))
            #expect(report.interrupted == "SIGINT")
            #expect(host.waitForNoSessions(), "dropbear still serves a connection after dts exited")
        }

        /// A disk overlay on a remote DUT: made there with the DUT's `qemu-img`, saved with the
        /// snapshot in the DUT's cache, restored from a copy there, gone with the VM.
        @Test func aDiskOverlayOnARemoteDUTWarmStarts() async throws {
            try VMFixture.requireGuestImage()
            let host = try RemoteNamespaceHost()
            defer { host.tearDown() }
            // Where the DUT's user can read it (the namespace host shares this machine's /tmp).
            let base = "/tmp/dts-remote-overlay-\(UInt32.random(in: 0...UInt32.max)).img"
            #expect(FileManager.default.createFile(atPath: base, contents: Data(count: 1 << 20), attributes: [.posixPermissions: 0o644]))
            defer { try? FileManager.default.removeItem(atPath: base) }
            let baseDigest = try SHA256Hex.ofFile(base)
            let fixture = try VMFixture(["vm0": VMFixture.guest + "\ndisk = file=\(base),opt_format=raw,opt_if=virtio,overlay=yes;"])
            let scratch = try TempDir("dts-remote-overlay")
            let cache = "/home/\(RemoteNamespaceHost.user)/.cache/dts/snapshots"
            let before = Set((try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? [])
            defer {
                for name in Set((try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []).subtracting(before) where !name.hasPrefix(".") {
                    try? FileManager.default.removeItem(atPath: cache + "/" + name)
                }
            }
            let dut = try await Dut.remote(host.crb("ns-dut"), settings: RunSettings(confDirectory: fixture.confDirectory, accelerator: .tcg, boot: .warm),
                                           run: testRun(), knownHostsPath: scratch.path + "/known_hosts")
            var restoredOnce = false
            for start in 0..<2 {
                let kvm = try QEMUKvm(dut: dut, vmName: "vm0", suite: fixture.suite)
                let vm = try await kvm.start()
                let instance = try #require(kvm.instance)
                let overlay = try #require(instance.command.overlays.first).path
                #expect(overlay.hasPrefix(instance.command.paths.runtimeDirectory + "/"))
                #expect(FileManager.default.fileExists(atPath: overlay))
                let stages = instance.stageEvents
                if start == 0 {
                    #expect(stages.contains { $0.stage == .snapshot && $0.outcome == .passed }, "\(stages)")
                    let saved = ((try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []).filter { $0.hasSuffix(".overlay0.qcow2") }
                    #expect(saved.count == 1, "\(saved)")
                } else {
                    restoredOnce = try WarmBootTests.restored(kvm)
                }
                #expect(try await vm.exec("printf WRITTEN\(start) | dd of=/dev/vda conv=notrunc,fsync 2>&1", timeout: .seconds(20)).status == 0)
                await kvm.stop()
                #expect(!FileManager.default.fileExists(atPath: overlay), "the overlay \(overlay) outlived its VM")
            }
            #expect(restoredOnce, "the second start did not restore the snapshot")
            #expect(try SHA256Hex.ofFile(base) == baseDigest, "the base image changed")
            await dut.run.tearDown()
            await dut.close()
        }

        /// A file QEMU would open that the DUT does not have fails the start before QEMU runs,
        /// naming the DUT, the option and the path; nothing is left on the DUT.
        @Test func missingFileOnTheDUTFailsBeforeLaunch() async throws {
            try VMFixture.requireGuestImage()
            let host = try RemoteNamespaceHost()
            defer { host.tearDown() }
            let missing = "/tmp/dts-no-such-disk-\(UInt32.random(in: 0...UInt32.max)).img"
            let fixture = try VMFixture(["vm0": VMFixture.guest + "\ndisk = file=\(missing);"])
            let scratch = try TempDir("dts-remote-missing")
            let dut = try await Dut.remote(host.crb("ns-dut"), settings: RunSettings(confDirectory: fixture.confDirectory, accelerator: .tcg),
                                           run: testRun(), knownHostsPath: scratch.path + "/known_hosts")
            let kvm = try QEMUKvm(dut: dut, vmName: "vm0", suite: fixture.suite)
            do {
                try await kvm.start()
                Issue.record("the VM started without its disk file")
            } catch let error as VMStartError {
                #expect(error.stage == .prepare)
                #expect("\(error)".contains("DUT [ns-dut] at \(host.address): no such file on the DUT: disk file \(missing)"), "\(error)")
                #expect(!"\(error)".contains("-kernel"), "\(error)")
            }
            let uid = String(getpwnam(RemoteNamespaceHost.user)!.pointee.pw_uid)
            #expect(qemuProcesses(matching: "/tmp/dts-vms.").filter { Self.status($0, "Uid") == uid }.isEmpty)
            await dut.run.tearDown()
            await dut.close()
            #expect(Self.ownRunDirectories().isEmpty, "run directories left on the DUT: \(Self.ownRunDirectories())")
        }
    }
}
