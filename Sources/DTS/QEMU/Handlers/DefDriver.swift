/// `def_driver = driver_name=vfio-pci;` — the host driver passthrough devices are bound to.
public enum DefDriverParameter: VMParameterHandler {
    public static let spec = ParamSpec(name: "def_driver", summary: "host driver for passthrough devices", options: [
        OptionSpec("driver_name", .choice(["vfio-pci", "igb_uio", "uio_pci_generic", "pci-stub"]), required: true, "driver name"),
    ])

    public static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder) {
        builder.defaultDriver = param.entries.last?["driver_name"]
    }
}
