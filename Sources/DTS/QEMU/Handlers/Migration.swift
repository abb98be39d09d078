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
