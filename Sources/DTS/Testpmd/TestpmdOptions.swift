/// Which CPUs testpmd's lcores run on (EAL `-l` or `--lcores`).
public enum TestpmdCores: Sendable, Equatable {
    /// `-l LIST`: one lcore per CPU, e.g. `0-1` or `0,1`. The first is the main lcore.
    case list(String)
    /// `--lcores MAP`: lcores mapped onto CPUs, e.g. `0@1,1@0` (two testpmds on a 2-core host) or
    /// `0@0,1@0` (main and forwarding lcore on one vCPU).
    case lcores(String)

    var arguments: [String] {
        switch self {
        case .list(let list): return ["-l", list]
        case .lcores(let map): return ["--lcores", map]
        }
    }
}

/// Where testpmd's memory comes from.
public enum TestpmdMemory: Sendable, Equatable {
    /// `--no-huge -m MB`: plain (shareable) memory; enough for vdev-only topologies on the host.
    /// 1024 is the least that holds the default mbuf pool.
    case noHuge(megabytes: Int)
    /// Hugepages (needed for PCI devices bound to `vfio-pci`/`uio_pci_generic`, and for
    /// `dpdk-pdump` as a secondary process). `megabytes` adds `-m MB`; `nil` takes what is free.
    case hugepages(megabytes: Int?)

    var arguments: [String] {
        switch self {
        case .noHuge(let mb): return ["--no-huge", "-m", String(mb)]
        case .hugepages(let mb?): return ["-m", String(mb)]
        case .hugepages(nil): return []
        }
    }
}

/// A DPDK virtual device (`--vdev name,key=value,...`), built from typed pieces.
///
/// ```swift
/// Vdev.vhost(0, iface: run + "/vhost-net0", queues: 1, client: true)        // net_vhost0,iface=...,queues=1,client=1
/// Vdev.virtioUser(0, path: run + "/vhost-net0", mac: "00:01:02:03:04:05")  // net_virtio_user0,mac=...,path=...,queues=1
/// Vdev.null(0)                                                              // net_null0: endless 64-byte frames on RX
/// ```
public struct Vdev: Sendable, Equatable, CustomStringConvertible {
    /// The device name with its index, e.g. `net_vhost0`.
    public var name: String
    /// Its arguments, in order.
    public var arguments: [Argument]

    /// One `key=value` argument.
    public struct Argument: Sendable, Equatable {
        public var key: String
        public var value: String
        public init(_ key: String, _ value: String) {
            self.key = key
            self.value = value
        }
    }

    /// A device from its name and arguments.
    public init(_ name: String, _ arguments: [Argument] = []) {
        self.name = name
        self.arguments = arguments
    }

    /// `net_vhostN,iface=PATH,queues=Q[,client=1]` and extra arguments (`tso=1`, ...).
    /// `client`: testpmd connects to a socket QEMU listens on (the VM's device has `opt_server=yes`).
    public static func vhost(_ index: Int, iface: String, queues: Int = 1, client: Bool = false, _ extra: [Argument] = []) -> Vdev {
        var arguments = [Argument("iface", iface), Argument("queues", String(queues))]
        if client { arguments.append(Argument("client", "1")) }
        return Vdev("net_vhost\(index)", arguments + extra)
    }

    /// `net_virtio_userN,[mac=MAC,]path=PATH,queues=Q[,server=1]` and extra arguments
    /// (`packed_vq=1`, `mrg_rxbuf=0`, `in_order=1`, `vectorized=1`, ...).
    public static func virtioUser(_ index: Int, path: String, mac: String? = nil, queues: Int = 1, server: Bool = false,
                                  _ extra: [Argument] = []) -> Vdev {
        var arguments = mac.map { [Argument("mac", $0)] } ?? []
        arguments += [Argument("path", path), Argument("queues", String(queues))]
        if server { arguments.append(Argument("server", "1")) }
        return Vdev("net_virtio_user\(index)", arguments + extra)
    }

    /// `net_nullN[,size=S]`: receives endless frames of `size` bytes (64 by default), drops what it sends.
    public static func null(_ index: Int, size: Int? = nil, _ extra: [Argument] = []) -> Vdev {
        Vdev("net_null\(index)", (size.map { [Argument("size", String($0))] } ?? []) + extra)
    }

    /// `net_tapN,iface=NAME`: a kernel TAP interface.
    public static func tap(_ index: Int, iface: String, _ extra: [Argument] = []) -> Vdev {
        Vdev("net_tap\(index)", [Argument("iface", iface)] + extra)
    }

    /// The `--vdev` value.
    public var description: String {
        ([name] + arguments.map { "\($0.key)=\($0.value)" }).joined(separator: ",")
    }

    /// Why this device cannot be passed to DPDK as is (a `,` or `=` inside a value, an empty
    /// name), or `nil`.
    public var problem: String? {
        guard !name.isEmpty, !name.unicodeScalars.contains(where: { $0 == "," || $0 == "=" || $0.properties.isWhitespace }) else {
            return "vdev name '\(name)' is empty or holds ',', '=' or a space"
        }
        for argument in arguments {
            if argument.key.isEmpty || argument.key.unicodeScalars.contains(where: { $0 == "," || $0 == "=" }) {
                return "vdev \(name): argument name '\(argument.key)' is empty or holds ',' or '='"
            }
            if argument.value.unicodeScalars.contains(where: { $0 == "," || $0 == "\n" }) {
                return "vdev \(name): the value of \(argument.key) ('\(argument.value)') holds ',' or a line break, which DPDK's devargs cannot carry"
            }
        }
        return nil
    }
}

/// How to start `dpdk-testpmd` (DTS's `PmdOutput.start_testpmd(cores, param, eal_param, ...)`):
/// EAL arguments, then `-- -i` and the application's own arguments.
///
/// ```swift
/// var options = TestpmdOptions(filePrefix: "vhost-user", cores: .list("0,1"), memory: .noHuge(megabytes: 1024))
/// options.vdevs = [.vhost(0, iface: dir + "/vhost-net0"), .vhost(1, iface: dir + "/vhost-net1")]
/// options.noPCI = true
/// options.arguments = ["--nb-cores=1", "--txd=1024", "--rxd=1024"]
/// ```
public struct TestpmdOptions: Sendable {
    /// The testpmd binary.
    public var binary: String = "dpdk-testpmd"
    /// A command testpmd runs under, e.g. `["ip", "netns", "exec", "tst"]` for the tester's
    /// namespace (it must exec testpmd, keeping its pid).
    public var launcher: [String] = []
    /// DPDK `--file-prefix`: the instance's name (its `/var/run/dpdk/<prefix>` and hugepage files).
    /// Letters, digits, `-` and `_`.
    public var filePrefix: String
    /// The lcores.
    public var cores: TestpmdCores
    /// The memory.
    public var memory: TestpmdMemory
    /// `--no-pci`: no PCI device (vdevs only).
    public var noPCI: Bool = false
    /// PCI devices to use (`-a`, each `0000:00:04.0` or `0000:00:04.0,vectorized=1`); empty: all DPDK finds.
    public var allowedDevices: [String] = []
    /// Virtual devices (`--vdev`), in port order.
    public var vdevs: [Vdev] = []
    /// Other EAL arguments (`--single-file-segments`, `--log-level=...`).
    public var extraEAL: [String] = []
    /// testpmd's own arguments after `-- -i` (`--nb-cores=1`, `--txd=1024`, `--port-topology=chained`, ...).
    public var arguments: [String] = []
    /// A directory on the target for the pid file.
    public var workDirectory: String = "/tmp"
    /// How long to wait for the first `testpmd> ` prompt.
    public var startTimeout: Duration = .seconds(90)

    /// Options with the required pieces; the rest has defaults.
    public init(filePrefix: String, cores: TestpmdCores, memory: TestpmdMemory) {
        self.filePrefix = filePrefix
        self.cores = cores
        self.memory = memory
    }

    /// The full command line.
    public var argv: [String] {
        var argv = launcher + [binary] + cores.arguments + memory.arguments
        if noPCI { argv.append("--no-pci") }
        argv.append("--file-prefix=\(filePrefix)")
        argv += allowedDevices.flatMap { ["-a", $0] }
        argv += vdevs.flatMap { ["--vdev", $0.description] }
        return argv + extraEAL + ["--", "-i"] + arguments
    }

    /// The pid file testpmd's launcher writes.
    public var pidFile: String { workDirectory + "/dts-testpmd-\(filePrefix).pid" }

    /// What is wrong with the options, or `nil`.
    public var problem: String? {
        if filePrefix.isEmpty || !filePrefix.unicodeScalars.allSatisfy({ Self.prefixScalars.contains($0) }) {
            return "invalid file prefix '\(filePrefix)': use letters, digits, - and _"
        }
        if let problem = vdevs.lazy.compactMap(\.problem).first { return problem }
        if case .noHuge(let mb) = memory, mb <= 0 { return "--no-huge needs -m above 0, got \(mb)" }
        if noPCI, !allowedDevices.isEmpty { return "--no-pci with allowed PCI devices \(allowedDevices)" }
        return nil
    }

    private static let prefixScalars = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_".unicodeScalars)
}

/// testpmd's forwarding engines (`set fwd MODE`).
public enum TestpmdForwardMode: String, Sendable, CaseIterable {
    /// Forward as received.
    case io
    /// Forward, rewriting the MAC addresses (destination: the peer).
    case mac
    /// Forward, swapping source and destination MAC.
    case macswap
    /// Receive and drop.
    case rxonly
    /// Send generated frames (`set txpkts`), receive nothing.
    case txonly
    /// Checksum engine.
    case csum
    /// Answer ARP and ICMP echo requests.
    case icmpecho
    /// Forward with a 5-tuple swap.
    case fivetuple = "5tswap"
}
