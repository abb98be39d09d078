#!/usr/bin/python3
"""Mutation fuzzer for dts's config reader (driven by scripts/fuzz-config.sh).

Takes the configs under conf/ and Tests/DTSTests/Golden/cmdline/, mutates them at random
(byte flips, inserted or deleted separators and line breaks, combining marks, NULs, invalid
UTF-8, huge values, duplicated sections and lines, other line endings, spliced lines,
extreme numbers) and feeds each mutant to the built `dts config check` and `dts vm cmdline`,
each a process of its own with a deadline. A crash (a signal, or an exit status other than
0 and 2) or a hang (the deadline passes) is a failure: the input, the command, its output
and a reproduce.sh are saved under the output directory. `config check` takes many files per
process; when a batch fails, each of its files is run alone to find the culprits.

Exit status: 0 when nothing failed, 1 otherwise.
"""
import argparse
import concurrent.futures
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

SPECIAL_FILES = ("virt_global.cfg", "crbs.cfg", "execution.cfg", "ports.cfg")
TOKENS = [
    b";", b",", b"=", b'"', b"\r", b"\n", b"\r\n", b"[", b"]", b":", b"\\", b"'", b"#", b" ", b"\t",
    b"\xcc\x81",      # U+0301 COMBINING ACUTE ACCENT
    b"\xcd\xbe",      # U+037E GREEK QUESTION MARK (canonically ';')
    b"\xe2\x80\xae",  # U+202E RIGHT-TO-LEFT OVERRIDE
    b"\xe2\x80\xa8",  # U+2028 LINE SEPARATOR
    b"\xc2\x85",      # U+0085 NEXT LINE
    b"\xc2\xa0",      # U+00A0 NO-BREAK SPACE
    b"\x1b[31m", b"\x00", b"\xef\xbb\xbf", b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80",
    b"../", b"/", b"..", b"%(x)s", b"$(id)", b"`id`",
]
NUMBERS = [b"0", b"-1", b"+1", b"4294967296", b"9223372036854775807", b"9223372036854775808",
           b"99999999999999999999", b"9007199254740993G", b"0x1f", b"1f.7", b"\xef\xbc\x91"]
MAX_BYTES = 4 << 20


def mutate(data, corpus, rng):
    """One random mutation of `data` (bytes)."""
    n = len(data)
    pos = rng.randint(0, n)
    kind = rng.randrange(13)
    if kind == 0 and n:  # flip bits
        i = rng.randrange(n)
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
    if kind in (1, 2):  # insert separators, marks, bad bytes
        return data[:pos] + b"".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 3))) + data[pos:]
    if kind == 3 and n:  # delete a few bytes
        i = rng.randrange(n)
        return data[:i] + data[i + rng.randint(1, 8):]
    if kind == 4:  # a huge value, usually right after a '='
        eq = [m.end() for m in re.finditer(rb"=", data)]
        at = rng.choice(eq) if eq and rng.random() < 0.8 else pos
        unit = rng.choice([b"x", b"9", b"a=1,", b";", b",", b" ", b"\xcc\x81", b"\\\"", b"k=v;"])
        size = rng.choice([1 << 8, 1 << 8, 1 << 12, 1 << 12, 1 << 16, 1 << 20])
        return data[:at] + unit * (size // len(unit)) + data[at:]
    if kind == 5:  # duplicate a section
        heads = [m.start() for m in re.finditer(rb"(?m)^\[", data)]
        if heads:
            k = rng.randrange(len(heads))
            end = heads[k + 1] if k + 1 < len(heads) else n
            block = data[heads[k]:end]
            if not block.endswith(b"\n"):
                block += b"\n"
            copies = rng.choice([1, 1, 2, 1, 10, 50, 2000])
            return data + block * copies if copies > 2 else data[:heads[k]] + block * (copies + 1) + data[heads[k]:]
    if kind == 6:  # repeat a line
        lines = data.split(b"\n")
        i = rng.randrange(len(lines))
        if len(lines[i]) < 200:
            lines[i:i + 1] = [lines[i]] * rng.choice([2, 2, 10, 100, 1000, 20000])
            return b"\n".join(lines)
    if kind == 7:  # other line endings
        return data.replace(b"\n", rng.choice([b"\r\n", b"\r", b"\n\n", b"\r\r\n"]))
    if kind == 8:  # splice a line from another file
        other = rng.choice(corpus)[1].split(b"\n")
        return data[:pos] + rng.choice(other) + b"\n" + data[pos:]
    if kind == 9:  # an extreme number
        digits = list(re.finditer(rb"[0-9]+", data))
        if digits:
            m = rng.choice(digits)
            return data[:m.start()] + rng.choice(NUMBERS) + data[m.end():]
    if kind == 10:  # empty or odd value
        eq = list(re.finditer(rb"=([^,;\n]*)", data))
        if eq:
            m = rng.choice(eq)
            odd = rng.choice([b"", b" ", b'"', b'""', b'"a', b"a=b=c", b"./../..", b"-", b"\\", b'"\\', b",,,", b";;"])
            return data[:m.start(1)] + odd + data[m.end(1):]
    if kind == 11:  # indent or unindent a line
        lines = data.split(b"\n")
        i = rng.randrange(len(lines))
        lines[i] = (b"    " + lines[i]) if not lines[i].startswith((b" ", b"\t")) else lines[i].lstrip()
        return b"\n".join(lines)
    if kind == 12 and n:  # a byte-order mark, or a truncation
        return (b"\xef\xbb\xbf" + data) if rng.random() < 0.5 else data[:rng.randrange(n)]
    return data + rng.choice(TOKENS)


class Fuzzer:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.work = tempfile.mkdtemp(prefix="dts-fuzz-")
        # A copy, so that rebuilding dts meanwhile does not disturb the run ("text file busy").
        self.original_dts = args.dts
        shutil.copy2(args.dts, os.path.join(self.work, "dts"))
        args.dts = os.path.join(self.work, "dts")
        self.failures = 0
        self.counts = {"inputs": 0, "config check processes": 0, "vm cmdline processes": 0,
                       "slow under load (ended when run again)": 0}
        self.corpus = []
        for directory in args.corpus:
            for name in sorted(os.listdir(directory)):
                if name.endswith(".cfg"):
                    with open(os.path.join(directory, name), "rb") as f:
                        self.corpus.append((name, f.read(), directory))
        self.global_cfg = next(data for name, data, _ in self.corpus if name == "virt_global.cfg")
        self.env = dict(os.environ, DTS_IMAGE_DIR="/var/cache/dts/images")
        self.env.pop("DTS_ACCEL", None)

    def make_input(self, index):
        """A directory holding one mutated config (and the virt_global.cfg a suite config needs)."""
        name, data, _ = self.rng.choice(self.corpus)
        for _ in range(self.rng.choice([1, 1, 2, 3, 6])):
            data = mutate(data, self.corpus, self.rng)
            if len(data) > MAX_BYTES:
                data = data[:MAX_BYTES]
        directory = os.path.join(self.work, "in%d" % index)
        os.makedirs(directory)
        if name in SPECIAL_FILES:
            path = os.path.join(directory, name)
            suite = None
        else:
            suite = "s%d" % index
            path = os.path.join(directory, suite + ".cfg")
            with open(os.path.join(directory, "virt_global.cfg"), "wb") as f:
                f.write(self.global_cfg)
        with open(path, "wb") as f:
            f.write(data)
        if name == "virt_global.cfg":  # a mutated global file, read beside an intact suite config
            suite = "s%d" % index
            base = self.rng.choice([d for n, d, _ in self.corpus if n not in SPECIAL_FILES])
            with open(os.path.join(directory, suite + ".cfg"), "wb") as f:
                f.write(base)
        return path, suite, data if suite and name != "virt_global.cfg" else None

    def run(self, argv, timeout):
        """(status, stdout, stderr); status is None for a hang, negative for a signal."""
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, env=self.env)
            return p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            return None, e.stdout or b"", e.stderr or b""

    @staticmethod
    def failed(status):
        return status is None or status not in (0, 2)

    def confirm_hang(self, argv, status, out, err):
        """A hang is run again alone: on a loaded machine (other builds, a CI job) an input that
        takes a second can miss a 30 s deadline. One that ends the second time is reported as slow
        (saved, printed, not a failure); one that hangs again is a failure."""
        if status is not None:
            return status, out, err
        started = time.monotonic()
        again = self.run(argv, self.args.timeout)
        if again[0] is None:
            return again
        self.counts["slow under load (ended when run again)"] += 1
        print("fuzz: slow, not hung: ended in %.1f s when run again alone: %s" % (time.monotonic() - started, " ".join(argv)[:200]),
              file=sys.stderr)
        return again

    def save(self, kind, argv, status, out, err, directories):
        self.failures += 1
        if self.failures > self.args.max_saved:
            return
        target = os.path.join(self.args.out, "%03d-%s" % (self.failures, kind))
        os.makedirs(target, exist_ok=True)
        for directory in directories:
            shutil.copytree(directory, os.path.join(target, os.path.basename(directory)), dirs_exist_ok=True)
        moved = [self.original_dts] + [a.replace(self.work + "/", "./") for a in argv[1:]]
        with open(os.path.join(target, "reproduce.sh"), "w") as f:
            f.write('#!/bin/sh\ncd "$(dirname "$0")"\n' + shlex.join(moved) + "\n")
        with open(os.path.join(target, "result.txt"), "wb") as f:
            what = "hang (no exit within %d s)" % self.args.timeout if status is None else (
                "killed by signal %d" % -status if status < 0 else "exit status %d" % status)
            f.write(what.encode() + b"\n--- stdout (end)\n" + out[-4000:] + b"\n--- stderr (end)\n" + err[-8000:])
        print("fuzz: FAILURE %s: %s -> %s" % (kind, " ".join(moved)[:200], target), file=sys.stderr)

    def check_batch(self, paths):
        """`dts config check` on many files at once; on a failure, each file alone."""
        argv = [self.args.dts, "config", "check", "--accel", "tcg"] + paths
        self.counts["config check processes"] += 1
        status, out, err = self.run(argv, self.args.timeout * len(paths))
        if not self.failed(status):
            return
        found = False
        for path in paths:
            one = argv[:5] + [path]
            self.counts["config check processes"] += 1
            status, out, err = self.confirm_hang(one, *self.run(one, self.args.timeout))
            if self.failed(status):
                found = True
                self.save("config-check", one, status, out, err, [os.path.dirname(path)])
        if not found:
            self.save("config-check-batch", argv, status, out, err, [os.path.dirname(p) for p in paths])

    def cmdline_argv(self, job):
        """`dts vm cmdline` for one suite config, for one of its sections (or vm0)."""
        path, suite, data = job
        directory = os.path.dirname(path)
        vm = "vm0"
        if data is not None and self.rng.random() < 0.7:
            names = re.findall(rb"(?m)^\s*\[([^\]\r\n\x00]*)\]", data[:1 << 16])
            names = [n for n in names if n]  # an empty value is ArgumentParser's usage error (exit 64)
            if names:
                vm = self.rng.choice(names)[:1000].decode("utf-8", "surrogateescape")
        # `--opt=value`: a value that starts with '-' stays a value.
        argv = [self.args.dts, "vm", "cmdline", "--conf-dir", directory, "--suite", suite, "--vm=" + vm,
                "--runtime-dir", os.path.join(directory, "run"), "--accel", self.rng.choice(["tcg", "kvm"])]
        if self.rng.random() < 0.3:
            device = mutate(b"driver=vhost-user,opt_path=./vhost-net,opt_mac=00:00:20:00:00:20", self.corpus, self.rng)
            # One argument holds at most 128 KiB on Linux (MAX_ARG_STRLEN); argv cannot hold NUL.
            device = device.replace(b"\x00", b"")[:1 << 16]
            # An empty value is ArgumentParser's usage error (exit status 64), not the reader's.
            if device:
                argv.append("--device=" + device.decode("utf-8", "surrogateescape"))
        if self.rng.random() < 0.2:
            argv.append(self.rng.choice(["--shell", "--explain"]))
        return argv, directory

    def loop(self):
        """Fuzzes until the deadline; the scratch directory goes on every exit (Ctrl-C too)."""
        try:
            self.fuzz_until(time.monotonic() + self.args.duration)
        finally:
            shutil.rmtree(self.work, ignore_errors=True)

    def fuzz_until(self, deadline):
        index = 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.args.jobs) as pool:
            while time.monotonic() < deadline:
                inputs = [self.make_input(index + i) for i in range(self.args.batch)]
                index += self.args.batch
                self.counts["inputs"] += len(inputs)
                commands = [self.cmdline_argv(job) for job in inputs if job[1] is not None]
                futures = [pool.submit(self.run, argv, self.args.timeout) for argv, _ in commands]
                self.check_batch([p for p, _, _ in inputs])
                for (argv, directory), future in zip(commands, futures):
                    status, out, err = self.confirm_hang(argv, *future.result())
                    self.counts["vm cmdline processes"] += 1
                    if self.failed(status):
                        self.save("vm-cmdline", argv, status, out, err, [directory])
                for p, _, _ in inputs:
                    shutil.rmtree(os.path.dirname(p), ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dts", required=True, help="the dts executable")
    parser.add_argument("--corpus", action="append", required=True, help="a directory of .cfg seeds (repeatable)")
    parser.add_argument("--duration", type=float, default=600, help="seconds to fuzz")
    parser.add_argument("--timeout", type=float, default=30, help="seconds one input may take")
    parser.add_argument("--seed", type=int, default=None, help="random seed (printed; default: from the clock)")
    parser.add_argument("--out", default="fuzz-failures", help="where failing inputs are saved")
    parser.add_argument("--batch", type=int, default=16, help="files per config check process")
    parser.add_argument("--jobs", type=int, default=2, help="vm cmdline processes at once")
    parser.add_argument("--max-saved", type=int, default=100, help="failures saved at most")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = int(time.time() * 1000) % (1 << 31)
    print("fuzz: seed %d, %d s, corpus %s, failures to %s" % (args.seed, args.duration, ", ".join(args.corpus), args.out))
    fuzzer = Fuzzer(args)
    start = time.monotonic()
    try:
        fuzzer.loop()
    except KeyboardInterrupt:
        print("fuzz: interrupted after %.0f s, failures %d" % (time.monotonic() - start, fuzzer.failures), file=sys.stderr)
        return 130
    counts = ", ".join("%s %d" % kv for kv in fuzzer.counts.items())
    print("fuzz: %.0f s, %s, failures %d" % (time.monotonic() - start, counts, fuzzer.failures))
    return 1 if fuzzer.failures else 0


if __name__ == "__main__":
    sys.exit(main())
