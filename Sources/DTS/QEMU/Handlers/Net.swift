/// `net = type=nic,opt_addr=1f; type=user;` — guest NICs and their host backends.
///
/// DTS wrote `-net nic,vlan=0 -net user,vlan=0`; QEMU dropped `vlan=` (hubs) in 3.0. dts keeps
/// the config and pairs each `nic` with a backend (`user`, `tap`, `bridge`) instead: within one
/// `opt_vlan` number (default 0), the first nic takes the first backend, the second the second,
/// and so on. Each pair becomes `-netdev <backend>,id=hostnetN -device <model>,netdev=hostnetN`.
///
/// The default `net` (added in code, as in DTS) is the management pair: an e1000 at guest PCI
/// slot 0x1f and a user network whose host port forwards to the guest's SSH port.
public enum NetParameter: VMParameterHandler {
    public static let spec = VMParamSchema.net

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        // Grouped by opt_vlan in one pass (a config may hold thousands of entries); each nic
        // keeps its written position, by which the pairs are emitted.
        var nics: [Int: [(position: Int, entry: VirtEntry)]] = [:]
        var backends: [Int: [VirtEntry]] = [:]
        var nicPosition = 0
        for entry in param.entries {
            let vlan = entry.int("opt_vlan") ?? 0
            if entry["type"] == "nic" {
                nics[vlan, default: []].append((nicPosition, entry))
                nicPosition += 1
            } else {
                backends[vlan, default: []].append(entry)
            }
        }

        var pairs: [(position: Int, nic: VirtEntry, backend: VirtEntry)] = []
        for vlan in Set(nics.keys).union(backends.keys).sorted() {
            let n = nics[vlan] ?? [], b = backends[vlan] ?? []
            for (nic, backend) in zip(n, b) { pairs.append((nic.position, nic.entry, backend)) }
            for extra in n.dropFirst(b.count) {
                draft.fail(extra.entry.location, spec.name,
                           "nic '\(extra.entry.text)' has no backend on opt_vlan=\(vlan); add 'type=user' or 'type=tap' with the same opt_vlan")
            }
            for extra in b.dropFirst(n.count) {
                draft.fail(extra.location, spec.name,
                           "backend '\(extra.text)' has no nic on opt_vlan=\(vlan); add 'type=nic' with the same opt_vlan")
            }
        }
        // Emit pairs in the order the nics were written.
        pairs.sort { $0.position < $1.position }
        for (_, nic, backend) in pairs {
            let id = "hostnet\(draft.nicCount)"
            emitBackend(backend, id: id, into: &draft)
            emitNIC(nic, netdev: id, privateLink: backend["type"] == "user", into: &draft)
            draft.nicCount += 1
        }
    }

    /// A config whose `net` has no user network forwarding to the guest's SSH port (DTS reached
    /// such VMs over their bridge, as `sriov_kvm.cfg` does) still gets dts's way in: the
    /// management pair of the built-in defaults, added after the config's own NICs, with a
    /// warning (its NIC at guest slot 0x1f, unless the config put a device there).
    static func addManagementIfMissing(into draft: inout CommandLineDraft, params: [VirtParam]) {
        // A net whose forward found no free port has its error already: no second NIC for it.
        guard draft.ports.ssh == nil, !draft.failedAllocations.contains(spec.name), let net = params.last(where: { $0.name == spec.name }),
              let management = VirtConfig.builtInDefaults(vm: draft.context.vmName).last(where: { $0.name == spec.name }),
              var nic = management.entries.first(where: { $0["type"] == "nic" }),
              let user = management.entries.first(where: { $0["type"] == "user" }) else { return }
        let slots = params.filter { $0.name == spec.name || $0.name == DeviceParameter.spec.name }
            .flatMap(\.entries).compactMap { $0["opt_addr"].flatMap(ValueKind.normalizedSlot) }
        let slot1fTaken = slots.contains { $0 == "1f" || $0.unicodeScalars.starts(with: "1f.".unicodeScalars) }
        if slot1fTaken { nic.options.removeAll { $0.key == "opt_addr" } }
        draft.warn(net.location, spec.name,
                   "no net forwards a host port to guest port 22 (SSH); DTS reached such a VM over its bridge: dts adds its management NIC"
                       + (slot1fTaken ? "" : " at guest slot 0x1f") + " on a user network with an SSH forward; VM DUTs leave it out of their test ports")
        let id = "hostnet\(draft.nicCount)"
        emitBackend(user, id: id, into: &draft)
        emitNIC(nic, netdev: id, privateLink: true, into: &draft)
        draft.nicCount += 1
    }

    static func emitBackend(_ entry: VirtEntry, id: String, into draft: inout CommandLineDraft) {
        draft.defineNetdev(id)
        switch entry["type"] {
        case "user":
            var forward: ValueKind.HostForward
            var note: String?
            if let text = entry["opt_hostfwd"], let parsed = ValueKind.parseHostForward(text) {
                forward = parsed
                draft.fixed(port: parsed.hostPort, "the host forward \(text)", at: entry.location(of: "opt_hostfwd"), spec.name)
            } else {
                let address = draft.allocator.listenAddress
                guard let port = draft.allocate("a host port for SSH", at: entry.location, spec.name, { allocator, vm in
                    try allocator.hostForwardPort(vm: vm, guestPort: 22)
                }) else { return }
                forward = .init(proto: "tcp", hostAddress: address, hostPort: port, guestAddress: "", guestPort: 22)
                note = "management network: host port \(port) forwards to the guest's SSH port"
            }
            if forward.proto == "tcp", forward.guestPort == 22, draft.ports.ssh == nil {
                draft.ports.ssh = forward.hostPort
                draft.ports.sshAddress = forward.hostAddress.isEmpty ? "127.0.0.1" : forward.hostAddress
            }
            draft.add("-netdev", QEMUOpts.join("user", [("id", id), ("hostfwd", forward.qemuSyntax)]), note: note)
        case "tap":
            if let script = entry["opt_script"] {
                if entry["opt_br"] != nil {
                    draft.fail(entry.location(of: "opt_br"), spec.name,
                               "opt_br and opt_script both given: the script attaches the TAP itself; drop one")
                }
                var pairs: [(String, String)] = [("id", id)]
                if let name = entry["opt_ifname"] { pairs.append(("ifname", name)) }
                pairs.append(("script", script))
                pairs.append(("downscript", entry["opt_downscript"] ?? "no"))
                draft.add("-netdev", QEMUOpts.join("tap", pairs))
            } else {
                if entry["opt_downscript"] != nil {
                    draft.fail(entry.location(of: "opt_downscript"), spec.name, "opt_downscript needs opt_script")
                }
                if entry["opt_ifname"] != nil {
                    draft.fail(entry.location(of: "opt_ifname"), spec.name,
                               "opt_ifname needs opt_script (QEMU's bridge helper names the TAP itself)")
                }
                draft.add("-netdev", QEMUOpts.join("bridge", [("id", id), ("br", entry["opt_br"] ?? "br0")]),
                          note: "DTS generated an ifup script for opt_br; QEMU's bridge helper attaches the TAP instead (/etc/qemu/bridge.conf must allow the bridge)")
            }
        default: // bridge
            draft.add("-netdev", QEMUOpts.join("bridge", [("id", id), ("br", entry["opt_br"] ?? "br0")]))
        }
    }

    /// Guest PCI slot 0x1f is free on some machine families (i440fx, virt) and taken on others
    /// (q35: the LPC bridge). The error goes to the `machine` line when the machine was chosen
    /// there: the default management nic sits at 0x1f, so the machine is what to change.
    static func checkSlot1f(of entry: VirtEntry, in draft: inout CommandLineDraft) {
        let machine = draft.context.machine, architecture = draft.context.architecture
        let family = architecture.family(of: machine)
        if let family, family.slot1fOwner == nil { return }
        let nicLocation = entry.location(of: "opt_addr")
        let nic = nicLocation.line > 0
            ? "the nic at \(nicLocation.file.scalarSplit("/").last ?? nicLocation.file):\(nicLocation.line)"
            : "the management nic (\(nicLocation.file))"
        let free = architecture.machineFamilies.filter { $0.slot1fOwner == nil }
            .map { "\($0.name) (\($0.patterns.joined(separator: ", ")))" }.joined(separator: " or ")
        let reason = family.map { "machine '\(machine)' is a \($0.name) machine, whose guest PCI slot 0x1f holds \($0.slot1fOwner ?? "a device"); \(nic) asks for slot 0x1f" }
            ?? "dts does not know whether guest PCI slot 0x1f, which \(nic) asks for, is free on machine '\(machine)'"
        let message = "\(reason); use a machine of family \(free), or give the nic another opt_addr"
        if let machineLocation = draft.context.machineLocation {
            draft.fail(machineLocation, "machine", message)
        } else {
            draft.fail(nicLocation, spec.name, message)
        }
    }

    /// A nic on a `user` backend (`privateLink`) is alone on its link: QEMU's user network is
    /// private to each VM, so its MAC need not differ between runs, and is derived from the VM's
    /// name and the nic's index only. A MAC that stays the same lets a snapshot of the VM taken in
    /// one run be restored in the next (warm boot); nics on shared links (tap, bridge) get the
    /// allocator's MAC, unique to the run.
    static func emitNIC(_ entry: VirtEntry, netdev: String, privateLink: Bool, into draft: inout CommandLineDraft) {
        let model = entry["opt_model"] ?? "e1000"
        var pairs: [(String, String)] = [("netdev", netdev), ("id", entry["opt_name"] ?? "nic\(draft.nicCount)")]
        let mac = entry["opt_macaddr"]
            ?? (privateLink ? MACAddress.derived(vm: draft.context.vmName, index: draft.nicCount)
                            : draft.allocator.macAddress(vm: draft.context.vmName, index: draft.nicCount))
        pairs.append(("mac", mac))
        if let slot = entry["opt_addr"].flatMap(ValueKind.normalizedSlot) {
            if slot == "1f" || slot.unicodeScalars.starts(with: "1f.".unicodeScalars) {
                checkSlot1f(of: entry, in: &draft)
            }
            pairs.append(("addr", slot))
        }
        if let vectors = entry["opt_vectors"] {
            if model != "virtio-net-pci" {
                draft.fail(entry.location(of: "opt_vectors"), spec.name, "opt_vectors applies to opt_model=virtio-net-pci only (model is \(model))")
            }
            pairs.append(("vectors", vectors))
        }
        draft.add("-device", QEMUOpts.join(model, pairs))
    }
}
