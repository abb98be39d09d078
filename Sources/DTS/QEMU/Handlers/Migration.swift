/// `migration = enable=yes,port=4444;` — wait for an incoming migration.
public enum MigrationParameter: VMParameterHandler {
    public static let spec = VMParamSchema.migration

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        guard let entry = param.entries.last, entry.bool("enable") == true else { return }
        guard let port = builder.configuredOrAllocated(entry.int("port"), "a migration port", at: entry.location, spec.name, { allocator, vm in
            try allocator.migrationPort(vm: vm)
        }) else { return }
        builder.ports.migration = port
        builder.add("-incoming", "tcp:\(builder.allocator.listenAddress):\(port)")
    }
}
