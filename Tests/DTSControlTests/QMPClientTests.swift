import DTSTestSupport
import Foundation
import Testing

@testable import DTSControl

#if canImport(Glibc)
import Glibc
#endif

/// QMP against a real qemu-system-x86_64 (TCG, paused with -S).
@Suite(.serialized) struct QMPClientTests {
    @Test func greetingCapabilitiesStatusAndEvents() async throws {
        try await withQEMU { vm in
            let transcript = try TranscriptFile(path: vm.dir.file("qmp.transcript"))
            // The socket does not exist yet right after the launch: connect retries until it does.
            let qmp = try await QMPClient.connect(path: vm.qmpPath, timeout: .seconds(10), transcript: transcript.sink)
            defer { qmp.close() }
            #expect(qmp.greeting.major >= 7)
            #expect(!qmp.greeting.version.isEmpty)

            let initial = try await qmp.queryStatus()
            #expect(initial.running == false)
            #expect(initial.status == "prelaunch")

            let stream = qmp.events()
            try await qmp.cont()
            let resume = try await qmp.waitForEvent(named: "RESUME", timeout: .seconds(5))
            #expect(resume.timestamp != nil)
            let running = try await qmp.queryStatus()
            #expect(running.running)
            #expect(running.status == "running")

            let cursor = qmp.eventCursor()
            try await qmp.stop()
            let stopEvent = try await qmp.waitForEvent(named: "STOP", after: cursor, timeout: .seconds(5))
            #expect(stopEvent.sequence > cursor.sequence)
            let paused = try await qmp.queryStatus()
            #expect(paused.running == false)
            #expect(paused.status == "paused")

            // The stream made before `cont` saw RESUME then STOP, in order.
            var names: [String] = []
            for await event in stream {
                names.append(event.name)
                if names.count == 2 { break }
            }
            #expect(names == ["RESUME", "STOP"])

            // An event already returned is not returned again by a wait without a cursor.
            await #expect(throws: ControlError.self) {
                try await qmp.waitForEvent(named: "STOP", timeout: .milliseconds(200))
            }

            transcript.close()
            let text = try String(contentsOfFile: transcript.path, encoding: .utf8)
            #expect(text.contains(">> {\"execute\":\"qmp_capabilities\""))
            #expect(text.contains("<< {\"QMP\""))
            #expect(text.contains("\"event\": \"STOP\"") || text.contains("\"event\":\"STOP\""))
        }
    }

    @Test func pciFromQMPAndHMPAgree() async throws {
        try await withQEMU { vm in
            let qmp = try await QMPClient.connect(path: vm.qmpPath, timeout: .seconds(10))
            defer { qmp.close() }
            let devices = try await qmp.queryPCI()
            let mgmt = try #require(devices.first { $0.qdevID == "mgmt" })
            #expect(mgmt.slot == 31)
            #expect(mgmt.bus == 0)
            #expect(mgmt.function == 0)
            #expect(mgmt.vendorDevice == "8086:100e")
            #expect(mgmt.classCode == 0x0200)
            #expect(mgmt.classDescription == "Ethernet controller")

            let hmpDevices = try await qmp.infoPCI()
            #expect(hmpDevices.count == devices.count)
            let hmpByAddress = Dictionary(hmpDevices.map { ($0.address, $0) }, uniquingKeysWith: { first, _ in first })
            for device in devices {
                let twin = hmpByAddress[device.address]
                let sameIDs = twin?.vendorID == device.vendorID && twin?.deviceID == device.deviceID
                    && twin?.qdevID == device.qdevID && twin?.subsystemVendorID == device.subsystemVendorID
                #expect(sameIDs, "info pci and query-pci differ at \(device.address)")
            }

            let map = try await qmp.pciMap()
            let hmpMap = PCIMap(infoPCI: try await qmp.humanMonitorCommand("info pci"))
            #expect(map == hmpMap)
            #expect(map.ids == ["mgmt", "pt_0", "pt_1"])
            #expect(map["mgmt"]?.description == "0000:00:1f.0")
            #expect(map["pt_1"]?.description == "0000:00:05.0")
            let pt0 = try map.address(of: "pt_0")
            let virtio = try #require(devices.first { $0.qdevID == "pt_0" })
            #expect(pt0 == virtio.address)
            #expect(virtio.vendorDevice == "1af4:1000")
            #expect(throws: PCIMapError.self) { try map.address(of: "pt_9") }
        }
    }

    @Test func usernetForwardReportsTheChosenPort() async throws {
        try await withQEMU { vm in
            let qmp = try await QMPClient.connect(path: vm.qmpPath, timeout: .seconds(10))
            defer { qmp.close() }
            let forwards = try await qmp.usernetForwards()
            let ssh = try #require(forwards.first { $0.guestPort == 22 })
            #expect(ssh.transport == "TCP")
            #expect(ssh.netdev == "n0")
            #expect(ssh.hostAddress == "127.0.0.1")
            #expect(ssh.guestAddress == "10.0.2.15")
            #expect(ssh.hostPort > 0)
            // QEMU listens on the port it chose.
            #expect(canConnectTCP(port: ssh.hostPort), "nothing listens on 127.0.0.1:\(ssh.hostPort)")
        }
    }

    @Test func cpuThreadsExist() async throws {
        try await withQEMU { vm in
            let qmp = try await QMPClient.connect(path: vm.qmpPath, timeout: .seconds(10))
            defer { qmp.close() }
            let cpus = try await qmp.queryCPUsFast()
            #expect(cpus.map(\.cpuIndex) == [0, 1])
            #expect(Set(cpus.map(\.threadID)).count == 2)
            for cpu in cpus {
                #expect(FileManager.default.fileExists(atPath: "/proc/\(vm.child.pid)/task/\(cpu.threadID)"),
                        "vCPU \(cpu.cpuIndex) thread \(cpu.threadID) is not a task of qemu \(vm.child.pid)")
                #expect(cpu.target == "x86_64")
            }
            let hmp = HMPParser.infoCPUs(try await qmp.humanMonitorCommand("info cpus"))
            #expect(hmp.map(\.threadID) == cpus.map(\.threadID))
            #expect(hmp.filter(\.isCurrent).count == 1)
        }
    }

    @Test func chardevAndMemdev() async throws {
        try await withQEMU { vm in
            let qmp = try await QMPClient.connect(path: vm.qmpPath, timeout: .seconds(10))
            defer { qmp.close() }
            let chardevs = try await qmp.queryChardev()
            let qga = try #require(chardevs.first { $0.label == "qga0" })
            #expect(qga.filename.contains(vm.chardevPath))
            let memdevs = try await qmp.queryMemdev()
            let memory = try #require(memdevs.first { $0.id == "mem0" })
            #expect(memory.size == 128 * 1024 * 1024)
            #expect(memory.share)
            #expect(memory.policy == "default")
            // Any command decodes into a caller's own type; a type that does not fit names the member.
            struct KVMInfo: Decodable { var enabled: Bool; var present: Bool }
            let kvm = try await qmp.execute("query-kvm", as: KVMInfo.self)
            #expect(!kvm.enabled, "the test QEMU runs under TCG")
            struct Wrong: Decodable { var enabled: String }
            await #expect(throws: ControlError.protocolViolation(qmp.endpoint, "query-kvm reply: return.enabled is not String")) {
                try await qmp.execute("query-kvm", as: Wrong.self)
            }
        }
    }

    @Test func errorReplyIsTyped() async throws {
        try await withQEMU { vm in
            let qmp = try await QMPClient.connect(path: vm.qmpPath, timeout: .seconds(10))
            defer { qmp.close() }
            do {
                try await qmp.execute("query-foo")
                Issue.record("query-foo succeeded")
            } catch let error as ControlError {
                guard case .commandFailed(_, let command, let errorClass, let message) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(command == "query-foo")
                #expect(errorClass == "CommandNotFound")
                #expect(message == "The command query-foo has not been found")
                #expect(error.description.hasPrefix(
                    "QMP command query-foo failed: CommandNotFound: The command query-foo has not been found"))
            }
            // The connection is still usable after an error reply.
            #expect(try await qmp.queryStatus().status == "prelaunch")
            // Arguments of the wrong type are errors too.
            await #expect(throws: ControlError.self) {
                try await qmp.execute("human-monitor-command", arguments: ["command-line": 5])
            }
        }
    }

    @Test func concurrentCallsInterleavedWithEvents() async throws {
        try await withQEMU { vm in
            let qmp = try await QMPClient.connect(path: vm.qmpPath, timeout: .seconds(10))
            defer { qmp.close() }
            try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<30 {
                    group.addTask {
                        if index % 10 == 0 {
                            try await qmp.cont()
                            try await qmp.stop()
                            return "toggled"
                        }
                        return try await qmp.humanMonitorCommand("info cpus").isEmpty ? "empty" : "ok"
                    }
                }
                var results: [String] = []
                for try await result in group { results.append(result) }
                #expect(results.filter { $0 == "ok" }.count == 27)
                #expect(results.filter { $0 == "toggled" }.count == 3)
            }
            // Overlapping cont/stop pairs may merge, but at least one RESUME and STOP each arrived.
            #expect(qmp.recentEvents().contains { $0.name == "RESUME" })
            #expect(qmp.recentEvents().contains { $0.name == "STOP" })
        }
    }

    @Test func quitEndsQEMU() async throws {
        try await withQEMU { vm in
            let qmp = try await QMPClient.connect(path: vm.qmpPath, timeout: .seconds(10))
            try await qmp.quit(timeout: .seconds(10))
            #expect(await vm.child.waitForExit(timeout: .seconds(10)) == 0)
            #expect(!qmp.isConnected)
            // QEMU closed the socket after its reply: later calls fail at once, they do not hang.
            await #expect(throws: ControlError.peerClosed(qmp.endpoint)) { try await qmp.queryStatus() }
        }
    }

    @Test func killedQEMUFailsPendingCallsAtOnce() async throws {
        try await withQEMU { vm in
            let qmp = try await QMPClient.connect(path: vm.qmpPath, timeout: .seconds(10))
            defer { qmp.close() }
            async let shutdownWait: QMPEvent = qmp.waitForEvent(named: "SHUTDOWN", timeout: .seconds(60))
            try await Task.sleep(for: .milliseconds(100))
            let start = ContinuousClock.now
            kill(vm.child.pid, SIGKILL)
            do {
                _ = try await shutdownWait
                Issue.record("wait for SHUTDOWN returned after SIGKILL")
            } catch let error as ControlError {
                #expect(error == .peerClosed(qmp.endpoint))
                #expect(error.description == "peer closed QMP socket \(vm.qmpPath)")
            }
            #expect(ContinuousClock.now - start < .seconds(3))
            await #expect(throws: ControlError.peerClosed(qmp.endpoint)) { try await qmp.queryStatus() }
        }
    }

    @Test func cancellingAWaitEndsItAtOnce() async throws {
        try await withQEMU { vm in
            let qmp = try await QMPClient.connect(path: vm.qmpPath, timeout: .seconds(10))
            defer { qmp.close() }
            let waiter = Task { try await qmp.waitForEvent(named: "SHUTDOWN", timeout: .seconds(60)) }
            try await Task.sleep(for: .milliseconds(100))
            let start = ContinuousClock.now
            waiter.cancel()
            await #expect(throws: CancellationError.self) { try await waiter.value }
            #expect(ContinuousClock.now - start < .seconds(2))
            // The client is still fine afterwards.
            #expect(try await qmp.queryStatus().status == "prelaunch")
        }
    }

    @Test func connectDeadlineWhenNothingListens() async throws {
        let dir = try TempDir("qmpnone")
        defer { dir.remove() }
        let (result, took) = await elapsed {
            await #expect(throws: ControlError.self) {
                try await QMPClient.connect(path: dir.file("absent.sock"), timeout: .milliseconds(300))
            }
        }
        _ = result
        #expect(took >= .milliseconds(300))
        #expect(took < .seconds(3))
        do {
            _ = try await QMPClient.connect(path: dir.file("absent.sock"), timeout: .milliseconds(100))
        } catch let error as ControlError {
            #expect(error.description.hasPrefix("cannot connect to QMP socket \(dir.file("absent.sock")): no listener within"))
        }
    }
}

extension FakeConnection {
    /// Sends QMP's greeting and reads the client's `qmp_capabilities`; returns its id (`nil`: none came).
    func greetQMP() -> String? {
        write(QMPFakePeerTests.greeting + "\n")
        return readMessage()?["id"] as? String
    }

    /// Greets and accepts `qmp_capabilities`, as QEMU does; `false` when none came.
    func acceptQMP() -> Bool {
        guard let id = greetQMP() else { return false }
        write(#"{"return": {}, "id": "\#(id)"}"# + "\n")
        return true
    }
}

/// QMP protocol edge cases against a scripted peer.
@Suite struct QMPFakePeerTests {
    static let greeting = #"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}"#

    @Test func noGreetingIsATimeoutNamingTheSocket() async throws {
        let dir = try TempDir("qmpfake")
        defer { dir.remove() }
        let peer = try FakePeer(path: dir.file("qmp.sock"))
        peer.serve { connection in _ = connection.readLine() }
        do {
            _ = try await QMPClient.connect(path: peer.path, timeout: .milliseconds(500))
            Issue.record("connected without a greeting")
        } catch let error as ControlError {
            #expect(error.description == "QMP socket \(peer.path): no greeting within 0.5 s")
        }
        #expect(await peer.waitDone() == nil)
    }

    @Test func peerCloseFailsAPendingCallFast() async throws {
        let dir = try TempDir("qmpfake")
        defer { dir.remove() }
        let peer = try FakePeer(path: dir.file("qmp.sock"))
        peer.serve { connection in
            guard let id = connection.greetQMP() else { return }
            // An event and a stale reply before the real one must not confuse the client.
            connection.write(#"{"event": "POWERDOWN", "timestamp": {"seconds": 1, "microseconds": 2}}"# + "\n")
            connection.write(#"{"return": {}, "id": "stale-1"}"# + "\n")
            connection.write(#"{"return": {}, "id": "\#(id)"}"# + "\n")
            _ = connection.readLine()  // the next command: close without replying
        }
        let qmp = try await QMPClient.connect(path: peer.path, timeout: .seconds(5))
        defer { qmp.close() }
        let powerdown = try await qmp.waitForEvent(named: "POWERDOWN", timeout: .seconds(5))
        #expect(powerdown.timestamp == Date(timeIntervalSince1970: 1.000002))
        let (_, took) = await elapsed {
            await #expect(throws: ControlError.peerClosed(qmp.endpoint)) {
                try await qmp.queryStatus(timeout: .seconds(60))
            }
        }
        #expect(took < .seconds(2))
        #expect(await peer.waitDone() == nil)
    }

    /// QEMU 7.2 says `completed` before it has computed the total time and downtime: the wait
    /// reads again until the figures are there (as captured at the end of a packed-ring migration).
    @Test func completedMigrationWaitsForQEMUsFinalFigures() async throws {
        let dir = try TempDir("qmpfake")
        defer { dir.remove() }
        let peer = try FakePeer(path: dir.file("qmp.sock"))
        peer.serve { connection in
            guard connection.acceptQMP() else { return }
            let replies = [
                #"{"status": "completed", "setup-time": 5, "downtime": 0, "total-time": 0}"#,
                #"{"status": "completed", "setup-time": 5, "downtime": 0, "total-time": 0}"#,
                #"{"status": "completed", "setup-time": 5, "downtime": 85, "total-time": 4470}"#,
            ]
            for reply in replies {
                guard let query = connection.readMessage(), let queryID = query["id"] as? String else { return }
                connection.write(#"{"return": \#(reply), "id": "\#(queryID)"}"# + "\n")
            }
            _ = connection.readLine()  // wait for the client to close
        }
        let qmp = try await QMPClient.connect(path: peer.path, timeout: .seconds(5))
        let info = try await qmp.waitForMigration(timeout: .seconds(10))
        #expect(info.status == "completed")
        #expect(info.totalTime == 4470)
        #expect(info.downtime == 85)
        qmp.close()
        #expect(await peer.waitDone() == nil)
    }

    @Test func silentPeerTimesOutWithCommandName() async throws {
        let dir = try TempDir("qmpfake")
        defer { dir.remove() }
        let peer = try FakePeer(path: dir.file("qmp.sock"))
        peer.serve { connection in
            guard connection.acceptQMP() else { return }
            _ = connection.readLine()
            _ = connection.readLine()  // wait for the client to close
        }
        let qmp = try await QMPClient.connect(path: peer.path, timeout: .seconds(5))
        do {
            _ = try await qmp.queryStatus(timeout: .milliseconds(300))
            Issue.record("silent peer answered")
        } catch let error as ControlError {
            #expect(error.description == "QMP socket \(peer.path): no reply to query-status within 0.3 s")
        }
        qmp.close()
        #expect(await peer.waitDone() == nil)
    }
}

/// Whether a TCP connection to 127.0.0.1:`port` succeeds.
func canConnectTCP(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    return rc == 0
}
