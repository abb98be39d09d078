@testable import DTS
import DTSTestSupport
import Foundation
import Testing

/// Shell and QEMU-option quoting, checked against the real readers: `sh` and QEMU's `,,` rule.
///
/// The hole these guard: scanning text by Swift `Character` misses a `'` (or `,`) followed by a
/// combining mark, which is one `Character` but, byte for byte, a quote the shell acts on.
@Suite struct ShellQuotingTests {
    /// Scalars that matter to a shell or to QEMU, plus combining marks that glue onto them.
    static let alphabet: [Unicode.Scalar] = Array("'\"$()`\\;|&*?~#!{}[]<> \t\n\r,=-aZ9é".unicodeScalars)
        + ["\u{301}", "\u{308}", "\u{20DD}", "\u{200D}", "\u{FE0F}", "\u{1F600}", "\u{1}", "\u{1B}", "\u{7F}"]

    static func randomString(using generator: inout some RandomNumberGenerator) -> String {
        var scalars = String.UnicodeScalarView()
        for _ in 0..<Int.random(in: 0...24, using: &generator) {
            if Int.random(in: 0..<8, using: &generator) == 0 {
                scalars.append(contentsOf: ["$(touch /nonexistent/x)", "`id`", "'\u{301}", "\u{301}'", "'\\''"]
                    .randomElement(using: &generator)!.unicodeScalars)
            } else {
                scalars.append(alphabet.randomElement(using: &generator)!)
            }
        }
        return String(scalars)
    }

    /// Every string, quoted, is read back by a real `sh` byte for byte (and runs nothing).
    @Test func quotedStringsReadBackThroughShUnchanged() async throws {
        var generator = SystemRandomNumberGenerator()
        var samples = ["", "plain", "it's", "'\u{301}$(touch /nonexistent/x)'\u{301}", "a'\u{301}b", "\u{301}", "'", "''", "-n", "\n"]
        for _ in 0..<400 { samples.append(Self.randomString(using: &generator)) }
        // One sh reads them all: printf prints each argument followed by a NUL.
        let script = "printf '%s\\0' " + ShellQuoting.join(samples)
        let result = try await runProgram("/bin/sh", ["-c", script])
        #expect(result.status == 0, "sh: \(result.stderr)")
        let printed = Array(result.stdout.utf8).split(separator: 0, omittingEmptySubsequences: false).dropLast().map(Array.init)
        #expect(printed.count == samples.count)
        for (sample, back) in zip(samples, printed) where Array(sample.utf8) != back {
            Issue.record("sh read \(ShellQuoting.quote(sample).debugDescription) as \(String(decoding: back, as: UTF8.self).debugDescription), not \(sample.debugDescription)")
        }
    }

    @Test func plainArgumentsStayUnquoted() {
        #expect(ShellQuoting.quote("plain-arg_1.0") == "plain-arg_1.0")
        #expect(ShellQuoting.quote("") == "''")
        #expect(ShellQuoting.quote("a b") == "'a b'")
        #expect(ShellQuoting.quote("it's") == "'it'\\''s'")
        #expect(ShellQuoting.quote("'\u{301}") == "''\\''\u{301}'")
        #expect(ShellQuoting.join(["echo", "$HOME", ";rm"]) == "echo '$HOME' ';rm'")
    }

    /// QEMU splits `-opt` values at every `,` byte, so a `,` with a combining mark is doubled too.
    @Test func qemuOptionEscapingDoublesEveryCommaScalar() {
        #expect(QEMUOpts.escape("a,b") == "a,,b")
        #expect(QEMUOpts.escape("a,\u{301}id=x") == "a,,\u{301}id=x")
        #expect(QEMUOpts.join("file", [("path", "/x,\u{301}y")]) == "file,path=/x,,\u{301}y")
        let entry = VirtEntry([("cmd", "a\"\u{301},b")], location: .builtIn())
        #expect(entry.text == "cmd=\"a\\\"\u{301},b\"")
    }

    /// DTS's `[suite]` values reach `dut.exec(argv:)`: a quote glued to a combining mark in
    /// host_basic's `qemu` setting must stay an argument, never run as shell syntax.
    @Test func hostBasicConfigValueRunsNoCommand() async throws {
        let conf = try TempDir("dts-inject-conf")
        let out = try TempDir("dts-inject-out")
        let marker = conf.path + "/PWNED"
        _ = try conf.write("host_basic.cfg", "[suite]\nqemu = qemu-system-x86_64'\u{301}$(touch \(marker))'\u{301}\n")
        let result = try await DTSBinary.run(["run", "--suite", "host_basic", "--test-cases", "test_qemu_version",
                                        "--conf-dir", conf.path, "--output", out.path + "/results"])
        #expect(!FileManager.default.fileExists(atPath: marker), "the config value ran a command")
        #expect(result.status == 1, "the case must fail: no such emulator\n\(result.stdout)\n\(result.stderr)")
    }

    /// `dts vm cmdline --shell` prints a line that `sh` reads back as exactly the argv, for a
    /// config whose every free-text field carries shell and QEMU syntax.
    @Test func vmCmdlineShellLineRoundTripsThroughSh() async throws {
        let conf = try TempDir("dts-inject-vm")
        let evil = "x'\u{301}$(touch \(conf.path)/PWNED)'\u{301},y`id` \"z\";w"
        /// A DTS quoted value (`"..."`, with `\"` and `\\` escaped) holding `prefix` + `evil`.
        func quoted(_ prefix: String = "") -> String {
            "\"" + (prefix + evil).replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        _ = try conf.write("virt_global.cfg", "[KVM]\n")
        _ = try conf.write("inject.cfg", """
            [vm0]
            qemu = path=/usr/bin/qemu-system-x86_64;
            cpu = model=\(quoted()),number=1;
            mem = size=256;
            kernel = kernel_img=\(quoted("/k")),initrd=\(quoted("/i")),append=\(quoted());
            disk = file=\(quoted("/d"));
            login = user=root,password=\(quoted());
            net = type=nic,opt_vlan=0,opt_addr=1f;
                  type=user,opt_vlan=0,opt_hostfwd=tcp:127.0.0.1:5555-:22;
                  type=nic,opt_vlan=1,opt_name=\(quoted("n"));
                  type=tap,opt_vlan=1,opt_ifname=\(quoted("t")),opt_script=\(quoted("/s"));

            """)
        let argvOut = try await DTSBinary.run(["vm", "cmdline", "--suite", "inject", "--conf-dir", conf.path, "--accel", "tcg"])
        let shellOut = try await DTSBinary.run(["vm", "cmdline", "--suite", "inject", "--conf-dir", conf.path, "--accel", "tcg", "--shell"])
        #expect(argvOut.status == 0 && shellOut.status == 0, "\(argvOut.stderr)\n\(shellOut.stderr)")
        let argv = argvOut.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
        let line = shellOut.stdout.trimmingCharacters(in: .newlines)
        let result = try await runProgram("/bin/sh", ["-c", "printf '%s\\0' " + line])
        #expect(result.status == 0, "\(result.stderr)")
        let back = result.stdout.split(separator: "\0", omittingEmptySubsequences: false).dropLast().map(String.init)
        #expect(back == argv)
        #expect(!FileManager.default.fileExists(atPath: conf.path + "/PWNED"))
        // Every field that carries the payload reached argv intact.
        #expect(argv.filter { $0.contains("'\u{301}$(touch") }.count >= 6, "\(argv)")
    }
}
