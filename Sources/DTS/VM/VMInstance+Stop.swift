import DTSControl
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The stop steps (see ``VMInstance/stop()``).
extension VMInstance {
    /// Closes the VM DUT (its shells and SSH connection), or the SSH connection of a start that
    /// failed after the login.
    func closeSessions() async {
        let (dut, ssh) = parts { ($0.dut, $0.ssh) }
        if let dut { await dut.close() } else { await ssh?.close() }
    }

    /// Asks QEMU to end: the guest powers off through its agent; if QEMU still runs, QMP `quit`.
    /// Each step only while QEMU runs. Returns whether QEMU is gone (also when it never started).
    func softShutdown() async -> Bool {
        let (qemu, agent, qmp, migratedAway) = parts { ($0.qemu, $0.guestAgent, $0.qmp, $0.migratedAway) }
        guard let qemu else { return true }
        var gone = !(await qemu.isRunning())
        // A guest that migrated away runs elsewhere now: its old QEMU only quits.
        if !gone, !migratedAway, let agent, agent.isConnected, (try? await agent.shutdown(mode: .powerdown, replyGrace: deadlines.agentShutdownReply)) != nil {
            gone = await qemu.waitForExit(within: deadlines.agentShutdown)
        }
        agent?.close()
        if !gone, let qmp, qmp.isConnected {
            try? await qmp.quit(timeout: deadlines.quitReply)
            gone = await qemu.waitForExit(within: deadlines.quit)
        }
        qmp?.close()
        return gone
    }

    /// SIGTERM to QEMU (its process group, for a child of dts); if it is still there after a grace
    /// period, SIGKILL.
    func hardShutdown() async {
        guard let qemu = parts({ $0.qemu }) else { return }
        await qemu.signal(SIGTERM)
        if await qemu.waitForExit(within: deadlines.terminateGrace) { return }
        await qemu.signal(SIGKILL)
        _ = await qemu.waitForExit(within: deadlines.kill)
    }

    /// Frees what the VM held on its host (disk overlays, sockets, pid file, forwards, ports),
    /// brings a remote host's logs here, and moves the VM's files to the log directory, if one was given.
    func collectLogs() async {
        await host.removeOverlays(of: command)
        await host.finish(vm: vmName, command: command, localDirectory: localDirectory)
        guard let target = options.logDirectory else { return }
        let fm = FileManager.default
        try? fm.createDirectory(atPath: target, withIntermediateDirectories: true)
        for file in (try? fm.contentsOfDirectory(atPath: localDirectory)) ?? [] where !file.hasSuffix(".sock") {
            try? fm.removeItem(atPath: "\(target)/\(file)")
            try? fm.moveItem(atPath: "\(localDirectory)/\(file)", toPath: "\(target)/\(file)")
        }
        try? fm.removeItem(atPath: localDirectory)
        parts { $0.logDirectory = target }
    }
}
