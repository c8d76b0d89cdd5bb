// Routing with real processes: the link between nodes 1 and 3 is cut (a
// test-only switch in the peer transport), node 2 reaches both. Node 1 still
// follows leader 3 and serves clients, over node 2.
import Foundation
import Reactor
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct RoutingTests {
    @Test(.enabled(if: testHooksCompiled, Comment(rawValue: needsTestHooks)))
    func aFollowerCutOffFromTheLeaderIsServedOverARelay() throws {
        let c = Cluster(name: "routing")
        try c.start(environment: [1: ["MESHQ_TEST_CUT_PEERS": "3"], 3: ["MESHQ_TEST_CUT_PEERS": "1"]])
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        // Node 2 is heard directly, node 3 over node 2: both count as heard
        // from (docs/replication.md), and node 1 follows 3 without elections.
        #expect(Harness.eventually { c.status(1)?["peers_up"] == "2" })
        #expect(c.log(1).contains("event=test_fault_cut_peers"))

        let at1 = try c.client(1)
        let ok = try at1.request("ENQUEUE over-the-relay")
        #expect(ok.hasPrefix("OK "), "got \(ok)")
        let task = try at1.request("DEQUEUE")
        #expect(task.hasPrefix("TASK ") && task.hasSuffix(" over-the-relay"), "got \(task)")
        let id = task.split(separator: " ")[1]
        #expect(try at1.request("ACK \(id)").hasPrefix("OK "))
        #expect(try c.client(3).request("DEQUEUE") == "EMPTY")

        // The relayed heartbeats keep node 1 following: no election since.
        let epoch = c.status(1)?["epoch"]
        let starts = c.log(1).components(separatedBy: "event=election_start").count
        _ = try c.client(1).pipeline((0..<50).map { "ENQUEUE steady-\($0)" })
        #expect(Harness.eventually(timeout: 30) { c.status(1)?["ready"] == "50" })
        #expect(c.status(1)?["epoch"] == epoch)
        #expect(c.log(1).components(separatedBy: "event=election_start").count == starts)
    }
}
