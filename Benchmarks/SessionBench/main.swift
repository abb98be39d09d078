// Session round-trip benchmark: a trivial command over
//   (a) a dts exec channel on an open libssh2 connection,
//   (b) the dts interactive sendExpect path,
//   (c) OpenSSH's client reusing a ControlMaster connection,
//   (d) python3-pexpect's pxssh (send a line, expect the prompt), as DTS uses it and with its
//       50 ms delaybeforesend turned off.
// Then file copy: a --copy-mb file (default 256 MB) uploaded and downloaded by dts's SFTP copy and
// by OpenSSH's scp on the same server (as it chooses, and held to dts's cipher and MAC), in MB/s,
// with the ratios dts / scp; with --sshd-port, the copy runs again against an OpenSSH sshd on that port.
// Started by scripts/bench-sessions.sh, which runs a loopback dropbear and a loopback sshd with key auth.
import DTSProcess
import DTSSSH
import DTSSession
import Foundation

#if canImport(Glibc)
import Glibc
#endif

struct BenchError: Error, CustomStringConvertible { var description: String }

struct Arguments {
    var host = "127.0.0.1"
    var port = 22
    var user = "dtstest"
    var key = ""
    var workdir = ""
    var iterations = 200
    var pexpectIterations = 200
    var copyMB = 256
    var copyRounds = 3
    /// An OpenSSH sshd on `host` for a second copy benchmark (0: none).
    var sshdPort = 0

    init(_ argv: [String]) throws {
        var it = argv.dropFirst().makeIterator()
        while let flag = it.next() {
            guard let value = it.next() else { throw BenchError(description: "missing value for \(flag)") }
            switch flag {
            case "--host": host = value
            case "--port": port = Int(value) ?? 0
            case "--user": user = value
            case "--key": key = value
            case "--workdir": workdir = value
            case "--iterations": iterations = Int(value) ?? 200
            case "--pexpect-iterations": pexpectIterations = Int(value) ?? 200
            case "--copy-mb": copyMB = Int(value) ?? 256
            case "--copy-rounds": copyRounds = Int(value) ?? 3
            case "--sshd-port": sshdPort = Int(value) ?? 0
            default: throw BenchError(description: "unknown option \(flag)")
            }
        }
        if key.isEmpty || workdir.isEmpty || port == 0 {
            throw BenchError(description: "usage: SessionBench --port P --key PRIVATE_KEY --workdir DIR [--user U] [--host H] [--iterations N]")
        }
    }
}

struct Stats {
    var samples: [Double]
    var p50: Double { percentile(0.50) }
    var p99: Double { percentile(0.99) }
    func percentile(_ q: Double) -> Double {
        let sorted = samples.sorted()
        guard !sorted.isEmpty else { return .nan }
        let rank = Int((q * Double(sorted.count)).rounded(.up)) - 1
        return sorted[max(0, min(sorted.count - 1, rank))]
    }
}

func ms(_ d: Duration) -> Double { d.seconds * 1000 }

/// Starts a program with a clean signal state, output appended to `output`, and waits for it.
@discardableResult
func runProgram(_ path: String, _ args: [String], output: String = "/dev/null") throws -> Int32 {
    try ChildProcess.spawn([path] + args, .output(to: output)).waitUntilExit()
}

func measureDTS(_ args: Arguments) async throws -> (exec: Stats, expect: Stats) {
    let options = SSHConnectOptions(
        host: args.host, port: args.port, user: args.user,
        authentication: .publicKeyFile(privateKeyPath: args.key),
        hostKeyPolicy: .recordOnFirstUse(knownHostsPath: args.workdir + "/known_hosts.dts"))
    let ssh = try await SSHConnection.connect(options)
    defer { Task { await ssh.close() } }
    var execSamples: [Double] = []
    for i in 0..<(args.iterations + 10) {
        let start = ContinuousClock.now
        let result = try await ssh.exec("true", timeout: .seconds(10))
        let elapsed = ms(ContinuousClock.now - start)
        guard result.status == 0 else { throw BenchError(description: "`true` exited \(result.status)") }
        if i >= 10 { execSamples.append(elapsed) }
    }
    let shell = try await ssh.openSSHShell()
    var expectSamples: [Double] = []
    for i in 0..<(args.iterations + 10) {
        let start = ContinuousClock.now
        let out = try await shell.sendExpect("echo x", .literal(shell.prompt), timeout: .seconds(10))
        let elapsed = ms(ContinuousClock.now - start)
        guard out.trimmingCharacters(in: .newlines) == "x" else { throw BenchError(description: "unexpected shell output \(out.debugDescription)") }
        if i >= 10 { expectSamples.append(elapsed) }
    }
    await shell.close()
    await ssh.close()
    return (Stats(samples: execSamples), Stats(samples: expectSamples))
}

func measureControlMaster(_ args: Arguments) throws -> Stats {
    let controlPath = args.workdir + "/cm.sock"
    let common = [
        "-o", "ControlPath=\(controlPath)", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=\(args.workdir)/known_hosts.openssh", "-i", args.key, "-p", String(args.port),
        "\(args.user)@\(args.host)",
    ]
    let log = args.workdir + "/ssh.log"
    // The first call starts the master, which stays in the background (ControlPersist).
    guard try runProgram("/usr/bin/ssh", ["-o", "ControlMaster=auto", "-o", "ControlPersist=120"] + common + ["true"], output: log) == 0 else {
        throw BenchError(description: "ssh ControlMaster start failed; see \(log)")
    }
    defer { _ = try? runProgram("/usr/bin/ssh", ["-O", "exit"] + common, output: log) }
    var samples: [Double] = []
    for i in 0..<(args.iterations + 10) {
        let start = ContinuousClock.now
        let status = try runProgram("/usr/bin/ssh", ["-o", "ControlMaster=auto", "-o", "ControlPersist=120"] + common + ["true"], output: log)
        let elapsed = ms(ContinuousClock.now - start)
        guard status == 0 else { throw BenchError(description: "ssh exited \(status); see \(log)") }
        if i >= 10 { samples.append(elapsed) }
    }
    return Stats(samples: samples)
}

let pxsshScript = #"""
import sys, time
from pexpect import pxssh
host, port, user, key, n, mode, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7]
s = pxssh.pxssh(timeout=30, options={"StrictHostKeyChecking": "no", "UserKnownHostsFile": "/dev/null", "BatchMode": "yes"})
s.login(host, user, port=port, ssh_key=key, auto_prompt_reset=True)
if mode == "fast":
    s.delaybeforesend = None
samples = []
for i in range(n + 10):
    t0 = time.perf_counter()
    s.sendline("echo x")
    if not s.prompt(timeout=10):
        sys.exit("prompt not seen")
    t1 = time.perf_counter()
    if i >= 10:
        samples.append((t1 - t0) * 1000.0)
s.logout()
with open(out, "w") as f:
    f.write("\n".join("%.4f" % v for v in samples) + "\n")
"""#

func measurePexpect(_ args: Arguments, mode: String) throws -> Stats {
    let script = args.workdir + "/pxssh_bench.py"
    try pxsshScript.write(toFile: script, atomically: true, encoding: .utf8)
    let out = args.workdir + "/pxssh-\(mode).txt"
    let log = args.workdir + "/pxssh-\(mode).log"
    let status = try runProgram("/usr/bin/python3", [script, args.host, String(args.port), args.user, args.key,
                                                     String(args.pexpectIterations), mode, out], output: log)
    guard status == 0 else {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        throw BenchError(description: "pxssh benchmark failed (status \(status)); install python3-pexpect? \(text)")
    }
    let values = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").compactMap { Double($0) }
    return Stats(samples: values)
}

/// One direction's MB/s: dts, scp with its own algorithms, scp held to dts's cipher and MAC.
struct CopyRow {
    var name: String
    var dts: Double
    var scp: Double
    var scpSame: Double
}

/// MB/s of an upload and a download of a `copyMB` file, by dts (SFTP over libssh2) and by
/// OpenSSH's scp (once as it chooses, once with the cipher and MAC dts negotiated), each the best
/// of `copyRounds` rounds that alternate them (the machine is shared: the best round is the least
/// disturbed); every copy is checked with `cmp`. Also returns dts's algorithms.
/// `port` is the server's (the dropbear's or the sshd's).
func measureCopy(_ args: Arguments, port: Int) async throws -> (rows: [CopyRow], algorithms: String) {
    var best = [CopyRow]()
    var algorithms = ""
    for _ in 0..<max(1, args.copyRounds) {
        let (round, used) = try await copyRound(args, port: port)
        algorithms = used
        best = best.isEmpty ? round : zip(best, round).map {
            CopyRow(name: $0.name, dts: max($0.dts, $1.dts), scp: max($0.scp, $1.scp), scpSame: max($0.scpSame, $1.scpSame))
        }
    }
    return (best, algorithms)
}

/// One upload and one download each way, by dts and by scp (both ways of choosing its algorithms), in MB/s.
func copyRound(_ args: Arguments, port: Int) async throws -> (rows: [CopyRow], algorithms: String) {
    let source = args.workdir + "/copy-source"
    unlink(source) // runProgram appends
    guard try runProgram("/usr/bin/head", ["-c", "\(args.copyMB)M", "/dev/urandom"], output: source) == 0 else {
        throw BenchError(description: "cannot make \(source)")
    }
    let bytes = Double(args.copyMB) * 1_048_576
    // The remote user writes in /tmp (the work directory is this user's); the server is this machine.
    let remote = "/tmp/dts-bench-copy-\(getpid())"
    defer { for suffix in ["dts", "scp"] { unlink(remote + "-" + suffix) } }
    func check(_ path: String) throws {
        guard try runProgram("/usr/bin/cmp", ["-s", source, path]) == 0 else { throw BenchError(description: "\(path) differs from \(source)") }
    }
    func seconds(_ body: () async throws -> Void) async rethrows -> Double {
        let start = ContinuousClock.now
        try await body()
        return (ContinuousClock.now - start).seconds
    }
    let options = SSHConnectOptions(
        host: args.host, port: port, user: args.user,
        authentication: .publicKeyFile(privateKeyPath: args.key),
        hostKeyPolicy: .recordOnFirstUse(knownHostsPath: args.workdir + "/known_hosts.dts.\(port)"))
    let ssh = try await SSHConnection.connect(options)
    let (cipher, mac) = try await ssh.algorithms
    let dtsUp = try await seconds { try await ssh.upload(localPath: source, remotePath: remote + "-dts") }
    try check(remote + "-dts")
    let dtsDown = try await seconds { try await ssh.download(remotePath: remote + "-dts", localPath: args.workdir + "/copy-dts") }
    try check(args.workdir + "/copy-dts")
    await ssh.close()

    let log = args.workdir + "/scp.log"
    let common = ["-q", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=\(args.workdir)/known_hosts.openssh.\(port)",
                  "-i", args.key, "-P", String(port)]
    let target = "\(args.user)@\(args.host):\(remote)-scp"
    func scp(_ extra: [String]) async throws -> (up: Double, down: Double) {
        let up = try await seconds {
            guard try runProgram("/usr/bin/scp", common + extra + [source, target], output: log) == 0 else { throw BenchError(description: "scp upload failed; see \(log)") }
        }
        try check(remote + "-scp")
        let down = try await seconds {
            guard try runProgram("/usr/bin/scp", common + extra + [target, args.workdir + "/copy-scp"], output: log) == 0 else {
                throw BenchError(description: "scp download failed; see \(log)")
            }
        }
        try check(args.workdir + "/copy-scp")
        unlink(args.workdir + "/copy-scp")
        return (up, down)
    }
    let own = try await scp([])
    let same = try await scp(["-c", cipher, "-o", "MACs=\(mac)"])
    let mb = bytes / 1_000_000
    return ([CopyRow(name: "upload", dts: mb / dtsUp, scp: mb / own.up, scpSame: mb / same.up),
             CopyRow(name: "download", dts: mb / dtsDown, scp: mb / own.down, scpSame: mb / same.down)], "\(cipher) + \(mac)")
}

/// The floor of any exec path: starting the remote user's shell for one command (done locally).
func measureShellStart(_ args: Arguments) throws -> Stats {
    var samples: [Double] = []
    for i in 0..<(args.iterations + 10) {
        let start = ContinuousClock.now
        _ = try runProgram("/bin/bash", ["-c", "true"])
        if i >= 10 { samples.append(ms(ContinuousClock.now - start)) }
    }
    return Stats(samples: samples)
}

func format(_ v: Double) -> String { String(format: "%.3f", v) }

do {
    let args = try Arguments(CommandLine.arguments)
    let (exec, expect) = try await measureDTS(args)
    let controlMaster = try measureControlMaster(args)
    let pexpectDefault = try measurePexpect(args, mode: "default")
    let pexpectFast = try measurePexpect(args, mode: "fast")
    let shellStart = try measureShellStart(args)
    let base = exec.p50
    print("Session round trip, \(args.iterations) iterations after 10 warm-up (dropbear on \(args.host):\(args.port), key auth)")
    print("path                                     p50 ms    p99 ms   p50 / dts exec p50   p50 / dts sendExpect p50")
    let rows: [(String, Stats)] = [
        ("(a) dts exec channel (`true`)", exec),
        ("(b) dts shell sendExpect (`echo x`)", expect),
        ("(c) ssh ControlMaster reuse (`true`)", controlMaster),
        ("(d) pexpect pxssh, default (`echo x`)", pexpectDefault),
        ("(d') pxssh, delaybeforesend=None", pexpectFast),
        ("(e) floor: local spawn of `bash -c true`", shellStart),
    ]
    for (name, stats) in rows {
        let padded = name.padding(toLength: 40, withPad: " ", startingAt: 0)
        print("\(padded) \(format(stats.p50).leftPad(8)) \(format(stats.p99).leftPad(9)) \(String(format: "%.1fx", stats.p50 / base).leftPad(20)) \(String(format: "%.1fx", stats.p50 / expect.p50).leftPad(26))")
    }
    print("p50_ms=\(format(base)) vs_pexpect=\(String(format: "%.1f", pexpectDefault.p50 / base)) vs_controlmaster=\(String(format: "%.1f", controlMaster.p50 / base))")
    if args.copyMB > 0 {
        // The dropbear's keys keep their names; the sshd's end in `_sshd`.
        var servers = [("dropbear", args.port, "")]
        if args.sshdPort > 0 { servers.append(("OpenSSH sshd", args.sshdPort, "_sshd")) }
        var summary: [String] = []
        for (server, port, suffix) in servers {
            print("")
            print("File copy against \(server) on \(args.host):\(port), \(args.copyMB) MiB each way, best of \(args.copyRounds) rounds (scp is OpenSSH's; checked with cmp)")
            let (rows, algorithms) = try await measureCopy(args, port: port)
            print("(dts negotiates \(algorithms); \"scp same\" is scp told to use them too)")
            print("direction    dts MB/s    scp MB/s    dts / scp    scp same MB/s    dts / scp same")
            for row in rows {
                print("\(row.name.padding(toLength: 9, withPad: " ", startingAt: 0)) \(String(format: "%.1f", row.dts).leftPad(11)) \(String(format: "%.1f", row.scp).leftPad(11)) \(String(format: "%.2fx", row.dts / row.scp).leftPad(12)) \(String(format: "%.1f", row.scpSame).leftPad(16)) \(String(format: "%.2fx", row.dts / row.scpSame).leftPad(17))")
            }
            for row in rows {
                summary.append("copy_\(row.name)_ratio\(suffix)=\(String(format: "%.2f", row.dts / row.scp))")
                summary.append("copy_\(row.name)_ratio_same_algorithms\(suffix)=\(String(format: "%.2f", row.dts / row.scpSame))")
            }
        }
        print("")
        print("(copy ratios are dts / scp; keys without a suffix are against dropbear, `_sshd` against OpenSSH sshd)")
        print(summary.joined(separator: " "))
    }
} catch {
    FileHandle.standardError.write(Data("SessionBench: \(error)\n".utf8))
    exit(1)
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
