/// `kernel = guest_image=dts-guest;` or `kernel = kernel_img=/boot/vmlinuz,initrd=...,console=ttyS0,root=/dev/sda;`
/// — direct kernel boot.
///
/// `guest_image=NAME` boots an image built by `scripts/build-guest-image.sh`: its `vmlinux` and
/// `initrd.img` are looked up in the image directory (`DTS_IMAGE_DIR`). That is a lookup, not
/// interpolation: the name is a plain word.
public enum KernelParameter: VMParameterHandler {
    public static let spec = VMParamSchema.kernel

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        guard let entry = param.entries.last else { return }
        var kernel = entry["kernel_img"]
        var initrd = entry["initrd"]
        var console = entry["console"]
        switch (entry["guest_image"], kernel) {
        case (let image?, nil):
            if let problem = PathComponentName.problem(image) {
                draft.fail(entry.location(of: "guest_image"), spec.name,
                           "guest_image takes an image name, not a path ('\(image)': \(problem)); use kernel_img= for a path")
                return
            }
            let directory = "\(draft.allocator.imageDirectory)/\(image)"
            // The uncompressed, PVH-bootable kernel: QEMU loads it directly, skipping the bzImage
            // decompression that costs seconds under TCG (docs/guest-image.md).
            kernel = "\(directory)/vmlinux"
            if initrd == nil { initrd = "\(directory)/initrd.img" }
            if console == nil { console = draft.context.architecture.consoleDevice }
        case (nil, nil):
            draft.fail(entry.location, spec.name, "needs kernel_img=PATH or guest_image=NAME")
            return
        case (_?, _?):
            draft.fail(entry.location(of: "guest_image"), spec.name, "give either kernel_img or guest_image, not both")
            return
        case (nil, _?):
            break
        }
        guard let kernel else { return }
        draft.add("-kernel", kernel)
        draft.opens(kernel, as: "-kernel")
        if let initrd {
            draft.add("-initrd", initrd)
            draft.opens(initrd, as: "-initrd")
        }
        var words: [String] = []
        if let console {
            words.append("console=" + console + (entry["baudrate"].map { ",\($0)" } ?? ""))
        } else if entry["baudrate"] != nil {
            draft.fail(entry.location(of: "baudrate"), spec.name, "baudrate needs console= too")
        }
        if let root = entry["root"] { words.append("root=\(root)") }
        if let append = entry["append"] { words.append(append) }
        if !words.isEmpty { draft.add("-append", words.joined(separator: " ")) }
    }
}
