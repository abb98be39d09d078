/// `migration = enable=yes,port=4444;` — wait for an incoming migration.
public enum MigrationParameter: VMParameterHandler {
    public static let spec = VMParamSchema.migration

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        guard let entry = param.entries.last, entry.bool("enable") == true else { return }
        guard let port = draft.configuredOrAllocated(entry.int("port"), "a migration port", at: entry.location, spec.name, { allocator, vm in
            try allocator.migrationPort(vm: vm)
        }) else { return }
        draft.ports.migration = port
        draft.add("-incoming", "tcp:\(draft.allocator.listenAddress):\(port)")
    }
}
