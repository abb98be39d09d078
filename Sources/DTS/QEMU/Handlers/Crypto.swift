/// `crypto = enable=yes,opt_num=2;` — virtio-crypto devices on vhost-user sockets (DPDK's
/// `vhost_crypto` example, or another `cryptodev-vhost-user` backend, serves them).
///
/// Device i gets exactly DTS's names, because DTS suites hard-code the socket paths they start
/// the backend on: the socket `<runtime dir>/<vm>_crypto<i>.sock` (DTS used `/tmp`), the chardev
/// `<vm>_crypto<i>`, the cryptodev object `cryptodev<i>`, the device `crypto<i>`:
///
/// ```
/// -chardev socket,path=<run>/vm0_crypto0.sock,id=vm0_crypto0
/// -object cryptodev-vhost-user,id=cryptodev0,chardev=vm0_crypto0
/// -device virtio-crypto-pci,id=crypto0,cryptodev=cryptodev0
/// ```
///
/// QEMU connects to the sockets (the backend listens, and must before the VM starts:
/// ``QEMUKvm/cryptoSocketPaths()`` gives them beforehand). The backend maps guest memory, so it
/// is shared, as for vhost-user net (``BuildContext/hasVhostUser``).
public enum CryptoParameter: VMParameterHandler {
    public static let spec = VMParamSchema.crypto

    public static func apply(_ param: VirtParam, to draft: inout CommandLineDraft) {
        let sockets = socketPaths(vm: draft.context.vmName, runtimeDirectory: draft.runtimeDirectory, count: deviceCount(param))
        for (i, socket) in sockets.enumerated() {
            let chardev = "\(draft.context.vmName)_crypto\(i)"
            draft.add("-chardev", QEMUOpts.join("socket", [("path", socket), ("id", chardev)]),
                      note: i == 0 ? "the vhost-user crypto backend listens on \(socket) before the VM starts" : nil)
            draft.add("-object", QEMUOpts.join("cryptodev-vhost-user", [("id", "cryptodev\(i)"), ("chardev", chardev)]))
            draft.add("-device", QEMUOpts.join("virtio-crypto-pci", [("id", "crypto\(i)"), ("cryptodev", "cryptodev\(i)")]))
        }
        draft.paths.cryptoSockets = sockets
    }

    /// How many devices `param` asks for: `opt_num` (default 1) when `enable=yes`, else none.
    public static func deviceCount(_ param: VirtParam?) -> Int {
        guard let entry = param?.entries.last, entry.bool("enable") == true else { return 0 }
        return entry.int("opt_num") ?? 1
    }

    /// DTS's socket names: `<runtimeDirectory>/<vm>_crypto<i>.sock` for i in 0..<count.
    public static func socketPaths(vm: String, runtimeDirectory: String, count: Int) -> [String] {
        (0..<count).map { "\(runtimeDirectory)/\(vm)_crypto\($0).sock" }
    }
}
