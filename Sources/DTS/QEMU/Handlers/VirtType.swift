/// `virt_type = virt_type=KVM;` — the hypervisor, as DTS's suite configs name it.
///
/// DTS chose between its QEMU/KVM and libvirt back ends with this parameter. dts runs QEMU/KVM
/// only: `KVM` is accepted and changes nothing; `LIBVIRT` and `XEN` are refused by the schema
/// with an error naming the hypervisor dts does not have.
public enum VirtTypeParameter: VMParameterHandler {
    public static let spec = VMParamSchema.virtType

    /// No QEMU arguments: `KVM` is what every dts VM is.
    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {}
}
