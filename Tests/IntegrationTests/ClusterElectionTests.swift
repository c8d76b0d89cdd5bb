// Three real meshqd processes: Bully election with epochs over the peer bus.
import Foundation
import Reactor
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct ClusterElectionTests {
    @Test func highestNodeLeadsAndAllAgreeOnLeaderAndEpoch() throws {
        let c = Cluster(name: "elect")
        try c.start()
        let epoch = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        #expect(epoch >= 1)
        #expect(c.status(1)?["peers_up"] == "2")
        #expect(c.log(3).contains("event=leader_elected node=3"))
        // Lamport stamps cross the bus: followers' clocks moved past their own few events.
        #expect(UInt64(c.status(1)?["lamport"] ?? "0")! > 3)
        // A follower serves the queue by relaying to the leader.
        let reply = try c.client(1).request("ENQUEUE x")
        #expect(reply.hasPrefix("OK "), "\(reply)\n\(c.log(1).suffix(3_000))\n\(c.log(3).suffix(3_000))")
    }

    @Test func leaderCrashFailsOverAndTheReturningHigherNodeTakesBack() throws {
        let c = Cluster(name: "failover")
        try c.start()
        let e1 = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        c.kill9(3)
        let e2 = try #require(c.awaitAgreement(on: 2, among: [1, 2]))
        #expect(e2 > e1)
        #expect(c.log(1).contains("event=leader_timeout") || c.log(2).contains("event=leader_timeout"))
        try c.start([3])
        let e3 = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        #expect(e3 > e2)
    }

    @Test func loneSurvivorOfThreeNeverLeads() throws {
        let c = Cluster(name: "survivor")
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        c.kill9(3)
        c.kill9(2)
        // Wait until node 1 has tried and failed to win several times.
        let tried = Harness.eventually(timeout: 30) {
            c.log(1).components(separatedBy: "event=election_start").count > 4
        }
        #expect(tried)
        let s = try #require(c.status(1))
        #expect(s["role"] != "leader")
        #expect(s["leader"] == "-")
        #expect(s["peers_up"] == "0")
    }
}

@Suite(.serialized) struct ClusterTimeSyncTests {
    @Test func followersSampleTheLeadersClock() throws {
        let c = Cluster(name: "cristian", cluster: """
            heartbeat_interval_ms = 50
            leader_timeout_ms = 400
            election_timeout_ms = 200
            time_sync_interval_ms = 200
            """)
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        #expect(Harness.eventually { c.log(1).contains("event=time_sync node=1 leader=3 offset_ms=") })
        #expect(Harness.eventually { c.log(2).components(separatedBy: "event=time_sync").count > 3 })
        // One machine, one clock: the estimate is near zero, and the leader reports 0.
        let offset = Double(try #require(c.status(1)?["offset_ms"]))!
        #expect(abs(offset) < 100)
        #expect(c.status(3)?["offset_ms"] == "0.00")
        let line = c.log(2).split(separator: "\n").last { $0.contains("event=time_sync") }.map(String.init) ?? ""
        #expect(line.hasPrefix("level=info ") && line.contains(" rtt_ms="))
    }
}

@Suite(.serialized) struct PeerBusTests {
    @Test func aPeerThatSendsGarbageIsDroppedAndLoggedAndTheNodeCarriesOn() throws {
        let c = Cluster(name: "garbage")
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        for junk in ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\u{1}\u{0}\u{0}\u{0}\u{1}", String(repeating: "\u{0}", count: 64)] {
            let bad = try LineClient(host: "127.0.0.1", port: c.peerPorts[1]!, timeoutMs: 5_000)
            try bad.send(junk)
            // A frame of garbage closes the link; a short one waits for more, so end it.
            if junk.count < 8 { bad.close() } else { _ = try? bad.readToEnd() }
        }
        #expect(Harness.eventually { c.log(1).contains("event=peer_protocol_error") })
        // An impostor claiming to be a node that is not in the config is refused too.
        let impostor = try LineClient(host: "127.0.0.1", port: c.peerPorts[1]!, timeoutMs: 5_000)
        let hello = PeerEnvelopeBytes.hello(from: 9)
        try impostor.send(bytes: hello)
        _ = try? impostor.readToEnd()
        #expect(Harness.eventually { c.log(1).contains("hello from unknown node 9") })
        // The node still serves and still follows the leader.
        #expect(try c.client(1).request("PING") == "PONG")
        #expect(c.status(1)?["leader"] == "3")
    }
}

/// A hand-made hello frame, so the test does not depend on the codec it checks.
enum PeerEnvelopeBytes {
    static func hello(from id: UInt32) -> [UInt8] {
        var body: [UInt8] = [3, 1]                                  // version 3, type hello
        for v in [id, 1] { body += withUnsafeBytes(of: v.littleEndian, Array.init) }       // from, to
        for _ in 0..<2 { body += [UInt8](repeating: 0, count: 8) }                         // lamport, epoch
        body += withUnsafeBytes(of: id.littleEndian, Array.init)                           // node id
        body += [0, 0, 0, 0]                                                               // empty proof
        return withUnsafeBytes(of: UInt32(body.count).littleEndian, Array.init) + body
    }
}

@Suite(.serialized) struct ClusterSecretTests {
    @Test func peersProveTheSecretAndAnImpostorNeverJoins() throws {
        let c = Cluster(name: "secret", cluster: """
            heartbeat_interval_ms = 50
            leader_timeout_ms = 400
            election_timeout_ms = 200
            cluster_secret = correct horse battery staple
            """)
        // Node 1 runs with a different secret (a copy of the file, one line changed).
        let wrong = c.dir + "/wrong.conf"
        try String(contentsOfFile: c.configPath, encoding: .utf8)
            .replacingOccurrences(of: "correct horse battery staple", with: "tr0ub4dor&3")
            .write(toFile: wrong, atomically: true, encoding: .utf8)
        try c.start([1], configs: [1: wrong])
        try c.start([2, 3])
        // 2 and 3 know the secret: they elect 3 between them (a majority of three).
        _ = try #require(c.awaitAgreement(on: 3, among: [2, 3]))
        #expect(Harness.eventually { c.log(2).contains("event=peer_auth_failed") && c.log(1).contains("event=peer_auth_failed") })
        let s1 = try #require(c.status(1))
        #expect(s1["peers_up"] == "0")
        #expect(s1["leader"] == "-")
        #expect(c.status(3)?["peers_up"] == "1")
        // The secret itself never appears in any log.
        for id in [1, 2, 3] {
            #expect(!c.log(id).contains("horse") && !c.log(id).contains("tr0ub4dor"))
        }
    }
}
