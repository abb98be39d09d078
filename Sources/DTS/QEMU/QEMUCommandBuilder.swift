/// Facts about the whole VM that several handlers need, computed before any handler runs.
public struct BuildContext: Sendable {
    /// The VM's name.
    public var vmName: String
    /// The guest architecture (from `qemu path=` or the host).
    public var architecture: Architecture
    /// The accelerator, after the run-wide override.
    public var accelerator: Accelerator
    /// Why that accelerator was chosen, when it is not what `enable_kvm` says.
    public var acceleratorNote: String?
    /// The machine type (`machine` parameter or the architecture's default).
    public var machine: String
    /// vCPU count from `cpu number=`, if set.
    public var vcpus: Int?
    /// Guest memory from `mem size=`, if set.
    public var memoryMiB: Int?
    /// Whether any `device driver=vhost-user` is configured (guest memory must then be shared).
    public var hasVhostUser: Bool
}

/// A handler for one VM parameter: the QEMU arguments it emits.
///
/// DTS calls these `add_vm_<param>`. Each conforming type lives in its own file under
/// `Sources/DTS/QEMU/Handlers/`, named after the parameter.
public protocol VMParameterHandler {
    /// The parameter's entry in ``VMParamSchema``: the handler is registered under its name.
    static var spec: ParamSpec { get }
    /// Emits the parameter's arguments into `builder`.
    static func apply(_ param: VirtParam, to builder: inout QEMUCommandBuilder)
}

/// Accumulates a VM's command line while the handlers run.
///
/// Handlers add arguments with ``add(_:note:)`` and report problems with ``fail(_:_:)``; every
/// problem is collected, so one build reports all of them.
public struct QEMUCommandBuilder {
    /// Cross-parameter facts.
    public let context: BuildContext
    /// Where ports, directories and MACs come from.
    public let allocator: any VMResourceAllocator

    var binary: String
    var args: [String] = []
    var explanations: [QEMUCommandLine.Explanation] = []
    var errors: [ConfigError] = []
    var paths: QEMUCommandLine.Paths
    var ports = QEMUCommandLine.Ports()
    var login: QEMUCommandLine.Login?
    var start = QEMUCommandLine.StartSettings()
    var cpuPinning: [Int] = []
    var prefix: [String] = []
    var daemonize = false
    var passthrough: [QEMUCommandLine.Passthrough] = []
    var defaultDriver: String?
    var serialConfigured = false
    var guestAgentConfigured = false
    var netdevIDs: Set<String> = []
    var netdevReferences: [(id: String, location: SourceLocation)] = []
    var nicCount = 0
    var vhostUserCount = 0

    init(context: BuildContext, allocator: any VMResourceAllocator) {
        self.context = context
        self.allocator = allocator
        self.binary = context.architecture.binary
        let run = allocator.runtimeDirectory(vm: context.vmName)
        self.paths = QEMUCommandLine.Paths(
            runtimeDirectory: run, qmpSocket: "\(run)/qmp.sock", monitorSocket: nil, guestAgentSocket: nil,
            serialSocket: nil, pidFile: nil, consoleLog: "\(run)/console.log")
    }

    /// The VM's runtime directory.
    public var runtimeDirectory: String { paths.runtimeDirectory }

    /// Appends arguments; `note` explains the first one in `dts vm cmdline --explain`.
    public mutating func add(_ arguments: String..., note: String? = nil) {
        if let note { explanations.append(.init(index: args.count + 1, text: note)) }
        args.append(contentsOf: arguments)
    }

    /// Appends an argument list.
    public mutating func add(contentsOf arguments: [String], note: String? = nil) {
        if let note { explanations.append(.init(index: args.count + 1, text: note)) }
        args.append(contentsOf: arguments)
    }

    /// Records a problem with the config; building goes on to find the others.
    public mutating func fail(_ location: SourceLocation, _ param: String, _ message: String) {
        errors.append(ConfigError(location, key: param, message))
    }

    /// Registers a netdev id so that devices can refer to it.
    public mutating func defineNetdev(_ id: String) { netdevIDs.insert(id) }

    /// Requires that a netdev with `id` exists once every parameter has run.
    public mutating func requireNetdev(_ id: String, at location: SourceLocation) {
        netdevReferences.append((id, location))
    }

    /// The configured value, or else one from the allocator (``allocate(_:at:_:_:)``).
    public mutating func configuredOrAllocated(_ configured: Int?, _ what: String, at location: SourceLocation, _ param: String,
                                               _ body: (_ allocator: any VMResourceAllocator, _ vm: String) throws -> Int) -> Int? {
        if let configured { return configured }
        return allocate(what, at: location, param, body)
    }

    /// Runs `body` with a resource allocation, turning an allocation failure into a config error.
    public mutating func allocate<T>(_ what: String, at location: SourceLocation, _ param: String,
                                     _ body: (_ allocator: any VMResourceAllocator, _ vm: String) throws -> T) -> T? {
        do { return try body(allocator, context.vmName) } catch {
            fail(location, param, "cannot allocate \(what): \(error)")
            return nil
        }
    }
}

/// QEMU's `-opt key=value,key=value` syntax: a `,` inside a value is written `,,`.
public enum QEMUOpts {
    /// Escapes one value.
    public static func escape(_ value: String) -> String { value.replacingAll(",", with: ",,") }

    /// Joins `head` (e.g. a driver name) and `key=value` pairs, escaping values.
    public static func join(_ head: String?, _ pairs: [(String, String)]) -> String {
        var parts: [String] = []
        if let head { parts.append(head) }
        parts.append(contentsOf: pairs.map { "\($0.0)=\(escape($0.1))" })
        return parts.joined(separator: ",")
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
