import DTS

/// Every suite `dts run` and `dts list` know, by DTS name. Adding a suite: one file in `suites/`
/// and one line here.
public enum SuiteRegistry {
    /// The suite types, in `dts list` order.
    public static let all: [any TestSuite.Type] = [
        HostBasic.self,
        VirtBasic.self,
        VxlanSample.self,
        VM2VMVirtioNetPerf.self,
        VhostQemuMTU.self,
        VM2VMVirtioPMD.self,
        VhostUserLiveMigration.self,
        PVPVhostUserReconnect.self,
        PerfVirtioUserLoopback.self,
        RunnerSelfTest.self,
    ]

    /// The suite called `name`, if registered.
    public static func suite(named name: String) -> (any TestSuite.Type)? {
        all.first { $0.name == name }
    }
}
