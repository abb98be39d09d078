/// The command line while the handlers write into it: the options so far, the facts the
/// framework needs (paths, ports, login, pinning, ...) and the problems found.
///
/// ``QEMUCommandLineBuilder`` makes one, hands it to each parameter's handler in turn, and turns
/// it into a ``QEMUCommandLine``. Handlers add options with ``add(_:_:note:)`` and report
/// problems with ``fail(_:_:_:)``; every problem is collected, so one build reports all of them.
public struct CommandLineDraft {
    /// Cross-parameter facts.
    public let context: BuildContext
    /// Where ports, directories and MACs come from.
    public let allocator: any VMResourceAllocator

    var binary: String
    var options: [QEMUOption] = []
    var errors: [ConfigError] = []
    var warnings: [ConfigWarning] = []
    var paths: QEMUCommandLine.Paths
    var ports = QEMUCommandLine.Ports()
    var login: QEMUCommandLine.Login?
    var start = QEMUCommandLine.StartSettings()
    var cpuPinning: [Int] = []
    var prefix: [String] = []
    var daemonize = false
    var hugepageMount: String?
    var filesQEMUOpens: [QEMUCommandLine.InputFile] = []
    var overlays: [QEMUCommandLine.DiskOverlay] = []
    var passthrough: [QEMUCommandLine.Passthrough] = []
    var defaultDriver: QEMUCommandLine.DefaultDriver?
    var serialConfigured = false
    var guestAgentConfigured = false
    var netdevIDs: Set<String> = []
    var netdevReferences: [(id: String, location: SourceLocation)] = []
    var nicCount = 0
    var vhostUserCount = 0
    var fixedPorts: [QEMUCommandLine.FixedPort] = []
    /// Parameters whose allocation failed (the error is recorded; what depends on it is not checked again).
    var failedAllocations: Set<String> = []

    init(context: BuildContext, allocator: any VMResourceAllocator) {
        self.context = context
        self.allocator = allocator
        self.binary = context.emulator.binary ?? context.architecture.binary
        let run = allocator.runtimeDirectory(vm: context.vmName)
        self.paths = QEMUCommandLine.Paths(
            runtimeDirectory: run, qmpSocket: "\(run)/qmp.sock", monitorSocket: nil, guestAgentSocket: nil,
            serialSocket: nil, pidFile: nil, consoleLog: "\(run)/console.log")
    }

    /// The VM's runtime directory.
    public var runtimeDirectory: String { paths.runtimeDirectory }

    /// Appends the option `name` with its `value` (none for a flag); `note` says why, for
    /// `dts vm cmdline --explain`.
    public mutating func add(_ name: String, _ value: String? = nil, note: String? = nil) {
        options.append(QEMUOption(name, value, note: note))
    }

    /// Appends options.
    public mutating func add(contentsOf options: [QEMUOption]) {
        self.options.append(contentsOf: options)
    }

    /// Records a file QEMU opens at start, so that the VM's host can check it exists first.
    public mutating func opens(_ path: String, as option: String) {
        filesQEMUOpens.append(.init(option: option, path: path))
    }

    /// Records a problem with the config; building goes on to find the others.
    public mutating func fail(_ location: SourceLocation, _ param: String, _ message: String) {
        errors.append(ConfigError(location, key: param, message))
    }

    /// Records something the config says that dts accepts but does not follow to the letter.
    public mutating func warn(_ location: SourceLocation, _ param: String, _ message: String) {
        let warning = ConfigWarning(location, key: param, message)
        if !warnings.contains(warning) { warnings.append(warning) }
    }

    /// Registers a netdev id so that devices can refer to it.
    public mutating func defineNetdev(_ id: String) { netdevIDs.insert(id) }

    /// Requires that a netdev with `id` exists once every parameter has run.
    public mutating func requireNetdev(_ id: String, at location: SourceLocation) {
        netdevReferences.append((id, location))
    }

    /// The configured value, or else one from the allocator (``allocate(_:at:_:_:)``). A
    /// configured value is a port the config fixes (`port(value)` is its TCP port), recorded so
    /// the VM's host can check it is free before QEMU runs (``fixed(port:_:at:_:)``).
    public mutating func configuredOrAllocated(_ configured: Int?, _ what: String, at location: SourceLocation, _ param: String,
                                               port: (Int) -> Int = { $0 },
                                               _ body: (_ allocator: any VMResourceAllocator, _ vm: String) throws -> Int) -> Int? {
        if let configured {
            fixed(port: port(configured), what, at: location, param)
            return configured
        }
        return allocate(what, at: location, param, body)
    }

    /// Records a TCP port the config fixes (no allocator chose it): retrying with fresh ports
    /// cannot help when it is taken, so the VM's host refuses it before QEMU runs.
    public mutating func fixed(port: Int, _ what: String, at location: SourceLocation, _ param: String) {
        fixedPorts.append(.init(port: port, what: what, param: param, location: location))
    }

    /// Runs `body` with a resource allocation, turning an allocation failure into a config error.
    public mutating func allocate<T>(_ what: String, at location: SourceLocation, _ param: String,
                                     _ body: (_ allocator: any VMResourceAllocator, _ vm: String) throws -> T) -> T? {
        do { return try body(allocator, context.vmName) } catch {
            failedAllocations.insert(param)
            fail(location, param, "cannot allocate \(what): \(error)")
            return nil
        }
    }
}

extension VirtEntry {
    /// The value of `key` as a whole number (validated already by the schema).
    func int(_ key: String) -> Int? { self[key].flatMap { Int($0) } }
    /// The value of `key` as a boolean.
    func bool(_ key: String) -> Bool? { self[key].flatMap(ValueKind.parseBool) }
    /// The location of `key`'s option, or of the entry.
    func location(of key: String) -> SourceLocation { option(key)?.location ?? location }
}
