/// `mem = size=4096,hugepage=yes;` — guest memory, optionally backed by hugepages.
///
/// Guest memory is shared (`share=on`, with `-numa node,memdev=mem`) when hugepages are asked
/// for or when a vhost-user device needs the backend to map it: a memfd backend without
/// hugepages, a file on the hugetlbfs mount with them.
public enum MemParameter: VMParameterHandler {
    public static let spec = VMParamSchema.mem

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        guard let entry = param.entries.last, let size = draft.context.memoryMiB else { return }
        draft.add("-m", String(size))
        let hugepage = entry.bool("hugepage") ?? false
        if hugepage {
            guard let mount = draft.allocator.hugepageMount else {
                draft.fail(entry.location(of: "hugepage"), spec.name,
                           "hugepage=yes but no hugetlbfs is mounted; mount one (mount -t hugetlbfs nodev /dev/hugepages) and reserve pages")
                return
            }
            draft.hugepageMount = mount
            draft.add("-object", QEMUOpts.join("memory-backend-file", [
                ("id", "mem"), ("size", "\(size)M"), ("mem-path", mount), ("share", "on"), ("prealloc", "on"),
            ]))
            draft.add("-numa", "node,memdev=mem")
        } else if draft.context.hasVhostUser {
            draft.add("-object", QEMUOpts.join("memory-backend-memfd", [("id", "mem"), ("size", "\(size)M"), ("share", "on")]),
                      note: "vhost-user backends map guest memory: it must be shared (memfd, share=on)")
            draft.add("-numa", "node,memdev=mem")
        }
    }

    /// Guest memory in MiB from the last `mem size=` of `params`, if set: the one reading of it
    /// (the build's ``BuildContext/memoryMiB``, ``QEMUKvm/memoryMiB``).
    public static func sizeMiB(of params: [VirtParam]) -> Int? {
        params.last { $0.name == spec.name }?.entries.last?["size"].flatMap(ValueKind.parseSizeMiB)
    }
}
