/// `start = wait_seconds=120,login_timeout=60,warm=yes,...;` — deadlines for bringing the VM up,
/// and whether it may be restored from a snapshot (warm boot, docs/virtualization.md#warm-boot).
public enum StartParameter: VMParameterHandler {
    public static let spec = VMParamSchema.start

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        guard let entry = param.entries.last else { return }
        if let n = entry.int("wait_seconds") { draft.start.waitSeconds = n }
        if let n = entry.int("login_timeout") { draft.start.loginTimeout = n }
        if let s = entry["login_prompt"] { draft.start.loginPrompt = s }
        if let s = entry["password_prompt"] { draft.start.passwordPrompt = s }
        if let warm = entry.bool("warm") {
            draft.start.warm = warm
            draft.start.warmLocation = entry.location(of: "warm")
        }
    }

    /// The boot mode: the run's choice (``QEMUBuildOptions/boot``) over `start warm=`; with warm
    /// boot, the architecture's generation-ID device, so that every start gets a new generation.
    static func chooseBoot(into draft: inout CommandLineDraft) -> (BootMode, String) {
        let choice: (BootMode, String)
        if let boot = draft.context.options.boot {
            choice = (boot, "the run's --boot \(boot.rawValue) (or DTS_BOOT)")
        } else if let location = draft.start.warmLocation {
            choice = (draft.start.warm ? .warm : .cold, "start warm=\(draft.start.warm ? "yes" : "no") at \(location)")
        } else {
            choice = (.warm, "the default")
        }
        if choice.0 == .warm, let device = draft.context.architecture.generationIDDevice {
            draft.add(contentsOf: [device])
        }
        return choice
    }
}
