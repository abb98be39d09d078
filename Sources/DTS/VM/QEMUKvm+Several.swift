import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Several VMs in one suite, and a VM killed and restarted: what DTS's vhost/virtio suites do with
/// `for i in range(vm_num): VM(...).start()` and `killall -s INT qemu-system-x86_64`.
///
/// ```swift
/// let kvms = try (0..<2).map { i in
///     let kvm = try QEMUKvm(dut: context.dut, vmName: "vm\(i)", suite: Self.name)
///     try kvm.setVMDevice(["driver": "vhost-user", "opt_path": dir + "/vhost-net\(i)", "opt_server": "yes"])
///     return kvm
/// }
/// let duts = try await QEMUKvm.startAll(kvms)      // the boots overlap
/// await kvms[0].kill()                              // QEMU gone at once; its vhost-user peer sees the link drop
/// let again = try await kvms[0].start()             // same config, same socket paths: the backend reconnects
/// ```
extension QEMUKvm {
    /// Starts `vms` at once (each boot overlapping the others) and returns their VM DUTs in the
    /// same order. If one fails, the others are stopped too and the first failure is thrown (a
    /// ``VMStartError`` naming its VM and stage).
    nonisolated(nonsending) public static func startAll(_ vms: [QEMUKvm], options: VMStartOptions = VMStartOptions()) async throws -> [VirtDut] {
        // Each VM is used by its own child task only, while this task waits for all of them.
        let boxes = vms.map(UncheckedVM.init)
        var duts = [VirtDut?](repeating: nil, count: vms.count)
        var firstError: (any Error)?
        await withTaskGroup(of: (Int, Result<VirtDut, any Error>).self) { group in
            for (index, box) in boxes.enumerated() {
                group.addTask {
                    do { return (index, .success(try await box.vm.start(options))) } catch { return (index, .failure(error)) }
                }
            }
            for await (index, result) in group {
                switch result {
                case .success(let dut): duts[index] = dut
                case .failure(let error): if firstError == nil { firstError = error }
                }
            }
        }
        if let firstError {
            for vm in vms { await vm.stop() }
            throw firstError
        }
        return duts.map { $0! }
    }

    /// Kills the running VM's QEMU abruptly with `signal` (SIGKILL by default, as a crash; SIGINT
    /// as DTS's `killall -s INT qemu-system-x86_64`), waits for it to exit, and then frees what it
    /// held as a stop after a crash does (its runtime directory, ports, logs). Paths the config
    /// names, such as vhost-user sockets, are the config's: ``start(_:)`` uses them again.
    nonisolated(nonsending) public func kill(signal: Int32 = SIGKILL) async {
        guard let running = instance else { return }
        await running.kill(signal: signal)
        instance = nil
    }
}

/// A VM handed to exactly one child task of ``QEMUKvm/startAll(_:options:)``.
private struct UncheckedVM: @unchecked Sendable {
    let vm: QEMUKvm
}

extension VMInstance {
    /// Sends `signal` to QEMU (its process group for a child of dts), waits up to 10 s for it to
    /// exit (then SIGKILL), and stops the instance as after a crash. For restart tests.
    public func kill(signal: Int32) async {
        if let qemu = parts({ $0.qemu }), await qemu.isRunning() {
            await qemu.signal(signal)
            if !(await qemu.waitForExit(within: .seconds(10))) {
                await qemu.signal(SIGKILL)
                _ = await qemu.waitForExit(within: .seconds(5))
            }
        }
        await stop()
    }
}
