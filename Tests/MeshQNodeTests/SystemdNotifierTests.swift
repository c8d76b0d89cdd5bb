// meshqd's SystemdNotifier against a stand-in for systemd's notify socket (a
// real AF_UNIX datagram socket, by path and in the abstract namespace), and
// the messages it sends for what the node reports.
import Glibc
@testable import MeshQCore
@testable import meshqd
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

    @Test func noticesBecomeSdNotifyMessages() {
        var s = StatusReport(id: 2, role: "follower", leader: 1, epoch: 7, lamport: 0, commit: 0, ready: 0, inflight: 0,
                             mailbox: 0, peersUp: 0, offsetMs: 0, extra: [])
        #expect(SystemdNotifier.message(for: .role(s, joined: true)) == "READY=1\nSTATUS=role=follower leader=1 epoch=7")
        s.role = "candidate"
        s.leader = nil
        #expect(SystemdNotifier.message(for: .role(s, joined: false)) == "STATUS=role=candidate leader=- epoch=7")
        #expect(SystemdNotifier.message(for: .reloading) == "RELOADING=1")
        #expect(SystemdNotifier.message(for: .reloaded) == "READY=1")
        #expect(SystemdNotifier.message(for: .stopping) == "STOPPING=1")
        #expect(SystemdNotifier.message(for: .alive) == "WATCHDOG=1")
    }

    @Test func supervisorFeedsTheWatchdogAtHalfItsPeriod() throws {
        let path = Harness.tempDir("notify") + "/notify.sock"
        let sock = try DatagramSocket(path: path)
        #expect(SystemdNotifier.supervisor(environment: [:]) == nil)
        let plain = try #require(SystemdNotifier.supervisor(environment: ["NOTIFY_SOCKET": path]))
        #expect(plain.heartbeatMs == nil)
        let s = try #require(SystemdNotifier.supervisor(environment: ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000"]))
        #expect(s.heartbeatMs == 1_500)
        s.notify(.alive)
        #expect(sock.receive(timeoutMs: 10_000) == "WATCHDOG=1")
    }
}
