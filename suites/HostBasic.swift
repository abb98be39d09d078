import DTS
import Foundation
import Synchronization

/// `host_basic`: the host DUT works as suites need it: commands, an interactive shell, file copy,
/// and a QEMU that runs. Uses only the host DUT (no VM), so it runs anywhere dts does.
///
/// Settings (`conf/host_basic.cfg`, section `[suite]`, all optional):
/// `qemu = qemu-system-x86_64` (the emulator to check), `copy_size = 1048576` (bytes copied).
final class HostBasic: TestSuite {
    static let name = "host_basic"
    static let cases: [TestCase<HostBasic>] = [
        .functional("test_kernel_release") { try await $0.testKernelRelease() },
        .functional("test_shell_send_expect") { try await $0.testShellSendExpect() },
        .functional("test_file_transfer") { try await $0.testFileTransfer() },
        .functional("test_qemu_version", timeout: .seconds(60)) { try await $0.testQemuVersion() },
    ]
    static var defaultCaseTimeout: Duration { .seconds(120) }

    let context: TestContext
    private var dut: Dut { context.dut }
    /// A scratch directory on the DUT, made in setUpAll.
    private var scratch = ""

    init(context: TestContext) {
        self.context = context
    }

    func setUpAll() async throws {
        let made = try await dut.exec("mktemp -d /tmp/dts-host-basic.XXXXXX", timeout: .seconds(10))
        try verify(made.succeeded, "mktemp on the DUT failed: \(made.errorOutput)")
        scratch = made.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func tearDownAll() async throws {
        guard scratch.hasPrefix("/tmp/dts-host-basic.") else { return }
        _ = try await dut.exec(argv: ["rm", "-rf", scratch], timeout: .seconds(30))
    }

    /// `uname -r` on the DUT is the kernel this process runs on (the DUT is this machine) or at
    /// least a well-formed release when the DUT is remote.
    func testKernelRelease() async throws {
        let result = try await dut.exec("uname -r", timeout: .seconds(10))
        try verify(result.succeeded, "uname -r exited \(result.status): \(result.errorOutput)")
        let release = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        try verify(!release.isEmpty, "uname -r printed nothing")
        context.logger.info("DUT kernel \(release)")
        if !dut.isRemote {
            var names = utsname()
            uname(&names)
            let mine = withUnsafeBytes(of: &names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            try verify(release == mine, "uname -r says '\(release)', this process runs on '\(mine)'")
            let version = ProcessInfo.processInfo.operatingSystemVersion
            try verify(release.hasPrefix("\(version.majorVersion).\(version.minorVersion)."),
                       "ProcessInfo says kernel \(version.majorVersion).\(version.minorVersion).\(version.patchVersion), uname -r '\(release)'")
        }
    }

    /// DTS-style `send_expect`: the prompt ends in `# `, state persists between commands, a
    /// regex expectation works, and output comes back without the command.
    func testShellSendExpect() async throws {
        let product = try await dut.sendExpect("echo $((6 * 7))", "# ", timeout: .seconds(10))
        try verify(product == "42", "expected 42, got '\(product)'")
        _ = try await dut.sendExpect("cd \(ShellQuoting.quote(scratch)) && DTS_X=abc", "# ", timeout: .seconds(10))
        let state = try await dut.sendExpect("echo \"$PWD:$DTS_X\"", "# ", timeout: .seconds(10))
        try verify(state == "\(scratch):abc", "shell state not kept: '\(state)'")
        let before = try await dut.sendExpect("sleep 0.5; echo done-$((1 + 1))", .regex("done-[0-9]"), timeout: .seconds(10))
        try verify(before.isEmpty, "unexpected output before the match: '\(before)'")
        _ = try await dut.sendExpect("", "# ", timeout: .seconds(10))
    }

    /// A file survives upload and download byte for byte, with its mode, and the DUT's checksum
    /// matches the one computed here.
    func testFileTransfer() async throws {
        let size = try context.config.int("copy_size", default: 1 << 20)
        let localDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("dts-host-basic-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: localDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: localDirectory) }
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let source = localDirectory + "/payload.bin"
        try Data(bytes).write(to: URL(fileURLWithPath: source))
        let remote = scratch + "/payload.bin"
        let lastProgress = ProgressBox()
        try await dut.upload(source, to: remote, mode: 0o640) { done, total in lastProgress.set(done, total) }
        try verify(lastProgress.value == (Int64(size), Int64(size)), "upload progress ended at \(lastProgress.value)")

        let remoteSum = try await dut.exec(argv: ["sha256sum", remote], timeout: .seconds(30))
        try verify(remoteSum.succeeded, "sha256sum on the DUT failed: \(remoteSum.errorOutput)")
        let localSum = try await LocalSession(endpoint: "controller").exec(argv: ["sha256sum", source], timeout: .seconds(30))
        let digest = { (text: String) in text.split(separator: " ").first.map(String.init) ?? "" }
        try verify(digest(remoteSum.output) == digest(localSum.output) && !digest(localSum.output).isEmpty,
                   "checksum differs: DUT \(digest(remoteSum.output)), local \(digest(localSum.output))")
        let mode = try await dut.exec(argv: ["stat", "-c", "%a", remote], timeout: .seconds(10))
        try verify(mode.output.trimmingCharacters(in: .whitespacesAndNewlines) == "640", "mode on the DUT is \(mode.output)")

        let back = localDirectory + "/back.bin"
        try await dut.download(remote, to: back)
        let returned = try Data(contentsOf: URL(fileURLWithPath: back))
        try verify(returned == Data(bytes), "downloaded file differs (\(returned.count) bytes, expected \(size))")
    }

    /// The emulator the VM suites use starts on the DUT and reports its version.
    func testQemuVersion() async throws {
        let qemu = context.config.string("qemu", default: "qemu-system-x86_64")
        let result = try await dut.exec(argv: [qemu, "--version"], timeout: .seconds(30))
        try verify(result.succeeded, "\(qemu) --version exited \(result.status): \(result.errorOutput)")
        let firstLine = result.output.split(separator: "\n").first.map(String.init) ?? ""
        try verify(firstLine.hasPrefix("QEMU emulator version "), "unexpected version output: '\(firstLine)'")
        var table = PerfTable(title: "emulator", columns: ["binary", "version"])
        table.add([qemu, String(firstLine.dropFirst("QEMU emulator version ".count))])
        context.recordPerformance(table)
    }
}

/// The last progress report of a copy.
private final class ProgressBox: Sendable {
    private let last = Mutex<(Int64, Int64)>((-1, -1))
    func set(_ done: Int64, _ total: Int64) { last.withLock { $0 = (done, total) } }
    var value: (Int64, Int64) { last.withLock { $0 } }
}
