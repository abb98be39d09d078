/// `def_driver = driver_name=vfio-pci;` — the host driver passthrough devices are bound to.
public enum DefDriverParameter: VMParameterHandler {
    public static let spec = VMParamSchema.defDriver

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        draft.defaultDriver = param.entries.last?["driver_name"]
    }
}
