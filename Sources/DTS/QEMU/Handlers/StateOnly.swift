/// `login = user=root,password=tester;` — guest credentials for SSH. No QEMU arguments.
public enum LoginParameter: VMParameterHandler {
    public static let spec = ParamSpec(name: "login", summary: "guest login for SSH", options: [
        OptionSpec("user", .text, required: true, "user name"),
        OptionSpec("password", .text, "password"),
    ])

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        guard let entry = param.entries.last, let user = entry["user"] else { return }
        builder.login = .init(user: user, password: entry["password"])
    }
}

/// `start = wait_seconds=120,login_timeout=60,...;` — deadlines for bringing the VM up.
public enum StartParameter: VMParameterHandler {
    public static let spec = ParamSpec(name: "start", summary: "start-up deadlines", options: [
        OptionSpec("wait_seconds", .integer(1...3600), default: "120", "deadline for the guest to boot (guest agent and management address)"),
        OptionSpec("login_timeout", .integer(1...3600), default: "60", "deadline for the SSH login"),
        OptionSpec("login_prompt", .text, default: "login:", "kept for DTS configs; dts logs in over SSH"),
        OptionSpec("password_prompt", .text, default: "Password:", "kept for DTS configs; dts logs in over SSH"),
    ])

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        guard let entry = param.entries.last else { return }
        if let n = entry.int("wait_seconds") { builder.start.waitSeconds = n }
        if let n = entry.int("login_timeout") { builder.start.loginTimeout = n }
        if let s = entry["login_prompt"] { builder.start.loginPrompt = s }
        if let s = entry["password_prompt"] { builder.start.passwordPrompt = s }
    }
}

/// `def_driver = driver_name=vfio-pci;` — the host driver passthrough devices are bound to.
public enum DefDriverParameter: VMParameterHandler {
    public static let spec = ParamSpec(name: "def_driver", summary: "host driver for passthrough devices", options: [
        OptionSpec("driver_name", .choice(["vfio-pci", "igb_uio", "uio_pci_generic", "pci-stub"]), required: true, "driver name"),
    ])

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        builder.defaultDriver = param.entries.last?["driver_name"]
    }
}

/// `usercmd = cmd="-device e1000,netdev=x";` — raw QEMU arguments, appended as given.
///
/// The command is split into words (blanks separate, quotes group) without any shell
/// expansion; the words become argv entries, never a shell string.
public enum UserCmdParameter: VMParameterHandler {
    public static let spec = ParamSpec(name: "usercmd", summary: "raw QEMU arguments", repeatable: true, options: [
        OptionSpec("cmd", .words, required: true, "arguments, split into words like a shell would, without expansion (quote values holding , or ;)"),
    ])

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        for entry in param.entries {
            guard let cmd = entry["cmd"], case .success(let words) = ValueKind.splitWords(cmd) else { continue }
            // Netdevs declared here may be used by device driver=virtio-net-pci.
            for (index, word) in words.enumerated() where word == "-netdev" && index + 1 < words.count {
                for part in words[index + 1].split(separator: ",") where part.hasPrefix("id=") {
                    builder.defineNetdev(String(part.dropFirst(3)))
                }
            }
            builder.add(contentsOf: words)
        }
    }
}

/// `migration = enable=yes,port=4444;` — wait for an incoming migration.
public enum MigrationParameter: VMParameterHandler {
    public static let spec = ParamSpec(name: "migration", summary: "incoming live migration", options: [
        OptionSpec("enable", .boolean, required: true, "yes: -incoming tcp"),
        OptionSpec("port", .port, default: "allocated", "TCP port to listen on"),
    ])

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        guard let entry = param.entries.last, entry.bool("enable") == true else { return }
        guard let port = builder.configuredOrAllocated(entry.int("port"), "a migration port", at: entry.location, spec.name, { allocator, vm in
            try allocator.migrationPort(vm: vm)
        }) else { return }
        builder.ports.migration = port
        builder.add("-incoming", "tcp:\(builder.allocator.listenAddress):\(port)")
    }
}
