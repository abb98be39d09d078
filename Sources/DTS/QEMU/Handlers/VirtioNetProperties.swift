/// The properties of QEMU 7.2's `virtio-net-pci` (`qemu-system-x86_64 -device virtio-net-pci,help`)
/// that a device's `opt_settings` may set, with the values each takes. The device handler checks
/// every `opt_settings` pair against this table, so a typo (`mrg_rxbufs=on`) or a bad value
/// (`rx_queue_size=100`) is a config error with its file and line instead of a QEMU that refuses
/// to start, or, worse, a property silently meaning something else.
enum VirtioNetProperties {
    /// What a property takes.
    enum Kind: Equatable {
        /// QEMU's booleans: on/off, yes/no, true/false, y/n.
        case boolean
        /// on, off or auto.
        case onOffAuto
        /// A whole number in a range.
        case number(ClosedRange<Int>)
        /// A power of two in a range (virtqueue sizes).
        case powerOfTwo(ClosedRange<Int>)
        /// One of some words.
        case word([String])
        /// Any text.
        case text
    }

    static let kinds: [String: Kind] = {
        var kinds: [String: Kind] = [:]
        for name in ["aer", "any_layout", "ats", "csum", "ctrl_guest_offloads", "ctrl_mac_addr", "ctrl_rx", "ctrl_rx_extra",
                     "ctrl_vlan", "ctrl_vq", "disable-modern", "event_idx", "failover", "gso", "guest_announce", "guest_csum",
                     "guest_ecn", "guest_rsc_ext", "guest_tso4", "guest_tso6", "guest_ufo", "hash", "host_ecn", "host_tso4",
                     "host_tso6", "host_ufo", "indirect_desc", "ioeventfd", "iommu_platform", "migrate-extra", "modern-pio-notify",
                     "mq", "mrg_rxbuf", "multifunction", "notify_on_empty", "packed", "page-per-vq", "queue_reset", "rss", "status",
                     "use-disabled-flag", "use-started", "virtio-pci-bus-master-bug-migration", "x-ats-page-aligned",
                     "x-disable-legacy-check", "x-disable-pcie", "x-ignore-backend-features", "x-mtu-bypass-backend",
                     "x-pcie-deverr-init", "x-pcie-extcap-init", "x-pcie-flr-init", "x-pcie-lnkctl-init", "x-pcie-lnksta-dllla",
                     "x-pcie-pm-init"] {
            kinds[name] = .boolean
        }
        kinds["disable-legacy"] = .onOffAuto
        // An MTU the guest is told to use (VIRTIO_NET_F_MTU): 68 is IPv4's minimum.
        kinds["host_mtu"] = .number(68...65535)
        // QEMU accepts powers of two from 256 (the minimum) to 1024 (VIRTQUEUE_MAX_SIZE); a TX
        // queue above 256 needs a vhost-user backend, which these devices have.
        kinds["rx_queue_size"] = .powerOfTwo(256...1024)
        kinds["tx_queue_size"] = .powerOfTwo(256...1024)
        kinds["vectors"] = .number(0...2048)
        kinds["speed"] = .number(-1...Int(Int32.max))
        kinds["duplex"] = .word(["half", "full"])
        kinds["tx"] = .word(["timer", "bh"])
        for name in ["acpi-index", "rombar", "romsize", "rsc_interval", "x-txtimer"] { kinds[name] = .number(0...Int(UInt32.max)) }
        for name in ["bootindex", "x-txburst"] { kinds[name] = .number(Int(Int32.min)...Int(Int32.max)) }
        for name in ["failover_pair_id", "romfile"] { kinds[name] = .text }
        return kinds
    }()

    /// Properties a device option sets.
    static let dedicated = ["mac": "opt_mac", "addr": "opt_addr", "netdev": "opt_netdev (virtio-net-pci) or opt_path (vhost-user)",
                            "id": "opt_id", "bus": "opt_bus"]

    static let booleans: [String: Bool] = ["on": true, "yes": true, "true": true, "y": true, "off": false, "no": false, "false": false, "n": false]

    /// Why `value` is not a value of property `name`, or `nil` when it is.
    static func problem(_ name: String, _ value: String) -> String? {
        if let option = dedicated[name] { return "'\(name)' has its own option: use \(option)" }
        guard let kind = kinds[name] else {
            let suggestion = Spelling.closest(to: name, in: Array(kinds.keys)).map { " (did you mean '\($0)'?)" } ?? ""
            return "unknown virtio-net-pci property '\(name)'\(suggestion); QEMU 7.2 lists them with: qemu-system-x86_64 -device virtio-net-pci,help"
        }
        switch kind {
        case .boolean:
            return booleans[value.lowercased()] == nil ? "\(name)=\(value): expected on or off" : nil
        case .onOffAuto:
            return ["on", "off", "auto"].contains(value.lowercased()) ? nil : "\(name)=\(value): expected on, off or auto"
        case .number(let range):
            guard let number = ConfigText.decimal(value.hasPrefix("-") ? value.dropFirst() : value[...]).map({ value.hasPrefix("-") ? -$0 : $0 }),
                  range.contains(number) else {
                return "\(name)=\(value): expected a whole number from \(range.lowerBound) to \(range.upperBound)"
            }
            return nil
        case .powerOfTwo(let range):
            guard let number = ConfigText.decimal(value), range.contains(number), number & (number - 1) == 0 else {
                return "\(name)=\(value): expected a power of two from \(range.lowerBound) to \(range.upperBound)"
            }
            return nil
        case .word(let words):
            return words.contains(value) ? nil : "\(name)=\(value): expected one of \(words.joined(separator: ", "))"
        case .text:
            return value.isEmpty ? "\(name) is empty" : nil
        }
    }

    /// The value of boolean property `name` in `pairs`, if set.
    static func bool(_ name: String, in pairs: [(String, String)]) -> Bool? {
        pairs.last { $0.0 == name }.flatMap { booleans[$0.1.lowercased()] }
    }
}
