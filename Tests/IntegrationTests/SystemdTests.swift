// The systemd contract: the unit passes systemd's own checks, and meshqd
// speaks sd_notify (READY, STATUS, WATCHDOG) to whoever owns $NOTIFY_SOCKET.
import Foundation
import Glibc
import Reactor
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct SystemdTests {
    static let unitPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("systemd/meshqd@.service").path

    /// The unit as installed, except that it points at the meshqd built here
    /// (verify insists the binary exists).
    private func instantiatedUnit() throws -> String {
        let dir = Harness.tempDir("unit")
        let text = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
            .replacingOccurrences(of: "/usr/local/bin/meshqd", with: Harness.meshqdPath)
        let path = dir + "/meshqd@1.service"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    // make test and CI install systemd's tools when missing: no silent skip.
    @Test func unitVerifiesCleanAndScoresOK() throws {
        let unit = try instantiatedUnit()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: unit).deletingLastPathComponent().path) }
        let (_, verify) = try Harness.run("/usr/bin/systemd-analyze", ["verify", "--man=no", unit])
        // verify exits 0 on warnings: any output at all is a finding.
        #expect(verify.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "systemd-analyze verify: \(verify)")
        let (_, security) = try Harness.run("/usr/bin/systemd-analyze", ["security", "--offline=yes", "--no-pager", unit])
        let line = security.split(separator: "\n").first { $0.contains("Overall exposure level") }.map(String.init) ?? ""
        let score = line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }
        #expect(score != nil && score! < 2.0, "exposure: \(line)")
        let unitText = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
        for directive in ["Type=notify", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
                          "StateDirectory=meshq/%i", "ConfigurationDirectory=meshq", "User=meshq",
                          "ExecStart=/usr/local/bin/meshqd --config /etc/meshq/meshq.conf --id %i"] {
            #expect(unitText.contains(directive), "missing \(directive)")
        }
    }

    @Test(arguments: ["path", "abstract"])
    func notifiesReadyStatusAndWatchdog(kind: String) throws {
        let d = Daemon(name: "notify")
        let sock = try DatagramSocket(path: kind == "path" ? d.dir + "/notify.sock" : "@meshq-test-\(getpid())-\(d.clientPort)")
        try d.start(environment: ["NOTIFY_SOCKET": sock.path, "WATCHDOG_USEC": "200000"])
        var got: [String] = []
        var watchdogs = 0
        let end = Date().addingTimeInterval(20)
        while Date() < end, watchdogs < 3 {
            guard let m = sock.receive(timeoutMs: 1_000) else { continue }
            got.append(m)
            if m.contains("WATCHDOG=1") { watchdogs += 1 }
        }
        let ready = got.first { $0.contains("READY=1") }
        #expect(ready != nil, "no READY=1 in \(got)")
        #expect(ready?.contains("STATUS=role=leader leader=1 epoch=1") == true, "READY without STATUS: \(ready ?? "")")
        #expect(watchdogs >= 3, "expected repeated WATCHDOG=1, got \(got)")
        d.stop()
        #expect(Harness.eventually(timeout: 5) { sock.receive(timeoutMs: 100)?.contains("STOPPING=1") == true })
    }
}

@Suite(.serialized) struct SystemdClusterTests {
    @Test func readyOnlyOnceTheNodeFollowsALeaderAndStatusTracksFailover() throws {
        let c = Cluster(name: "notify3")
        let sock = try DatagramSocket(path: c.dir + "/notify.sock")
        // Node 1 alone cannot join: no READY yet.
        try c.start([1], environment: [1: ["NOTIFY_SOCKET": sock.path]])
        var early: [String] = []
        while let m = sock.receive(timeoutMs: 300) { early.append(m) }
        #expect(!early.contains { $0.contains("READY=1") }, "READY before joining: \(early)")
        try c.start([2, 3])
        var got: [String] = []
        let joined = Harness.eventually {
            while let m = sock.receive(timeoutMs: 50) { got.append(m) }
            return got.contains { $0.contains("READY=1") }
        }
        #expect(joined)
        #expect(got.first { $0.contains("READY=1") }?.contains("STATUS=role=follower leader=") == true)
        // A failover shows in STATUS= without any READY again.
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        c.kill9(3)
        let moved = Harness.eventually {
            while let m = sock.receive(timeoutMs: 50) { got.append(m) }
            return got.contains { $0.contains("STATUS=role=follower leader=2 ") }
        }
        #expect(moved, "\(got)")
        #expect(got.filter { $0.contains("READY=1") }.count == 1)
    }
}
