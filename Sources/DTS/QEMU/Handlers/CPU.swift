/// `cpu = model=host,number=4,cpupin=24 25 26 27;` — vCPU model, count and pinning.
///
/// Pinning puts QEMU under `taskset -c <cpus>` and starts the guest paused (`-S`) so that each
/// vCPU thread is pinned to its host CPU before the guest runs.
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

        guard let pinText = entry["cpupin"], let cpus = ValueKind.parseCPUList(pinText) else { return }
        guard cpus.count == number else {
            draft.fail(entry.location(of: "cpupin"), spec.name,
                       "cpupin lists \(cpus.count) host CPU\(cpus.count == 1 ? "" : "s") (\(pinText)) but number=\(number); give one host CPU per vCPU")
            return
        }
        draft.cpuPinning = cpus
        draft.prefix = ["taskset", "-c", cpus.map(String.init).joined(separator: ",")]
    }
}
