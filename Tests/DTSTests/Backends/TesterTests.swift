@testable import DTS
import DTSTestSupport
import Foundation
import Testing

extension HostBackendTests {
@Suite struct TesterTests {
    @Test func sendsCapturesDecodesVXLANAndTearsDown() async throws {
        try requirePrograms(["ip", "ethtool", "tcpdump", "/usr/bin/python3"])
        let names = BackendNames()
        let dir = try TemporaryDirectory("dts-tester")
        let dut = Dut(run: testRun())   // the local host DUT: its session is a LocalSession
        let run = dut.run
        let namespace = names.name("dtst"), hostEnd = names.name("dtsh"), nsEnd = names.name("dtsn")
        let tester = Tester(session: dut.session, namespace: namespace, workDirectory: dir.path, cleanup: .run(run))
        let count = 25
        try await withTearDown(run) {
            try await tester.setUp(veth: VethSpec(hostName: hostEnd, namespaceName: nsEnd,
                                                  namespaceAddress: "192.168.77.2/24", hostAddress: "192.168.77.1/24"))
            #expect(namespaceExists(namespace))
            #expect(linkExists(hostEnd) && !linkExists(nsEnd))
            let hostMAC = try await tester.macAddress(hostEnd, on: .host)
            let nsMAC = try await tester.macAddress(nsEnd)
            let before = try await tester.counters(hostEnd, on: .host)

            // N UDP frames from the namespace; a capture on the host end for a fixed time sees exactly N.
            let capture = try await tester.startCapture(on: hostEnd, side: .host, filter: "udp and dst port 9999", duration: .seconds(4))
            let payload = Array("dts-tester".utf8)
            try await tester.send(FrameSpec(ether: EthernetSpec(dst: hostMAC), ip: IPv4Spec(src: "192.168.77.2", dst: "192.168.77.1"),
                                            l4: .udp(sport: 5555, dport: 9999), payload: payload), count: count, on: nsEnd)
            let frames = try await capture.frames()
            #expect(frames.count == count)
            for frame in frames {
                #expect(frame.ether?.src == nsMAC && frame.ip?.src == "192.168.77.2" && frame.udp?.sport == 5555)
                #expect(frame.payload == payload && frame.udp?.checksumOK == true && frame.ip?.checksumOK == true)
            }
            let after = try await tester.counters(hostEnd, on: .host)
            #expect(after.rxPackets >= before.rxPackets + UInt64(count))

            // VXLAN-encapsulated frames, VNI 1000, one inner UDP checksum deliberately wrong; tcpdump in the namespace too.
            let tcpdump = try await tester.startTcpdump(on: nsEnd, filter: ["udp", "dst", "port", "4789"])
            let vxlanCapture = try await tester.startCapture(on: hostEnd, side: .host, filter: "udp dst port 4789", duration: .seconds(4))
            let inner = FrameSpec(ether: EthernetSpec(src: "00:00:20:00:00:20", dst: "00:00:20:00:00:21"),
                                  ip: IPv4Spec(src: "10.10.0.2", dst: "10.10.0.3"), l4: .udp(sport: 1234, dport: 5678, checksum: 0x1234),
                                  payload: [1, 2, 3, 4],
                                  vxlan: VXLANEncapsulation(vni: 1000, outerEther: EthernetSpec(dst: hostMAC),
                                                            outerIP: IPv4Spec(src: "192.168.77.2", dst: "192.168.77.1"), sport: 4790))
            try await tester.send(inner, count: 10, on: nsEnd)
            let encapsulated = try await vxlanCapture.frames()
            #expect(encapsulated.count == 10)
            for frame in encapsulated {
                #expect(frame.vxlan?.vni == 1000)
                #expect(frame.inner?.ip?.dst == "10.10.0.3" && frame.inner?.udp?.dport == 5678)
                #expect(frame.inner?.udp?.checksumOK == false, "the inner checksum 0x1234 was sent wrong on purpose")
                #expect(frame.inner?.payload == [1, 2, 3, 4])
            }
            let dumped = try await tester.finish(tcpdump)
            #expect(dumped.count == 10 && dumped.allSatisfy { $0.vxlan?.vni == 1000 })

            // The kernel VXLAN device encapsulates with its VNI towards the remote endpoint.
            try await tester.addKernelVXLAN(KernelVXLANSpec(name: names.name("dtsx"), vni: 2000, remote: "192.168.77.1",
                                                            local: "192.168.77.2", underlay: nsEnd, address: "10.10.7.2/24"))
            let kernelCapture = try await tester.startCapture(on: hostEnd, side: .host, filter: "udp dst port 4789", duration: .seconds(4))
            try await tester.send(FrameSpec(ether: EthernetSpec(dst: "ff:ff:ff:ff:ff:ff"), ip: IPv4Spec(src: "10.10.7.2", dst: "10.10.7.9"),
                                            l4: .udp(sport: 7, dport: 7)), count: 5, on: names.name("dtsx"))
            let viaKernel = try await kernelCapture.frames().filter { $0.inner?.udp?.dport == 7 }
            #expect(viaKernel.count == 5 && viaKernel.allSatisfy { $0.vxlan?.vni == 2000 && $0.ip?.dst == "192.168.77.1" })

            // A capture that cannot start (a filter that does not compile, a missing interface) fails at once.
            let started = ContinuousClock.now
            let badFilter = await #expect(throws: BackendError.self) {
                _ = try await tester.startCapture(on: hostEnd, side: .host, filter: "udp port notaport", duration: .seconds(30))
            }
            let noInterface = await #expect(throws: BackendError.self) {
                _ = try await tester.startCapture(on: "dtsnone0", side: .host, duration: .seconds(30))
            }
            #expect(ContinuousClock.now - started < .seconds(20))
            #expect(badFilter?.step == "capture on \(hostEnd)" && badFilter?.detail.contains("compile") == true, "\(String(describing: badFilter))")
            #expect(noInterface?.detail.contains("No such device") == true, "\(String(describing: noInterface))")
            // A capture still running at teardown is stopped by it.
            _ = try await tester.startCapture(on: hostEnd, side: .host, duration: .seconds(120))
        }
        #expect(!namespaceExists(namespace))
        #expect(!linkExists(hostEnd))
        #expect(!FileManager.default.fileExists(atPath: tester.directory))
        #expect(processes(mentioning: tester.directory).isEmpty)
        await tester.tearDown()   // idempotent
    }
}
}
