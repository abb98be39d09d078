import DTSControl
import DTSSSH

/// An error outside the tests: a VM did not boot or died, a DUT or a guest cannot be reached, a
/// host resource (a port, hugepages, a program) is missing. When one ends `setUpAll` or `setUp`,
/// the cases are ERROR, not BLOCKED, and `dts run` exits with
/// ``DTSExitCode/infrastructureError`` (3) instead of ``DTSExitCode/testFailures`` (1): a lab
/// sees a broken machine apart from a broken test. A `verify` that fails in `setUpAll` still blocks.
public protocol InfrastructureError: Error {}

extension VMStartError: InfrastructureError {}
extension VMFault: InfrastructureError {}
extension ResourceError: InfrastructureError {}
extension RemoteDUTError: InfrastructureError {}
extension RunnerError: InfrastructureError {}
extension LocalSessionError: InfrastructureError {}
extension BackendError: InfrastructureError {}
extension SSHError: InfrastructureError {}
extension ControlError: InfrastructureError {}
