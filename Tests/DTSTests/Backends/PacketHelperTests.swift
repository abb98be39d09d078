@testable import DTS
import DTSTestSupport
import Foundation
import Testing

/// The Tester's scapy helper as Python, without a network: it compiles, and what its `build`
/// makes from a Swift ``FrameSpec`` reads back through its `read` command as that frame.
/// Debian's /usr/bin/python3 has scapy (python3-scapy); the pyenv python3 on PATH does not.
@Suite struct PacketHelperTests {
    static let python = "/usr/bin/python3"

    /// The helper as dts ships it (read from the module's resource bundle), in a scratch directory.
    static func installed(in dir: TempDir) throws -> String {
        let path = dir.path + "/" + PacketHelper.fileName
        try PacketHelper.source().write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func compilesAsPython() async throws {
        try requirePrograms([Self.python])
        let dir = try TempDir("dts-packet-helper")
        let helper = try Self.installed(in: dir)
        #expect(try PacketHelper.source().hasPrefix("#!/usr/bin/python3\n"))
        // Bytecode goes to the scratch directory, never next to the sources.
        let compiled = try await runProgram(Self.python, ["-m", "py_compile", helper], environment: ["PYTHONPYCACHEPREFIX": dir.path + "/pycache"])
        #expect(compiled.status == 0, "\(compiled.stderr)")
        let broken = dir.path + "/broken.py"
        try "def f(:\n".write(toFile: broken, atomically: true, encoding: .utf8)
        #expect(try await runProgram(Self.python, ["-m", "py_compile", broken], environment: ["PYTHONPYCACHEPREFIX": dir.path + "/pycache"]).status != 0)
    }

    @Test func builtVXLANFrameReadsBackThroughTheHelper() async throws {
        try requirePrograms([Self.python])
        let dir = try TempDir("dts-packet-helper")
        let helper = try Self.installed(in: dir)
        let frame = FrameSpec(ether: EthernetSpec(src: "00:00:20:00:00:20", dst: "00:00:20:00:00:21"),
                              ip: IPv4Spec(src: "10.10.0.2", dst: "10.10.0.3", ttl: 7), l4: .udp(sport: 1234, dport: 5678, checksum: 0x1234),
                              payload: [1, 2, 3, 4],
                              vxlan: VXLANEncapsulation(vni: 1000, outerEther: EthernetSpec(dst: "02:00:00:00:00:01"),
                                                        outerIP: IPv4Spec(src: "192.168.77.2", dst: "192.168.77.1"), sport: 4790))
        let spec = String(decoding: try JSONEncoder().encode(frame), as: UTF8.self)
        let pcap = dir.path + "/frame.pcap"
        // The helper's own build(), imported as a module, writes the frame to a pcap.
        let write = """
            import importlib.util, json, sys
            from scapy.all import wrpcap
            spec = importlib.util.spec_from_file_location("dts_packets", sys.argv[1])
            helper = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(helper)
            wrpcap(sys.argv[3], [helper.build(json.loads(sys.argv[2]))])
            """
        let built = try await runProgram(Self.python, ["-c", write, helper, spec, pcap], environment: ["PYTHONPYCACHEPREFIX": dir.path + "/pycache"])
        try #require(built.status == 0, "\(built.stderr)")
        let read = try await runProgram(Self.python, [helper, "read", pcap])
        try #require(read.status == 0, "\(read.stderr)")
        let frames = try CapturedFrame.decodeList(read.stdout)
        try #require(frames.count == 1)
        let captured = frames[0]
        #expect(captured.layers.prefix(4) == ["Ether", "IP", "UDP", "VXLAN"])
        #expect(captured.ip?.dst == "192.168.77.1" && captured.udp?.sport == 4790 && captured.udp?.dport == 4789)
        #expect(captured.vxlan?.vni == 1000)
        #expect(captured.inner?.ether?.src == "00:00:20:00:00:20" && captured.inner?.ip?.ttl == 7)
        #expect(captured.inner?.udp?.sport == 1234 && captured.inner?.udp?.dport == 5678)
        #expect(captured.inner?.udp?.checksum == 0x1234 && captured.inner?.udp?.checksumOK == false)
        #expect(captured.inner?.ip?.checksumOK == true)
        #expect(captured.inner?.payload == [1, 2, 3, 4])
    }
}
