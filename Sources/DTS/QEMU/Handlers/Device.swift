/// `device = driver=vhost-user,opt_path=./vhost-net,opt_mac=00:00:20:00:00:20;` — emulated and
/// passed-through devices. Suites add more at run time with `setVMDevice`, as in DTS.
///
/// - `vhost-user`: `-chardev socket` + `-netdev vhost-user` + `-device virtio-net-pci`; `opt_queue`
///   > 1 adds `queues=N` and `mq=on` (and `vectors=2N+2` under KVM). Under TCG, MSI-X is turned
///   off (`vectors=0`): QEMU 7.2 crashes when a vhost-user device with MSI-X vectors starts
///   under TCG; every queue then shares the INTx line. `opt_settings` properties are checked
///   against QEMU's (``VirtioNetProperties``): packed ring, `disable-modern`, `mrg_rxbuf`,
///   checksum and TSO features, `host_mtu`, `rx_queue_size`/`tx_queue_size`.
/// - `virtio-net-pci`: a virtio NIC on a netdev defined elsewhere (`net`, `usercmd`).
/// - `vfio-pci`, `pci-assign`: a host PCI device passed through, with id `pt_N` so that its
///   guest address can be found in `info pci`. `pci-assign` (legacy KVM assignment, removed
///   from QEMU) is mapped to `vfio-pci`.
public enum DeviceParameter: VMParameterHandler {
    public static let spec = VMParamSchema.device

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        for entry in param.entries {
            switch entry["driver"] {
            case "vhost-user": addVhostUser(entry, into: &draft)
            case "virtio-net-pci": addVirtioNetPCI(entry, into: &draft)
            case "vfio-pci", "pci-assign": addPassthrough(entry, into: &draft)
            default: break // rejected by the schema
            }
        }
    }

    static func addVhostUser(_ entry: VirtEntry, into draft: inout CommandLineDraft) {
        let index = draft.vhostUserCount
        draft.vhostUserCount += 1
        let chardev = "vhostchar\(index)", netdev = "vhostnet\(index)"
        guard let socket = vhostUserSocket(entry, into: &draft) else { return }
        var charPairs: [(String, String)] = [("id", chardev), ("path", socket.path)]
        if socket.server { charPairs += [("server", "on"), ("wait", "off")] }
        draft.add("-chardev", QEMUOpts.join("socket", charPairs), note: socket.note)

        let queues = entry.int("opt_queue") ?? 1
        var netPairs: [(String, String)] = [("id", netdev), ("chardev", chardev), ("vhostforce", "on")]
        if queues > 1 { netPairs.append(("queues", String(queues))) }
        draft.add("-netdev", QEMUOpts.join("vhost-user", netPairs))
        draft.defineNetdev(netdev)

        var devPairs: [(String, String)] = [("netdev", netdev), ("id", "vhostdev\(index)")]
        devPairs.append(("mac", entry["opt_mac"] ?? draft.allocator.macAddress(vm: draft.context.vmName, index: 100 + index)))
        var notes: [String] = []
        if queues > 1 { devPairs.append(("mq", "on")) }
        if draft.context.accelerator == .tcg {
            devPairs.append(("vectors", "0"))
            notes.append("vectors=0: under TCG, QEMU 7.2 crashes when a vhost-user device starts with MSI-X on (INTx serves every queue)")
        } else if queues > 1 {
            devPairs.append(("vectors", String(2 * queues + 2)))
        }
        appendCommon(entry, to: &devPairs, defaults: ["mq", "vectors"], notes: &notes, draft: &draft)
        draft.add("-device", QEMUOpts.join("virtio-net-pci", devPairs), note: notes.isEmpty ? nil : notes.joined(separator: "; "))
    }

    /// The socket of a vhost-user device and who listens on it, as DTS suites write them:
    /// `opt_server` is yes/no/on/off or `server` (DTS passed it to QEMU as a chardev flag), and
    /// `opt_path` may end in `,server` (DTS suites append it in code; `,nowait`, `,server=on`,
    /// `,wait=off` too). Either way QEMU is the server. A relative path is resolved against the
    /// run's shared directory on the VM's host (``VMResourceAllocator/sharedDirectory``), where
    /// suites start their backends; DTS used the DUT's base directory.
    static func vhostUserSocket(_ entry: VirtEntry, into draft: inout CommandLineDraft) -> (path: String, server: Bool, note: String?)? {
        guard let pathOption = entry.option("opt_path") else { return nil }
        let parts = pathOption.value.scalarSplit(",")
        var path = parts[0]
        var server = entry["opt_server"].flatMap(ValueKind.parseServerMode) ?? false
        var notes: [String] = []
        let flags = parts.dropFirst()
        if !flags.isEmpty {
            for flag in flags where !["server", "server=on", "nowait", "wait=off"].contains(flag) {
                draft.fail(pathOption.location, spec.name,
                           "opt_path '\(pathOption.value)': ',\(flag)' after the path; only ',server' (QEMU listens) and ',nowait' may follow it")
                return nil
            }
            if flags.contains(where: { $0 == "server" || $0 == "server=on" }) {
                if entry["opt_server"].flatMap(ValueKind.parseServerMode) == false {
                    draft.fail(pathOption.location, spec.name, "opt_path ends in ',server' but opt_server=\(entry["opt_server"] ?? "") says QEMU is the client")
                    return nil
                }
                server = true
                notes.append("opt_path ends in ',server' (as DTS suites write it): QEMU listens on the socket")
            }
        }
        if !path.unicodeScalars.starts(with: "/".unicodeScalars) {
            var relative = path
            while relative.unicodeScalars.starts(with: "./".unicodeScalars) { relative = String(String.UnicodeScalarView(relative.unicodeScalars.dropFirst(2))) }
            path = draft.allocator.sharedDirectory + "/" + relative
            notes.append("opt_path \(parts[0]) is relative: resolved against the run's shared directory, where backends run (DTS used the DUT's base directory)")
        }
        return (path, server, notes.isEmpty ? nil : notes.joined(separator: "; "))
    }

    static func addVirtioNetPCI(_ entry: VirtEntry, into draft: inout CommandLineDraft) {
        guard let netdev = entry["opt_netdev"] else { return }
        draft.requireNetdev(netdev, at: entry.location(of: "opt_netdev"))
        var pairs: [(String, String)] = [("netdev", netdev)]
        if let id = entry["opt_id"] { pairs.append(("id", id)) }
        if let mac = entry["opt_mac"] { pairs.append(("mac", mac)) }
        if let bus = entry["opt_bus"] { pairs.append(("bus", bus)) }
        var notes: [String] = []
        appendCommon(entry, to: &pairs, notes: &notes, draft: &draft)
        draft.add("-device", QEMUOpts.join("virtio-net-pci", pairs), note: notes.isEmpty ? nil : notes.joined(separator: "; "))
    }

    /// `opt_addr`, `opt_legacy` and `opt_settings`, each `opt_settings` property checked against
    /// QEMU's (``VirtioNetProperties``). A property dts sets from a dedicated option (`mac`,
    /// `netdev`, `disable-modern` from `opt_legacy`, ...) may not be set again; one of `defaults`
    /// (what dts derives, `mq` and `vectors` from `opt_queue`) takes the `opt_settings` value, as
    /// DTS's suites write `opt_settings="mq=on,vectors=10"` with `opt_queue=4`. Under TCG
    /// `vectors` stays 0 whatever `opt_settings` says, with a note.
    static func appendCommon(_ entry: VirtEntry, to pairs: inout [(String, String)], defaults: Set<String> = [],
                             notes: inout [String], draft: inout CommandLineDraft) {
        if let slot = entry["opt_addr"].flatMap(ValueKind.normalizedSlot) { pairs.append(("addr", slot)) }
        if let legacy = entry.bool("opt_legacy") { pairs.append(("disable-modern", legacy ? "on" : "off")) }
        guard let text = entry["opt_settings"], let settings = ValueKind.parseProperties(text) else { return }
        let location = entry.location(of: "opt_settings")
        var index = Dictionary(pairs.enumerated().map { ($0.element.0, $0.offset) }, uniquingKeysWith: { first, _ in first })
        var failed = false
        for (key, value) in settings {
            if let at = index[key], !defaults.contains(key) {
                draft.fail(location, spec.name, "opt_settings sets '\(key)' which dts already sets to '\(pairs[at].1)'; use the dedicated option")
                failed = true
            } else if let problem = VirtioNetProperties.problem(key, value) {
                draft.fail(location, spec.name, "opt_settings: \(problem)")
                failed = true
            } else if let at = index[key] {
                if key == "vectors", draft.context.accelerator == .tcg, value != "0" {
                    notes.append("opt_settings' vectors=\(value) dropped: MSI-X stays off under TCG")
                } else {
                    pairs[at].1 = value
                }
            } else {
                index[key] = pairs.count
                pairs.append((key, value))
            }
        }
        guard !failed else { return }
        if VirtioNetProperties.bool("packed", in: pairs) == true, VirtioNetProperties.bool("disable-modern", in: pairs) == true {
            draft.fail(location, spec.name,
                       "packed=on with disable-modern on: a packed ring needs virtio 1.0 or later (VIRTIO_F_VERSION_1), which a legacy-only (0.95) device cannot offer")
        }
    }

    static func addPassthrough(_ entry: VirtEntry, into draft: inout CommandLineDraft) {
        guard let host = entry["opt_host"].flatMap(ValueKind.normalizedPCIAddress) else { return }
        let id = "pt_\(draft.passthrough.count)"
        draft.passthrough.append(.init(id: id, hostAddress: host, driver: "vfio-pci"))
        var pairs: [(String, String)] = [("host", host), ("id", id)]
        if let slot = entry["opt_addr"].flatMap(ValueKind.normalizedSlot) { pairs.append(("addr", slot)) }
        let note = entry["driver"] == "pci-assign" ? "pci-assign was removed from QEMU (2.12); VFIO does the same job" : nil
        draft.add("-device", QEMUOpts.join("vfio-pci", pairs), note: note)
    }
}
