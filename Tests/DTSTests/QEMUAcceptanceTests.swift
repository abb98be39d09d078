@testable import DTS
import DTSControl
import DTSProcess
import DTSTestSupport
import Foundation
import Testing

/// Starts the real QEMU with the command line of every golden case and checks, over QMP, that the
/// machine has what the config asked for. This proves QEMU 7.2 accepts every line dts emits.
///
/// The argv is built again with free ports and a temporary runtime directory; files named by the
/// config (disks, kernels) are replaced by temporary ones; every VM is TCG and paused (`-S`).
/// vhost-user client devices are served by a real `dpdk-testpmd` (one vhost vdev per device).
extension RealGuestTests {
@Suite struct QEMUAcceptanceTests {
    /// Cases that cannot start on a machine of this kind, and why.
    static let cannotStartHere: [String: String] = [
        "aarch64": "needs qemu-system-aarch64 and an arm64 kernel; checked by the golden file only",
    ]
    /// Arguments that need hardware this machine does not have, dropped before starting.
    static let hardwareDevices = ["vfio-pci"]

    static var cases: [GoldenCase] {
        GoldenCase.all.filter { !$0.expectsError && cannotStartHere[$0.name] == nil }
    }

    @Test(arguments: cases)
    func qemuAcceptsTheCommandLine(_ golden: GoldenCase) async throws {
        let scratch = try TemporaryDirectory("dts-accept")
        let hugepages = try HugepageReservation.ifNeeded(golden)
        defer { hugepages?.release() }
        let allocator = FreePortAllocator(runtimeRoot: scratch.path + "/run", hugepageMount: hugepages?.mount)
        guard case .success(let built) = try golden.build(runtimeRoot: scratch.path + "/run", allocator: { _ in allocator }) else {
            Issue.record("\(golden.name) does not build")
            return
        }
        try FileManager.default.createDirectory(atPath: built.paths.runtimeDirectory, withIntermediateDirectories: true)
        var argv = try substituteFiles(in: built.argv, scratch: scratch.path)
        argv = dropHardwareDevices(argv)
        // The emulator the build chose among several `qemu path=` runs when it is here.
        if !HostFacts.isExecutableFile(argv[0]) { argv[0] = "qemu-system-x86_64" }
        argv = forceTCGPaused(argv)

        // Sockets the config places outside the runtime directory move into the scratch directory.
        for (index, arg) in argv.enumerated() where arg.hasPrefix("socket,") && !arg.contains("path=\(built.paths.runtimeDirectory)") {
            let id = arg.split(separator: ",").first { $0.hasPrefix("id=") }?.dropFirst(3) ?? "x"
            argv[index] = arg.replacingOccurrences(of: #"path=[^,]*"#, with: "path=\(scratch.path)/\(id).sock", options: .regularExpression)
        }
        // vhost-user devices need a backend: testpmd serves the sockets QEMU connects to, and
        // connects (client=1) to those QEMU listens on (QEMU waits for that before starting).
        var vhostSockets: [(path: String, qemuIsServer: Bool)] = []
        for (index, arg) in argv.enumerated() where arg.hasPrefix("socket,id=vhostchar") {
            let socket = "\(scratch.path)/vhost\(vhostSockets.count).sock"
            argv[index] = arg.replacingOccurrences(of: #"path=[^,]*"#, with: "path=\(socket)", options: .regularExpression)
            vhostSockets.append((socket, arg.contains("server=on")))
        }
        let backend = vhostSockets.isEmpty ? nil : try await VhostBackend.start(sockets: vhostSockets, scratch: scratch.path)
        defer { backend?.stop() }
        // crypto devices connect to DPDK's vhost_crypto, which listens on their sockets.
        let crypto = built.paths.cryptoSockets.isEmpty ? nil
            : try await VhostCryptoBackend.start(sockets: built.paths.cryptoSockets, log: scratch.path + "/vhost-crypto.log")
        // The whole QEMU runs under the build's taskset when this host has its CPUs.
        let pinned = built.prefix.count == 3 && built.prefix[0] == "taskset"
            && (ValueKind.parseCPUList(built.prefix[2]) ?? []).allSatisfy(HostFacts.onlineCPUs().contains)
        if pinned { argv = built.prefix + argv }

        // TAP and bridge backends run in a private network and mount namespace with the bridges
        // they name and a bridge-helper ACL that allows them.
        let bridges = argv.compactMap { arg -> String? in
            guard arg.hasPrefix("bridge,") || arg.hasPrefix("tap,") else { return nil }
            return arg.hasPrefix("bridge,") ? (arg.split(separator: ",").first { $0.hasPrefix("br=") }.map { String($0.dropFirst(3)) }) : ""
        }
        if !bridges.isEmpty {
            let names = Set(bridges.filter { !$0.isEmpty }).sorted()
            try FileManager.default.createDirectory(atPath: scratch.path + "/etc-qemu", withIntermediateDirectories: true)
            try names.map { "allow \($0)\n" }.joined().write(toFile: scratch.path + "/etc-qemu/bridge.conf", atomically: true, encoding: .utf8)
            let script = #"mount --bind "$1" /etc/qemu && shift && ip link set lo up && for b in $BRIDGES; do ip link add "$b" type bridge && ip link set "$b" up; done && exec "$@""#
            argv = ["unshare", "--mount", "--net", "--", "/bin/sh", "-c", script, "sh", scratch.path + "/etc-qemu"] + argv
            setenv("BRIDGES", names.joined(separator: " "), 1)
        }
        let qemu = try ChildProcess.spawn(argv, stdout: scratch.path + "/qemu.out", stderr: scratch.path + "/qemu.err",
                                               directory: scratch.path, dieWithParent: true)
        defer { qemu.signal(SIGKILL) }
        let qmp: QMPClient
        do {
            // Generous: dts_original preallocates 4 GB of hugepages before QEMU's main loop greets,
            // which took over 20 s on this 2-core machine while other tests ran.
            qmp = try await QMPClient.connect(path: built.paths.qmpSocket, timeout: .seconds(90))
        } catch {
            let stderr = (try? String(contentsOfFile: scratch.path + "/qemu.err", encoding: .utf8)) ?? ""
            Issue.record("\(golden.name): QEMU did not come up: \(error)\nqemu stderr:\n\(stderr)\nargv:\n\(argv.joined(separator: "\n"))")
            await crypto?.stop()
            return
        }
        try await checkMachine(qmp, argv: argv, golden: golden)
        if pinned, bridges.isEmpty {
            // taskset exec'd QEMU: its main thread may run on the listed CPUs only.
            let allowed = CPUAffinity.allowedList(pid: qemu.pid, thread: qemu.pid)
            #expect(Set(allowed) == Set(ValueKind.parseCPUList(built.prefix[2]) ?? []), "\(golden.name): QEMU runs on \(allowed)")
        }
        if let port = built.ports.monitor {
            // The TCP human monitor answers on loopback.
            let reply = try await HumanMonitor.command("info status", port: port)
            #expect(reply.contains("VM status: paused"), "\(golden.name): monitor on port \(port) said \(reply)")
        }
        if let crypto {
            // QEMU spoke vhost-user to the backend on every socket.
            for socket in built.paths.cryptoSockets {
                #expect(crypto.output.contains("(\(socket)) read message VHOST_USER_SET_OWNER"), "\(golden.name): no vhost-user session on \(socket)")
            }
        }
        try await qmp.quit()
        let status = await qemu.waitForExit(timeout: .seconds(10))
        await crypto?.stop()
        #expect(status == 0, "\(golden.name): qemu exit status \(String(describing: status))")
        #expect(!FileManager.default.fileExists(atPath: built.paths.qmpSocket) || status == 0)
    }

    /// Checks, generically from the argv, what QEMU built.
    func checkMachine(_ qmp: QMPClient, argv: [String], golden: GoldenCase) async throws {
        func values(of option: String) -> [String] {
            argv.indices.filter { argv[$0] == option && $0 + 1 < argv.count }.map { argv[$0 + 1] }
        }
        func props(_ text: String) -> [String: String] {
            var result: [String: String] = [:]
            for part in text.replacingOccurrences(of: ",,", with: "\u{1}").split(separator: ",") {
                let kv = part.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { result[String(kv[0])] = kv[1].replacingOccurrences(of: "\u{1}", with: ",") }
            }
            return result
        }

        // vCPUs
        if let smp = values(of: "-smp").last, let count = Int(smp) {
            #expect(try await qmp.queryCPUsFast().count == count, "\(golden.name): vCPU count")
        }
        // Memory backends: size and sharing.
        let memdevs = try await qmp.queryMemdev()
        for object in values(of: "-object") where object.hasPrefix("memory-backend") {
            let p = props(object)
            let memdev = memdevs.first { $0.id == p["id"] }
            #expect(memdev != nil, "\(golden.name): memdev \(p["id"] ?? "?") missing")
            #expect(memdev?.share == (p["share"] == "on"), "\(golden.name): share")
            if let size = p["size"].flatMap({ Int($0.dropLast()) }) { #expect(memdev?.size == UInt64(size) << 20) }
        }
        // Character devices by id.
        let chardevs = Set(try await qmp.queryChardev().map(\.label))
        for chardev in values(of: "-chardev") {
            let id = props(chardev)["id"] ?? ""
            #expect(chardevs.contains(id), "\(golden.name): chardev \(id) missing; QEMU has \(chardevs.sorted())")
        }
        // Devices with ids: right type, and the MAC for NICs.
        for device in values(of: "-device") {
            let driver = String(device.split(separator: ",").first ?? "")
            let p = props(device)
            guard let id = p["id"] else { continue }
            let type = try await qmp.execute("qom-get", arguments: ["path": .string("/machine/peripheral/\(id)"), "property": .string("type")])
            #expect(type.stringValue == driver, "\(golden.name): device \(id) is \(String(describing: type)), wanted \(driver)")
            if let mac = p["mac"] {
                let actual = try await qmp.execute("qom-get", arguments: ["path": .string("/machine/peripheral/\(id)"), "property": .string("mac")])
                #expect(actual.stringValue == mac, "\(golden.name): \(id) mac")
            }
        }
        // The management NIC at guest slot 0x1f.
        let pci = try await qmp.queryPCI()
        for device in values(of: "-device") where device.contains("addr=1f") {
            let e1000 = pci.first(where: { $0.address.slot == 0x1f })
            #expect(e1000 != nil, "\(golden.name): nothing at slot 0x1f")
            if device.hasPrefix("e1000,") { #expect(e1000?.vendorID == 0x8086 && e1000?.deviceID == 0x100e) }
        }
        // virtio-crypto devices on the PCI bus (1af4:1054), one per -device.
        let cryptoDevices = values(of: "-device").filter { $0.hasPrefix("virtio-crypto-pci,") }.count
        #expect(pci.filter { $0.vendorID == 0x1af4 && $0.deviceID == 0x1054 }.count == cryptoDevices, "\(golden.name): virtio-crypto devices")
        // Paused until dts says otherwise.
        #expect(try await qmp.queryStatus().running == false)
    }

    /// Replaces files the config names (disks, kernels) with temporary ones that QEMU can open.
    func substituteFiles(in argv: [String], scratch: String) throws -> [String] {
        var argv = argv
        let image = HostFacts.imageDirectory + "/dts-guest"
        for index in argv.indices.dropLast() {
            switch argv[index] {
            case "-drive":
                let disk = "\(scratch)/disk\(index).img"
                _ = try runQuickProgram("/usr/bin/qemu-img", ["create", "-q", "-f", argv[index + 1].contains("format=qcow2") ? "qcow2" : "raw", disk, "16M"])
                argv[index + 1] = argv[index + 1].replacingOccurrences(of: #"file=([^,]|,,)*"#, with: "file=\(disk)", options: .regularExpression)
            case "-kernel", "-initrd":
                let file = argv[index] == "-kernel" ? "vmlinux" : "initrd.img"
                guard FileManager.default.fileExists(atPath: "\(image)/\(file)") else {
                    throw AcceptanceError("the dts guest image is missing (\(image)/\(file)); build it with scripts/build-guest-image.sh")
                }
                argv[index + 1] = "\(image)/\(file)"
            case "-pidfile":
                argv[index + 1] = "\(scratch)/qemu.pid"
            default: break
            }
        }
        return argv
    }

    func dropHardwareDevices(_ argv: [String]) -> [String] {
        var result: [String] = []
        var index = 0
        while index < argv.count {
            if argv[index] == "-device", index + 1 < argv.count,
               Self.hardwareDevices.contains(where: { argv[index + 1].hasPrefix($0 + ",") }) {
                index += 2
                continue
            }
            result.append(argv[index])
            index += 1
        }
        return result
    }

    /// Every case starts under TCG, paused, and never daemonized (the test supervises it).
    func forceTCGPaused(_ argv: [String]) -> [String] {
        var argv = argv.filter { $0 != "-daemonize" && $0 != "-S" }
        if let accel = argv.firstIndex(of: "-accel") { argv[accel + 1] = "tcg" }
        if let cpu = argv.firstIndex(of: "-cpu"), argv[cpu + 1] == "host" { argv[cpu + 1] = "max" }
        return argv + ["-S"]
    }
}

}

struct AcceptanceError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A directory removed when the value goes away.
final class TemporaryDirectory: Sendable {
    let path: String
    init(_ prefix: String) throws {
        // Short: unix socket paths are limited to 108 bytes.
        path = "/tmp/\(prefix)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Real free ports (bound then released) and a private runtime directory.
final class FreePortAllocator: VMResourceAllocator, @unchecked Sendable {
    let runtimeRoot: String
    let hugepageMount: String?
    let listenAddress = "127.0.0.1"
    let imageDirectory = HostFacts.imageDirectory
    let hostArchitecture = "x86_64"

    init(runtimeRoot: String, hugepageMount: String?) {
        self.runtimeRoot = runtimeRoot
        self.hugepageMount = hugepageMount
    }

    func runtimeDirectory(vm: String) -> String { "\(runtimeRoot)/\(vm)" }
    var sharedDirectory: String { runtimeRoot }
    func hostForwardPort(vm: String, guestPort: Int) throws -> Int { try freePort() }
    func vncDisplay(vm: String) throws -> Int {
        for display in 10...99 where HostResourceAllocator.canBind(port: 5900 + display, address: "127.0.0.1") { return display }
        throw ResourceError("no free VNC display")
    }
    func serialPort(vm: String) throws -> Int { try freePort() }
    func migrationPort(vm: String) throws -> Int { try freePort() }
    func macAddress(vm: String, index: Int) -> String { MACAddress.derived(vm: vm, index: index, salt: "accept") }
}

/// 2 MB hugepages reserved for a case that asks for hugepage-backed memory, released after.
///
/// A test process killed before ``release()`` would leave its mount and its pages behind: each
/// reservation records itself (`<mount>.owner`: pid and pages), and the next reservation gives
/// back those of dead owners.
final class HugepageReservation: Sendable {
    static let prefix = "/tmp/dts-huge-"
    let mount: String
    let added: Int

    static func ifNeeded(_ golden: GoldenCase) throws -> HugepageReservation? {
        let text = try String(contentsOfFile: golden.configPath, encoding: .utf8)
        guard text.contains("hugepage=yes"), !golden.directives.contains(where: { $0 == ("hugepages", "none") }) else { return nil }
        let size = text.split(separator: "\n").compactMap { line in
            line.range(of: #"size=[0-9]+[GM]?"#, options: .regularExpression).map { ValueKind.parseSizeMiB(String(line[$0].dropFirst(5))) }
        }.compactMap { $0 }.max() ?? 512
        return try HugepageReservation(pages: size / 2 + 16)
    }

    init(pages: Int) throws {
        Self.reclaimLeftovers()
        let dir = Self.prefix + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let counts = try Self.adjust(by: pages)
        added = max(0, counts.after - counts.before)
        mount = dir
        try "\(getpid()) \(added)".write(toFile: dir + ".owner", atomically: true, encoding: .utf8)
        // A size limit makes the mount account its pages (statvfs), whatever else uses hugepages.
        let result = try runQuickProgram("/bin/mount", ["-t", "hugetlbfs", "-o", "pagesize=2M,size=\(pages * 2)M", "nodev", dir])
        guard result.status == 0 else {
            release()
            throw AcceptanceError("mount hugetlbfs: \(result.stderr)")
        }
    }

    func release() { Self.release(mount: mount, pages: added) }

    private static func release(mount: String, pages: Int) {
        _ = try? runQuickProgram("/bin/umount", [mount])
        try? FileManager.default.removeItem(atPath: mount)
        if pages > 0 { _ = try? adjust(by: -pages) }
        try? FileManager.default.removeItem(atPath: mount + ".owner")
    }

    private static func adjust(by delta: Int) throws -> (before: Int, after: Int) {
        let argv = Hugepages.adjustmentArgv(by: delta)
        let result = try runQuickProgram("/usr/bin/" + argv[0], Array(argv.dropFirst()))
        guard result.status == 0, let counts = Hugepages.adjustmentCounts(result.stdout) else {
            throw AcceptanceError("changing the hugepage reservation by \(delta): \(result.stdout) \(result.stderr)")
        }
        return counts
    }

    /// Unmounts the mounts and gives back the pages of reservations whose test process is gone.
    private static func reclaimLeftovers() {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
        for file in files where ("/tmp/" + file).hasPrefix(prefix) && file.hasSuffix(".owner") {
            let path = "/tmp/" + file
            let fields = ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
            guard fields.count == 2, kill(fields[0], 0) != 0, errno == ESRCH else { continue }
            release(mount: String(path.dropLast(".owner".count)), pages: Int(fields[1]))
        }
    }
}

/// A real vhost-user backend: dpdk-testpmd with one vhost vdev per socket, no hugepages.
final class VhostBackend: Sendable {
    let process: ChildProcess
    let prefix: String

    static func start(sockets: [(path: String, qemuIsServer: Bool)], scratch: String) async throws -> VhostBackend {
        let prefix = "dts-accept-\(UUID().uuidString.prefix(8))"
        var argv = ["stdbuf", "-oL", "dpdk-testpmd", "-l", "0-1", "--no-huge", "-m", "1024", "--no-pci", "--file-prefix=\(prefix)"]
        for (index, socket) in sockets.enumerated() {
            argv += ["--vdev", "net_vhost\(index),iface=\(socket.path)" + (socket.qemuIsServer ? ",client=1" : "")]
        }
        argv += ["--", "--total-num-mbufs=4096", "--stats-period", "3600"]
        let process = try ChildProcess.spawn(argv, stdout: scratch + "/testpmd.log", stderr: scratch + "/testpmd.log", dieWithParent: true)
        let backend = VhostBackend(process: process, prefix: prefix)
        let deadline = ContinuousClock.now + .seconds(30)
        while !sockets.filter({ !$0.qemuIsServer }).allSatisfy({ FileManager.default.fileExists(atPath: $0.path) }) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                backend.stop()
                let log = (try? String(contentsOfFile: scratch + "/testpmd.log", encoding: .utf8)) ?? ""
                throw AcceptanceError("dpdk-testpmd did not create its vhost sockets:\n\(log)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return backend
    }

    private init(process: ChildProcess, prefix: String) {
        self.process = process
        self.prefix = prefix
    }

    func stop() {
        process.signal(SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: "/var/run/dpdk/\(prefix)")
    }
}
