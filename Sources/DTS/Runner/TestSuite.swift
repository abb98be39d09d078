import Foundation

/// The global actor test suites run on: hooks and cases of a suite run one at a time, so a suite
/// keeps mutable state (`var vm: VirtDut?`) without locks.
@globalActor public actor SuiteActor {
    /// The shared instance.
    public static let shared = SuiteActor()
}

/// A DTS test suite: a class in `suites/` registered in `SuiteRegistry`.
///
/// ```swift
/// final class HostBasic: TestSuite {
///     static let name = "host_basic"
///     static let cases: [TestCase<HostBasic>] = [
///         .functional("test_uname") { try await $0.testUname() },
///     ]
///     let context: TestContext
///     init(context: TestContext) { self.context = context }
///     func testUname() async throws { ... }
/// }
/// ```
/// Hooks mirror DTS's `set_up_all`, `set_up`, `tear_down`, `tear_down_all`; each defaults to
/// doing nothing. `tearDown` runs after every case, whatever its outcome; `tearDownAll` always runs.
@SuiteActor
public protocol TestSuite: AnyObject, Sendable {
    /// The DTS name (`virt_basic`): `dts run --suite <name>`, `conf/<name>.cfg`, result keys.
    nonisolated static var name: String { get }
    /// The cases, in run order. Names start with `test_` (`test_perf_` for performance cases by habit).
    nonisolated static var cases: [TestCase<Self>] { get }
    /// How long one case may run before it is cancelled and recorded as ERROR (default 10 minutes).
    nonisolated static var defaultCaseTimeout: Duration { get }
    /// Whether the suite is internal to dts (a check of the framework itself, such as
    /// `runner_selftest`) rather than a test of DPDK: `dts list` hides it unless `--all` is given.
    /// It still runs when named (`dts run --suite`, `execution.cfg`). Default `false`.
    nonisolated static var isInternal: Bool { get }
    /// Creates the suite for one run.
    init(context: TestContext) throws
    /// Once before the first case (DTS `set_up_all`). A throw makes every case BLOCKED (or SKIPPED for ``skip(_:)``).
    func setUpAll() async throws
    /// Before each case (DTS `set_up`).
    func setUp() async throws
    /// After each case, even a failed one (DTS `tear_down`).
    func tearDown() async throws
    /// After the last case, always (DTS `tear_down_all`).
    func tearDownAll() async throws
}

extension TestSuite {
    public nonisolated static var defaultCaseTimeout: Duration { .seconds(600) }
    public nonisolated static var isInternal: Bool { false }
    public func setUpAll() async throws {}
    public func setUp() async throws {}
    public func tearDown() async throws {}
    public func tearDownAll() async throws {}
}

/// Whether a case checks behaviour or measures performance (DTS's `func` and `perf` execution parameters).
public enum CaseKind: String, Sendable, Codable {
    /// A functional case; runs when the execution says `func=true` (the default).
    case functional
    /// A performance case; runs when the execution says `perf=true`.
    case performance
}

/// One case of a suite: its DTS name, its kind, an optional deadline and the code.
public struct TestCase<Suite: TestSuite>: Sendable {
    /// The DTS name, `test_*`.
    public let name: String
    /// Functional or performance.
    public let kind: CaseKind
    /// Overrides the suite's ``TestSuite/defaultCaseTimeout``.
    public let timeout: Duration?
    /// The case's code.
    public let body: @SuiteActor @Sendable (Suite) async throws -> Void

    /// Creates a case.
    public init(_ name: String, kind: CaseKind, timeout: Duration? = nil,
                _ body: @escaping @SuiteActor @Sendable (Suite) async throws -> Void) {
        self.name = name
        self.kind = kind
        self.timeout = timeout
        self.body = body
    }

    /// A functional case.
    public static func functional(_ name: String, timeout: Duration? = nil,
                                  _ body: @escaping @SuiteActor @Sendable (Suite) async throws -> Void) -> TestCase {
        TestCase(name, kind: .functional, timeout: timeout, body)
    }

    /// A performance case; record its numbers with ``TestContext/recordPerformance(_:)``.
    public static func performance(_ name: String, timeout: Duration? = nil,
                                   _ body: @escaping @SuiteActor @Sendable (Suite) async throws -> Void) -> TestCase {
        TestCase(name, kind: .performance, timeout: timeout, body)
    }
}

/// A case's name and kind, without its code (for listing and planning).
public struct CaseInfo: Sendable, Equatable {
    /// The DTS name.
    public var name: String
    /// Functional or performance.
    public var kind: CaseKind
    /// The deadline (the case's own, else the suite default).
    public var timeout: Duration
}

/// Type-erased facts about a suite type.
public enum SuiteInfo {
    /// The name and cases of a suite type.
    public static func cases(of type: any TestSuite.Type) -> [CaseInfo] {
        func open<S: TestSuite>(_ type: S.Type) -> [CaseInfo] {
            S.cases.map { CaseInfo(name: $0.name, kind: $0.kind, timeout: $0.timeout ?? S.defaultCaseTimeout) }
        }
        return open(type)
    }

    /// Problems with a set of suites: duplicate suite names, duplicate case names, names not
    /// starting with `test_`, empty suites. Empty when all is well.
    public static func validate(_ suites: [any TestSuite.Type]) -> [String] {
        var problems: [String] = []
        var seen: Set<String> = []
        for suite in suites {
            let name = suite.name
            if name.isEmpty || name.contains("/") || name.contains(" ") { problems.append("suite name '\(name)' is not a DTS name") }
            if !seen.insert(name).inserted { problems.append("suite name '\(name)' is registered twice") }
            let cases = cases(of: suite)
            if cases.isEmpty { problems.append("\(name): no cases") }
            var caseNames: Set<String> = []
            for info in cases {
                if !info.name.hasPrefix("test_") { problems.append("\(name): case '\(info.name)' does not start with test_") }
                if !caseNames.insert(info.name).inserted { problems.append("\(name): case '\(info.name)' is defined twice") }
            }
        }
        return problems
    }
}

// MARK: - Outcomes a case reports

/// A check failed: the case is FAILED. Thrown by ``verify(_:_:file:line:)``.
public struct TestFailure: Error, Sendable, CustomStringConvertible {
    /// What was expected.
    public var message: String
    /// Where the check is.
    public var file: String
    /// Where the check is.
    public var line: Int

    /// Creates a failure.
    public init(message: String, file: String = #fileID, line: Int = #line) {
        self.message = message
        self.file = file
        self.line = line
    }

    public var description: String { "\(message) (\((file as NSString).lastPathComponent):\(line))" }
}

/// The case (or suite) does not apply here: SKIPPED. Thrown by ``skip(_:)``.
public struct TestSkip: Error, Sendable, CustomStringConvertible {
    /// Why.
    public var reason: String
    /// Creates a skip.
    public init(reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Fails the running case with `message` unless `condition` holds (DTS `verify`).
public func verify(_ condition: Bool, _ message: @autoclosure () -> String,
                   file: String = #fileID, line: Int = #line) throws {
    if !condition { throw TestFailure(message: message(), file: file, line: line) }
}

/// Marks the running case SKIPPED (DTS `skip_case`); in `setUpAll`, every case of the suite.
public func skip(_ reason: String) throws -> Never {
    throw TestSkip(reason: reason)
}

/// An error with more to say than its one- or two-line description: the runner puts the
/// description in a case's reason and ``details`` (log tails, say) in the log.
public protocol DetailedError: Error, CustomStringConvertible {
    /// The description and whatever else helps to find the cause.
    var details: String { get }
}
