import DTSProcess
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A ``DUTSession`` on the machine dts itself runs on: the host DUT when `crbs.cfg` names
/// `127.0.0.1` or `localhost`.
///
/// `exec` runs `/bin/sh -c command` in a new session (its own process group) with output captured
/// in unlinked temporary files, so big outputs never block; a timeout or a cancelled task kills
/// every process of that session. `openShell()` starts bash on a real PTY (see ``LocalShell``).
/// No call blocks Swift's cooperative thread pool: children are reaped by their own threads.
public final class LocalSession: DUTSession {
    public let endpoint: String
    private let log: (any SessionLogSink)?
    private let redactor: Redactor
    private let shells = ShellList()

    /// Creates a session. Nothing is started until a method is called.
    /// - Parameters:
    ///   - endpoint: the name used in logs and errors.
    ///   - log: where commands and outputs are recorded.
    ///   - redactor: removes secrets from logged text.
    public init(endpoint: String = "localhost", log: (any SessionLogSink)? = nil, redactor: Redactor = .shared) {
        self.endpoint = endpoint
        self.log = log
        self.redactor = redactor
    }

    /// This machine.
    public var location: SessionLocation { .local }
    /// Where this session logs, if it was given a log.
    public var sessionLog: (any SessionLogSink)? { log }

    public func exec(_ command: String, timeout: Duration) async throws -> ExecResult {
        log?.record(endpoint, .command, command, redactor: redactor)
        let out: CaptureFile, err: CaptureFile
        do throws(SystemCallError) {
            (out, err) = (try CaptureFile(), try CaptureFile())
        } catch {
            throw LocalSessionError.io(operation: "create", path: error.path, errno: error.code)
        }
        let child = try Self.spawn(["/bin/sh", "-c", command], SpawnOptions(
            processGroup: .newSession, standardInput: .null, standardOutput: .descriptor(out.fd), standardError: .descriptor(err.fd)))
        // On timeout or cancellation every process of the command's session is killed.
        let exited = await child.waitForExit(timeout: timeout)
        let status: Int32
        if let exited {
            status = exited
        } else {
            child.signal(SIGKILL)
            status = await child.waitForExit()
        }
        let result = ExecResult(status: status, stdout: out.readAll(), stderr: err.readAll())
        if !result.stdout.isEmpty { log?.record(endpoint, .output, result.output, redactor: redactor) }
        if !result.stderr.isEmpty { log?.record(endpoint, .errorOutput, result.errorOutput, redactor: redactor) }
        if exited != nil {
            log?.record(endpoint, .status, "exit status \(result.status)", redactor: redactor)
            return result
        }
        if Task.isCancelled {
            log?.record(endpoint, .status, "cancelled; process group killed", redactor: redactor)
            throw CancellationError()
        }
        log?.record(endpoint, .status, "timed out after \(timeout); process group killed", redactor: redactor)
        throw LocalSessionError.timeout(command: redactor.redact(command), after: timeout,
                                        stdout: result.output, stderr: result.errorOutput)
    }

    public func openShell() async throws -> any InteractiveSession {
        try await openLocalShell()
    }

    /// Starts a child, reporting a failure as ``LocalSessionError/spawnFailed(program:errno:)``.
    static func spawn(_ argv: [String], _ options: SpawnOptions) throws(LocalSessionError) -> ChildProcess {
        do throws(SpawnError) {
            return try ChildProcess.spawn(argv, options)
        } catch {
            throw .spawnFailed(program: argv.first ?? "", errno: error.code)
        }
    }

    /// Opens a shell and returns it with its concrete type (for ``LocalShell/prompt`` and ``LocalShell/run(_:timeout:)``).
    public func openLocalShell() async throws -> LocalShell {
        let shell = try LocalShell(endpoint: endpoint, log: log, redactor: redactor)
        shells.add(shell)
        do {
            try await shell.waitForFirstPrompt()
        } catch {
            await shell.close()
            throw error
        }
        return shell
    }

    public func upload(localPath: String, remotePath: String, mode: Int32?, progress: CopyProgress?) async throws {
        log?.record(endpoint, .transfer, "upload \(localPath) -> \(remotePath)", redactor: redactor)
        try await LocalCopy.copy(from: localPath, to: remotePath, mode: mode, progress: progress)
    }

    public func download(remotePath: String, localPath: String, progress: CopyProgress?) async throws {
        log?.record(endpoint, .transfer, "download \(remotePath) -> \(localPath)", redactor: redactor)
        try await LocalCopy.copy(from: remotePath, to: localPath, mode: nil, progress: progress)
    }

    public func close() async {
        for shell in shells.takeAll() { await shell.close() }
    }
}

/// The shells a session opened, closed with it.
private final class ShellList: Sendable {
    private let shells = Mutex<[LocalShell]>([])
    func add(_ shell: LocalShell) { shells.withLock { $0.append(shell) } }
    func takeAll() -> [LocalShell] { shells.withLock { shells in defer { shells = [] }; return shells } }
}
