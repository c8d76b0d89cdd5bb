// SystemdNotifier against a stand-in for systemd's notify socket (a real
// AF_UNIX datagram socket, by path and in the abstract namespace).
import Glibc
@testable import MeshQNode
import MeshQTestSupport
import Testing

@Suite struct SystemdNotifierTests {
    @Test func isInertWithoutNotifySocket() {
        #expect(SystemdNotifier(environment: [:]) == nil)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative/path"]) == nil)
    }

    @Test func watchdogIntervalFollowsSystemdsVariables() {
        #expect(SystemdNotifier.watchdogIntervalMs(environment: ["WATCHDOG_USEC": "2000000"]) == 2_000)
        #expect(SystemdNotifier.watchdogIntervalMs(environment: [:]) == nil)
        #expect(SystemdNotifier.watchdogIntervalMs(environment: ["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"]) == nil)
        #expect(SystemdNotifier.watchdogIntervalMs(environment: ["WATCHDOG_USEC": "2000000",
                                                                 "WATCHDOG_PID": "\(getpid())"]) == 2_000)
    }

    @Test(arguments: ["path", "abstract"])
    func messagesReachTheSocket(kind: String) throws {
        let path = kind == "path" ? Harness.tempDir("notify") + "/notify.sock" : "@meshq-notify-test-\(getpid())"
        let sock = try DatagramSocket(path: path)
        let n = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": path]))
        #expect(n.notify("READY=1\nSTATUS=role=leader"))
        #expect(sock.receive(timeoutMs: 10_000) == "READY=1\nSTATUS=role=leader")
    }
}
