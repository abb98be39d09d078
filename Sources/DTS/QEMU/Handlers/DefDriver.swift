/// `def_driver = driver_name=vfio-pci; driver_mode=noiommu;` — the driver DPDK binds the guest's
/// test NICs to (DTS's `def_driver`: `VirtDut.set_target` binds every non-management NIC of the
/// VM DUT to it). No QEMU arguments: it is a fact of the VM DUT (``QEMUCommandLine/defaultDriver``).
///
/// Entries merge key by key, later ones winning, as DTS's `add_vm_def_driver` ran once per entry:
/// DTS's own virt_global.cfg gives the name and the mode in two entries. `driver_mode=noiommu`
/// (vfio-pci only) means vfio's `enable_unsafe_noiommu_mode=1` in the guest, which has no vIOMMU.
public enum DefDriverParameter: VMParameterHandler {
    public static let spec = VMParamSchema.defDriver

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        var name: VirtOption?, mode: VirtOption?
        for entry in param.entries {
            if let option = entry.option("driver_name") { name = option }
            if let option = entry.option("driver_mode") { mode = option }
        }
        guard let name else {
            draft.fail(mode?.location ?? param.location, spec.name, "driver_mode without driver_name; add 'driver_name=vfio-pci;'")
            return
        }
        if let mode, name.value != "vfio-pci" {
            draft.warn(mode.location, spec.name, "driver_mode=\(mode.value) applies to vfio-pci only; ignored for \(name.value), as DTS did")
            draft.defaultDriver = .init(name: name.value, mode: nil)
            return
        }
        draft.defaultDriver = .init(name: name.value, mode: mode?.value)
    }
}
