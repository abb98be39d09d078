// swift-tools-version:6.0
// dts: a Swift framework for DPDK virtualization test suites.
import PackageDescription

let package = Package(
    name: "dts",
    products: [
        .executable(name: "dts", targets: ["DTSCommand"]),
        .library(name: "DTS", targets: ["DTS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // libssh2 from Debian (libssh2-1-dev), imported as a C module.
        .systemLibrary(
            name: "CLibSSH2",
            pkgConfig: "libssh2",
            providers: [.apt(["libssh2-1-dev"])]
        ),
        // libcrypto from Debian (libssl-dev; libssh2 links it already): SHA-256 of stored host keys,
        // and of the files a VM snapshot's key covers.
        .systemLibrary(
            name: "CLibCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // Small C helpers for what glibc only offers through macros or _GNU_SOURCE (CPU affinity,
        // posix_spawn's chdir and closefrom file actions, signal names).
        .target(name: "CSystemShims"),
        // Starting child processes (posix_spawn: process group, clean signal state, redirections,
        // no leaked descriptors) and reading /proc: used by the framework, the tests and the benchmarks.
        .target(name: "DTSProcess", dependencies: ["CSystemShims", "DTSSession"]),
        // What every DUT session speaks (host DUT, VM DUT, local or SSH): exec, sendExpect, file copy;
        // and the helpers every module shares (Duration in seconds and as text, a value tasks wait for).
        .target(name: "DTSSession"),
        // SSH sessions on libssh2: exec, interactive shell (sendExpect), file copy, host keys.
        .target(
            name: "DTSSSH",
            dependencies: ["CLibSSH2", "CLibCrypto", "CSystemShims", "DTSProcess", "DTSSession", .product(name: "Logging", package: "swift-log")]
        ),
        // QEMU's control channels: QMP, HMP over QMP, and the guest agent (QGA).
        .target(
            name: "DTSControl",
            dependencies: ["DTSSession", .product(name: "Logging", package: "swift-log")]
        ),
        // The framework: config loader, QEMUKvm and its parameter handlers, DUTs.
        .target(
            name: "DTS",
            dependencies: [
                "DTSSession", "DTSSSH", "DTSControl", "DTSProcess", "CSystemShims", "CLibCrypto",
                .product(name: "Logging", package: "swift-log"),
            ],
            // The Tester's scapy helper, a Python file so that it is linted and tested as Python.
            resources: [.copy("Tester/dts_packets.py")]
        ),
        // Test suites written against the framework.
        .target(
            name: "Suites",
            dependencies: ["DTS"],
            path: "suites"
        ),
        // The `dts` command: parses arguments and calls the library.
        .executableTarget(
            name: "DTSCommand",
            dependencies: [
                "DTS", "DTSProcess", "Suites",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Benchmarks (see the Makefile's bench-* targets).
        .executableTarget(
            name: "SessionBench",
            dependencies: ["DTSSSH", "DTSProcess", "DTSSession"],
            path: "Benchmarks/SessionBench"
        ),
        .executableTarget(
            name: "BootBench",
            dependencies: ["DTS", "DTSSSH", "DTSProcess"],
            path: "Benchmarks/BootBench"
        ),
        .executableTarget(
            name: "PerfBench",
            dependencies: ["DTS"],
            path: "Benchmarks/PerfBench"
        ),
        // What every test target shares: scratch directories, running a program, free ports, unix
        // sockets, "require this program", a locked box, and the shell conformance cases.
        .target(
            name: "DTSTestSupport",
            dependencies: ["DTSProcess", "DTSSession"],
            path: "Tests/DTSTestSupport"
        ),
        .testTarget(
            name: "DTSTests",
            dependencies: ["DTS", "DTSControl", "DTSProcess", "DTSTestSupport", "Suites"],
            exclude: ["Golden", "Fixtures"]
        ),
        .testTarget(name: "DTSSSHTests", dependencies: ["DTSSSH", "DTSProcess", "DTSTestSupport"]),
        .testTarget(name: "DTSControlTests", dependencies: ["DTSControl", "DTSProcess", "DTSTestSupport"]),
        .testTarget(name: "DTSProcessTests", dependencies: ["DTSProcess", "DTSTestSupport"]),
    ]
)
