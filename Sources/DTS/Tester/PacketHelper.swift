import Foundation

/// The Python (scapy) helper the ``Tester`` installs on the DUT: `dts_packets.py`, a resource of
/// this module (next to this file in the sources, in the `dts_DTS.resources` bundle next to the
/// built `dts`), so that it is linted and tested as Python. It takes every value as argv or JSON
/// on the command line; nothing is ever interpolated into its source.
enum PacketHelper {
    /// The name it is installed under on the DUT.
    static let fileName = "dts_packets.py"

    /// The helper's source text, read from the module's resource bundle.
    static func source() throws -> String {
        guard let url = Bundle.module.url(forResource: "dts_packets", withExtension: "py") else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: Bundle.module.bundlePath + "/" + fileName])
        }
        return try String(contentsOf: url, encoding: .utf8)
    }
}
