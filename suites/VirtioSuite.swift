import DTS

/// What the vhost/virtio suites with a host vhost testpmd and VMs on its sockets keep between a
/// case's steps, and the set-up and tear-down they share: a suite subclasses it and conforms to
/// ``TestSuite`` itself (its name, cases and settings).
///
/// `setUpAll` makes the work directory (``VirtioCommon/makeWorkDirectory()``); `tearDown` stops
/// what the case started, guests first (``VirtioCommon/stopAll(guestPMDs:kvms:vhost:)``).
@SuiteActor
class VirtioSuite {
    let context: TestContext
    let common: VirtioCommon
    /// The suite's work directory on the DUT (vhost-user sockets, logs).
    var dir = ""
    /// The host's vhost-user testpmd of the running case.
    var vhost: PmdOutput?
    /// The case's VMs, and their VM DUTs once started.
    var kvms: [QEMUKvm] = []
    var vms: [VirtDut] = []
    /// testpmd in the guests, when the case runs one.
    var guestPMDs: [PmdOutput] = []

    init(context: TestContext, suite: String) {
        self.context = context
        self.common = VirtioCommon(context: context, suite: suite)
    }

    /// Makes the work directory; a suite's `setUpAll` reads its settings, then calls this.
    func makeWorkDirectory() async throws {
        dir = try await common.makeWorkDirectory()
    }

    /// DTS `tear_down`: stops the case's guest testpmds, VMs and vhost testpmd.
    func tearDown() async throws {
        await common.stopAll(guestPMDs: guestPMDs, kvms: kvms, vhost: vhost)
        (guestPMDs, kvms, vms, vhost) = ([], [], [], nil)
    }
}
