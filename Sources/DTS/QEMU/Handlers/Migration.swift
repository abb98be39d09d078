/// `migration = enable=yes,port=4444;` — wait for an incoming live migration.
///
/// DTS listened on every address (`-incoming tcp::PORT`). dts listens where the VM's host is
/// reached: the DUT's own address (`dut_ip`) when the DUT is remote, so that the source VM on
/// another DUT can connect, and the loopback address when QEMU runs on this machine. A port left
/// out is allocated.
public enum MigrationParameter: VMParameterHandler {
    public static let spec = VMParamSchema.migration

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        guard let entry = param.entries.last, entry.bool("enable") == true else { return }
        guard let port = draft.configuredOrAllocated(entry.int("port"), "a migration port", at: entry.location, spec.name, { allocator, vm in
            try allocator.migrationPort(vm: vm)
        }) else { return }
        draft.ports.migration = port
        let address = draft.allocator.listenAddress
        draft.add("-incoming", "tcp:\(address):\(port)",
                  note: "DTS listened on every address (tcp::\(port)); dts listens on \(address), the address the VM's host is reached at")
    }
}
