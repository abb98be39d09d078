/// `cpu = model=host,number=4,cpupin=24 25 26 27;` — vCPU model, count and pinning.
///
/// Pinning puts the whole QEMU process under `taskset -c <cpus>` (the listed CPUs that are
/// online on the VM's host) and starts the guest paused (`-S`) so that each vCPU thread is pinned
/// before the guest runs: vCPU i to the (i mod count)-th of those CPUs, as DTS's `pin_threads`
/// did. DTS configs and suites may list more or fewer CPUs than `number` (8 DTS suites change the
/// vCPU count at run time and keep `cpupin`): that is legal, with a warning.
public enum CPUParameter: VMParameterHandler {
    public static let spec = VMParamSchema.cpu

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        guard let entry = param.entries.last else { return }
        let model = entry["model"] ?? "host"
        if model == "host", draft.context.accelerator == .tcg {
            draft.add("-cpu", draft.context.architecture.tcgCPUModel,
                      note: "model=host needs KVM; under TCG the closest model is '\(draft.context.architecture.tcgCPUModel)'")
        } else {
            draft.add("-cpu", model)
        }
        let number = entry.int("number") ?? 1
        draft.add("-smp", String(number))

        guard let pinText = entry["cpupin"], let listed = ValueKind.parseCPUList(pinText) else { return }
        let location = entry.location(of: "cpupin")
        var cpus = listed
        if let online = draft.allocator.onlineCPUs {
            cpus = listed.filter(online.contains)
            let list = { (cpus: [Int]) in cpus.map(String.init).joined(separator: ",") }
            guard !cpus.isEmpty else {
                draft.fail(location, spec.name, "none of the host CPUs of cpupin (\(list(listed))) is online on this host (online: \(list(online)))")
                return
            }
            let offline = listed.filter { !online.contains($0) }
            if !offline.isEmpty {
                draft.warn(location, spec.name, (offline.count == 1 ? "host CPU \(offline[0]) of cpupin is" : "host CPUs \(list(offline)) of cpupin are")
                               + " not online on this host: QEMU runs on \(list(cpus))")
            }
        }
        if listed.count != number {
            draft.warn(location, spec.name,
                       "cpupin lists \(listed.count) host CPU\(listed.count == 1 ? "" : "s") for \(number) vCPU\(number == 1 ? "" : "s"), as DTS allowed: "
                           + "QEMU runs on all of them (taskset) and vCPU i is pinned to the (i mod \(cpus.count))-th")
        }
        draft.cpuPinning = (0..<number).map { cpus[$0 % cpus.count] }
        draft.prefix = ["taskset", "-c", cpus.map(String.init).joined(separator: ",")]
    }
}
