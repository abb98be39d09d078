/// The option schema of every VM parameter, in documentation order (``VMParamSchema/all``).
///
/// These say what a config may write; what QEMU arguments a parameter becomes is its handler's job.
extension VMParamSchema {
    /// `qemu`: the emulator binary.
    public static let qemu = ParamSpec(name: "qemu", summary: "the emulator binary", repeatable: true, options: [
        OptionSpec("path", .path, required: true, default: "qemu-system-<arch>",
                   "path of the QEMU binary; of several entries the last that is an executable file on the host runs; its name selects the guest architecture"),
    ])

    /// `virt_type`: the hypervisor (DTS's choice between its QEMU/KVM and libvirt back ends).
    public static let virtType = ParamSpec(name: "virt_type", summary: "the hypervisor", discriminator: "virt_type", repeatable: false, variants: [
        .init("KVM", "QEMU/KVM, the only hypervisor dts runs (the default)", []),
    ], removed: [
        "LIBVIRT": "dts runs VMs with QEMU/KVM only; the libvirt hypervisor (LibvirtKvm in DTS) is not available; remove virt_type or write virt_type=KVM",
        "XEN": "dts runs VMs with QEMU/KVM only; the Xen hypervisor is not available; remove virt_type or write virt_type=KVM",
    ])

    /// `name`: the VM's name.
    public static let name = ParamSpec(name: "name", summary: "the VM's name", options: [
        OptionSpec("name", .text, required: true, default: "the section name", "shown by QEMU and used in runtime file names"),
    ])

    /// `enable_kvm`: hardware acceleration.
    public static let enableKVM = ParamSpec(name: "enable_kvm", summary: "hardware acceleration", options: [
        OptionSpec("enable", .boolean, required: true, default: "yes", "yes: -accel kvm; no: -accel tcg (software emulation)"),
    ])

    /// `machine`: the machine type.
    public static let machine = ParamSpec(name: "machine", summary: "the machine type", options: [
        OptionSpec("machine", .text, default: "pc on x86_64, virt on aarch64", "QEMU machine type"),
        OptionSpec("opt_gic_version", .integer(2...4), "GIC version on aarch64 virt machines"),
    ])

    /// `pid_file`: QEMU's pid file.
    public static let pidFile = ParamSpec(name: "pid_file", summary: "QEMU's pid file", options: [
        OptionSpec("name", .path, default: "<runtime dir>/qemu.pid", "path of the pid file"),
    ])

    /// `daemon`: QEMU daemonizes itself.
    public static let daemon = ParamSpec(name: "daemon", summary: "QEMU daemonizes itself", options: [
        OptionSpec("enable", .boolean, required: true, default: "no", "yes: -daemonize"),
    ])

    /// `monitor`: the human monitor.
    public static let monitor = ParamSpec(name: "monitor", summary: "the human monitor (HMP)", options: [
        OptionSpec("path", .path, default: "<runtime dir>/monitor.sock", "unix socket path of the human monitor"),
        OptionSpec("port", .portOrEmpty, "also a human monitor on loopback TCP port N (DTS 2015's monitor = port=N;); empty: one is allocated"),
    ])

    /// `cpu`: vCPU model, count and pinning.
    public static let cpu = ParamSpec(name: "cpu", summary: "vCPU model, count and pinning", options: [
        OptionSpec("model", .text, default: "host", "QEMU CPU model; 'host' becomes 'max' under TCG"),
        OptionSpec("number", .integer(1...288), default: "1", "vCPU count (-smp)"),
        OptionSpec("cpupin", .cpuList, "host CPUs QEMU runs on; vCPU i is pinned to the (i mod count)-th online one (DTS lists as many as 'number', or not)"),
    ])

    /// `mem`: guest memory.
    public static let mem = ParamSpec(name: "mem", summary: "guest memory", options: [
        OptionSpec("size", .sizeMiB, required: true, "guest memory in MiB (or with a unit: 512M, 2G)"),
        OptionSpec("hugepage", .boolean, default: "no", "back guest memory with hugepages (hugetlbfs, preallocated)"),
    ])

    /// `disk`: disk images.
    public static let disk = ParamSpec(name: "disk", summary: "disk images", repeatable: true, options: [
        OptionSpec("file", .path, required: true, "image file"),
        OptionSpec("opt_format", .choice(["raw", "qcow2", "vmdk", "vdi", "vpc", "vhdx", "qed"]), "image format (QEMU probes it when absent)"),
        OptionSpec("opt_if", .choice(["ide", "scsi", "virtio", "none", "sd", "pflash", "mtd", "floppy"]), default: "ide on x86_64, virtio on aarch64", "drive interface"),
        OptionSpec("opt_index", .integer(0...31), "index on the interface"),
        OptionSpec("opt_media", .choice(["disk", "cdrom"]), default: "disk", "media type"),
        OptionSpec("overlay", .boolean, default: "no",
                   "yes: the guest writes to a throw-away qcow2 overlay dts makes over the image and removes at stop; the image is only read, and warm boot still applies (needs opt_format)"),
    ])

    /// `kernel`: direct kernel boot.
    public static let kernel = ParamSpec(name: "kernel", summary: "direct kernel boot", options: [
        OptionSpec("guest_image", .text, "name of a dts guest image (its vmlinux and initrd.img)"),
        OptionSpec("kernel_img", .path, "kernel image (-kernel)"),
        OptionSpec("initrd", .path, "initial ramdisk (-initrd)"),
        OptionSpec("console", .text, default: "ttyS0 with guest_image", "console= on the kernel command line"),
        OptionSpec("baudrate", .integer(50...4_000_000), "console speed, appended as console=DEV,BAUD"),
        OptionSpec("root", .text, "root= on the kernel command line"),
        OptionSpec("append", .text, "further kernel command-line text (quote it if it holds , or ;)"),
    ])

    /// `net`: NICs and network backends.
    public static let net: ParamSpec = {
        let vlan = OptionSpec("opt_vlan", .integer(0...4095), default: "0", "DTS hub number; pairs a nic with a backend")
        return ParamSpec(name: "net", summary: "NICs and network backends", discriminator: "type", variants: [
            .init("nic", "a guest network card", [
                vlan,
                OptionSpec("opt_model", .text, default: "e1000", "QEMU NIC model (e1000, virtio-net-pci, ...)"),
                OptionSpec("opt_addr", .pciSlot, "guest PCI slot"),
                OptionSpec("opt_macaddr", .mac, default: "allocated", "MAC address"),
                OptionSpec("opt_vectors", .integer(0...2048), "MSI-X vectors (virtio-net-pci only)"),
                OptionSpec("opt_name", .text, default: "nicN", "device id (for monitor commands)"),
                .ignored("netdev", "dts pairs each nic with a backend by opt_vlan and order; DTS ignored netdev= too"),
            ]),
            .init("user", "QEMU user networking (DHCP 10.0.2.x, port forwards)", [
                vlan,
                OptionSpec("opt_hostfwd", .hostForward, default: "tcp:<listen address>:<allocated port>-:22",
                           "forward a host port into the guest"),
            ]),
            .init("tap", "a host TAP interface", [
                vlan,
                OptionSpec("opt_br", .text, default: "br0", "bridge to attach the TAP to (QEMU's bridge helper) when no script is given"),
                OptionSpec("opt_script", .path, "script run with the TAP name when it comes up (-netdev tap,script=)"),
                OptionSpec("opt_downscript", .path, "script run when it goes down"),
                OptionSpec("opt_ifname", .text, "TAP interface name"),
            ]),
            .init("bridge", "a TAP attached to a host bridge by QEMU's bridge helper", [
                vlan,
                OptionSpec("opt_br", .text, default: "br0", "host bridge"),
            ]),
        ])
    }()

    /// `device`: emulated and passed-through devices.
    public static let device: ParamSpec = {
        let mac = OptionSpec("opt_mac", .mac, default: "allocated", "MAC address of the virtio-net device")
        let legacy = OptionSpec("opt_legacy", .boolean, default: "no", "yes: legacy virtio only (disable-modern=on)")
        let settings = OptionSpec("opt_settings", .properties, "extra virtio-net-pci properties, each checked against QEMU 7.2's (mrg_rxbuf, packed, disable-modern, csum, host_tso4, host_mtu, rx_queue_size, ...), e.g. \"mrg_rxbuf=off,packed=on\" (quoted)")
        let addr = OptionSpec("opt_addr", .pciSlot, "guest PCI slot")
        let host = OptionSpec("opt_host", .pciAddress, required: true, "host PCI address")
        return ParamSpec(name: "device", summary: "emulated and passed-through devices", discriminator: "driver", variants: [
            .init("vhost-user", "virtio-net on a vhost-user socket (DPDK, OVS-DPDK backends)", [
                OptionSpec("opt_path", .path, required: true, "unix socket of the vhost-user backend"),
                OptionSpec("opt_server", .serverMode, default: "no", "yes (or server, as DTS suites write it): QEMU listens on the socket (backend is the client)"),
                OptionSpec("opt_queue", .integer(1...64), default: "1", "queue pairs (multiqueue when > 1)"),
                mac, legacy, settings, addr,
            ]),
            .init("virtio-net-pci", "a virtio-net NIC on an existing netdev", [
                OptionSpec("opt_netdev", .text, required: true, "id of the netdev to use"),
                OptionSpec("opt_id", .text, "device id"),
                mac, OptionSpec("opt_bus", .text, "PCI bus id"), addr, legacy, settings,
            ]),
            .init("vfio-pci", "host PCI passthrough with VFIO", [host, addr]),
            .init("pci-assign", "legacy name for PCI passthrough; emitted as vfio-pci", [host, addr]),
        ], removed: [
            "vhost-cuse": "vhost-cuse was removed from DPDK (16.11) and never was in upstream QEMU; use driver=vhost-user",
        ])
    }()

    /// `crypto`: virtio-crypto devices on vhost-user sockets.
    public static let crypto = ParamSpec(name: "crypto", summary: "virtio-crypto devices on vhost-user sockets", options: [
        OptionSpec("enable", .boolean, required: true, "yes: add the devices"),
        OptionSpec("opt_num", .integer(1...32), default: "1",
                   "device count; device i connects to <runtime dir>/<vm>_crypto<i>.sock, where the backend listens"),
    ])

    /// `vnc`: VNC display.
    public static let vnc = ParamSpec(name: "vnc", summary: "VNC display", options: [
        OptionSpec("displayNum", .integer(0...99), default: "allocated", "display number (port 5900 + N)"),
        OptionSpec("disable", .boolean, default: "False", "True: no VNC display"),
    ])

    /// `control`: guest agent and serial console.
    public static let control = ParamSpec(name: "control", summary: "guest agent and serial console", discriminator: "type", variants: [
        .init("qga", "QEMU guest agent on virtio-serial", []),
        .init("telnet", "serial console on a telnet port", [
            OptionSpec("opt_port", .port, default: "allocated", "TCP port"),
        ]),
        .init("socket", "serial console on a unix socket", [
            OptionSpec("opt_path", .path, default: "<runtime dir>/serial.sock", "socket path"),
        ]),
    ])

    /// `qga`: guest agent (older spelling of control type=qga).
    public static let qga = ParamSpec(name: "qga", summary: "guest agent (older spelling of control type=qga)", options: [
        OptionSpec("enable", .boolean, required: true, "yes: add the guest agent channel"),
    ])

    /// `login`: guest login for SSH.
    public static let login = ParamSpec(name: "login", summary: "guest login for SSH", options: [
        OptionSpec("user", .text, required: true, "user name"),
        OptionSpec("password", .text, "password"),
    ])

    /// `start`: start-up deadlines and warm boot.
    public static let start = ParamSpec(name: "start", summary: "start-up deadlines and warm boot", options: [
        OptionSpec("wait_seconds", .integer(1...3600), default: "120", "deadline for the guest to boot (guest agent and management address)"),
        OptionSpec("login_timeout", .integer(1...3600), default: "60", "deadline for the SSH login"),
        OptionSpec("login_prompt", .text, default: "login:", "kept for DTS configs; dts logs in over SSH"),
        OptionSpec("password_prompt", .text, default: "Password:", "kept for DTS configs; dts logs in over SSH"),
        OptionSpec("warm", .boolean, default: "yes",
                   "yes: restore the VM from a snapshot of its first boot where that is safe (warm boot); no: always boot from scratch"),
    ])

    /// `def_driver`: the guest driver of the VM DUT's test NICs.
    public static let defDriver = ParamSpec(name: "def_driver", summary: "the guest driver DPDK binds the VM's test NICs to", repeatable: true, options: [
        OptionSpec("driver_name", .choice(["vfio-pci", "uio_pci_generic", "igb_uio"]),
                   "driver for the guest's NICs other than the management NIC (entries merge key by key)"),
        OptionSpec("driver_mode", .choice(["noiommu", "iommu"]),
                   "vfio-pci only: noiommu turns on vfio's enable_unsafe_noiommu_mode in the guest (it has no vIOMMU)"),
    ])

    /// `usercmd`: raw QEMU arguments.
    public static let userCmd = ParamSpec(name: "usercmd", summary: "raw QEMU arguments", repeatable: true, options: [
        OptionSpec("cmd", .words, required: true, "arguments, split into words like a shell would, without expansion (quote values holding , or ;)"),
    ])

    /// `migration`: incoming live migration.
    public static let migration = ParamSpec(name: "migration", summary: "incoming live migration", options: [
        OptionSpec("enable", .boolean, required: true, "yes: -incoming tcp"),
        OptionSpec("port", .port, default: "allocated", "TCP port to listen on"),
    ])
}
