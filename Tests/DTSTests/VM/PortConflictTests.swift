@testable import DTS
import DTSProcess
import DTSTestSupport
import Foundation
import Testing

/// Ports that are taken: one the config fixes fails the start at once, naming it and its line;
/// a range with no free port gives that one error and no other.
@Suite struct PortConflictTests {
    /// Every SSH-forward port of a tiny range taken: the build reports that, and only that (not
    /// also "no management network", which followed from it).
    @Test func noFreePortIsTheOnlyError() throws {
        let fixture = try VMFixture(["vm0": VMFixture.guest])
        let scratch = try TempDir("dts-noport")
        let run = try RunDirectory(root: scratch.file("root"))
        let port = try freePort()
        let blocker = try ListeningSocket(port: port)
        defer { blocker.close() }
        var ranges = HostResourceAllocator.Ranges()
        ranges.ssh = port...port
        let allocator = try HostResourceAllocator(run: run, ranges: ranges)
        let params = try VirtConfig.load(vm: "vm0", suite: fixture.suite, confDirectory: fixture.confDirectory)
        let errors = #expect(throws: ConfigErrors.self) {
            try QEMUCommandLineBuilder.build(vmName: "vm0", params: params, allocator: allocator)
        }
        let messages = errors?.errors.map(\.description) ?? []
        #expect(messages.count == 1, "\(messages)")
        #expect(messages.first?.contains("no free port for the SSH forward of vm0 in \(port)-\(port)") == true, "\(messages)")
    }

    /// A host forward whose port the config fixes, taken by another program: the start fails
    /// before QEMU runs (no retries with "fresh" ports, which cannot help), naming the port and
    /// the config line.
    @Test func aTakenFixedPortFailsAtOnceWithItsConfigLine() async throws {
        try VMFixture.requireGuestImage()
        let port = try freePort()
        let blocker = try ListeningSocket(port: port)
        defer { blocker.close() }
        let fixture = try VMFixture(["vm0": VMFixture.guest + "\nnet = type=nic,opt_addr=1f; type=user,opt_hostfwd=tcp:127.0.0.1:\(port)-:22;"])
        let run = testRun()
        try await withTearDown(run) {
            let vm = try fixture.vm(run: run)
            do {
                _ = try await vm.start()
                Issue.record("the VM started with its SSH port taken")
            } catch let error as VMStartError {
                #expect(error.stage == .prepare, "\(error)")
                let text = "\(error)"
                #expect(text.contains("port \(port)") && text.contains(fixture.confDirectory + "/lifecycle.cfg:"), "\(text)")
                #expect(!FileManager.default.fileExists(atPath: try run.directory.vmPath("vm0") + "/qemu.stderr"), "QEMU was started")
            }
        }
    }
}
