// meshq enqueue against real three-node clusters whose nodes are frozen
// (SIGSTOP: sockets stay open, nothing answers) or killed, so the reply to an
// ENQUEUE is NOQUORUM, a NOLEADER that says it may have been applied, or never
// comes. docs/protocol.md: the outcome is then unknown; the CLI must say so,
// name the task and the node, exit 1, and never send the task again (the
// cluster holds at most one copy once it has settled).
// Timings: a long leader_timeout_ms keeps the frozen peers "up" for 5 s, so
// the leader runs its round and gives up after commit_timeout_ms first.
import Foundation
import Glibc
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct UnknownOutcomeTests {
    static let timings = """
        heartbeat_interval_ms = 50
        leader_timeout_ms = 5000
        election_timeout_ms = 200
        commit_timeout_ms = 500
        log_level = debug
        """

    private func address(_ c: Cluster, _ id: Int) -> String { "127.0.0.1:\(c.clientPorts[id]!)" }

    @Test func noquorumAtTheLeaderIsReportedUnknownAndNotSentAgain() throws {
        let c = Cluster(name: "cli-noquorum", cluster: Self.timings)
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        try c.awaitServing(3)
        let leader = address(c, 3)
        c.sendSignal(SIGSTOP, to: 1)
        c.sendSignal(SIGSTOP, to: 2)
        let r = try CLI.run(["enqueue", "--nodes", [3, 1, 2].map { address(c, $0) }.joined(separator: ","), "precious", "one"])
        c.sendSignal(SIGCONT, to: 1)
        c.sendSignal(SIGCONT, to: 2)
        #expect(r.status == 1)
        #expect(r.out.hasPrefix("UNKNOWN \(leader) ERR NOQUORUM "), "\(r.out)")
        #expect(r.err.contains("meshq: ENQUEUE 'precious one' at \(leader): outcome unknown (ERR NOQUORUM "), "\(r.err)")
        #expect(r.err.contains("not sent again"), "\(r.err)")
        #expect(try copies(of: ["precious one"], in: c, among: [1, 2, 3])["precious one"]! <= 1)
    }

    @Test func aReplyLostWithItsNodeIsUnknownAndNotSentAgain() throws {
        let c = Cluster(name: "cli-lost", cluster: Self.timings)
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        let follower = address(c, 1)
        c.sendSignal(SIGSTOP, to: 3)
        let run = try CLI.start(["enqueue", "--nodes", "\(follower),\(address(c, 2))", "precious-two"])
        // Node 1 relays the ENQUEUE to the frozen leader and waits; it dies
        // with the command in flight, before any reply. The client relay's
        // form (`to=`), not a peer message node 1 passes on around a link it
        // thinks cut (`origin= dest=`, same event): killed after one of those,
        // node 1 may not have the ENQUEUE yet, and the CLI rightly takes it to node 2.
        let relayed = Harness.eventually(timeout: 30) { c.log(1).contains("event=route_forward node=1 to=3 ") }
        c.kill9(1)
        let r = run.wait()
        c.sendSignal(SIGCONT, to: 3)
        #expect(relayed)
        #expect(r.status == 1)
        #expect(r.out.hasPrefix("UNKNOWN \(follower) no reply before the connection failed"),
                "\(r.out)\nnode 1:\n\(c.log(1).suffix(1500))\nnode 2:\n\(c.log(2).suffix(1500))")
        #expect(r.err.contains("meshq: ENQUEUE 'precious-two' at \(follower): outcome unknown (no reply"), "\(r.err)")
        #expect(try copies(of: ["precious-two"], in: c, among: [2, 3])["precious-two"]! <= 1)
    }

    @Test func pipelinedLinesWithAnUnknownOutcomeAreEachReported() throws {
        let c = Cluster(name: "cli-pipe-unknown", cluster: Self.timings)
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        let follower = address(c, 1)
        c.sendSignal(SIGSTOP, to: 3)
        // The relaying follower gives up on the frozen leader (or loses it to
        // an election) and answers NOLEADER "... may have been applied".
        let r = try CLI.run(["enqueue", "--nodes", follower, "-"], stdin: "u-1\n\nu-2\nu-3\n")
        c.sendSignal(SIGCONT, to: 3)
        #expect(r.status == 1)
        let out = r.out.split(separator: "\n")
        #expect(out.count == 3 && out.allSatisfy { $0.hasPrefix("UNKNOWN \(follower) ERR NOLEADER ") }, "\(r.out)")
        for (line, task) in [(1, "u-1"), (3, "u-2"), (4, "u-3")] {
            #expect(r.err.contains("meshq: line \(line) '\(task)' at \(follower): outcome unknown (ERR NOLEADER "), "\(r.err)")
        }
        #expect(r.err.contains("3 of 3 tasks have an unknown outcome (lines 1, 3, 4)"), "\(r.err)")
        let n = try copies(of: ["u-1", "u-2", "u-3"], in: c, among: [1, 2, 3])
        #expect(n.values.allSatisfy { $0 <= 1 }, "\(n)")
    }

    @Test func anAckWhoseOutcomeIsUnknownIsSentAgainAndTakes() throws {
        let c = Cluster(name: "cli-ack-unknown", cluster: Self.timings)
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        #expect(try c.client(3).request("ENQUEUE job").hasPrefix("OK "))
        let dir = c.dir
        // The task's command waits for the test's go, so the leader can be
        // frozen while it runs; its ACK then goes to a follower whose leader is
        // silent, and the answer is NOLEADER "... may have been applied".
        let run = try CLI.start(["work", "--nodes", "\(address(c, 1)),\(address(c, 2))", "--count", "1", "-v",
                                 "--wait-ms", "1000", "--exec",
                                 "cat > /dev/null; touch \(dir)/started; while [ ! -e \(dir)/go ]; do sleep 0.05; done"])
        #expect(Harness.eventually(timeout: 30) { FileManager.default.fileExists(atPath: dir + "/started") })
        c.sendSignal(SIGSTOP, to: 3)
        _ = FileManager.default.createFile(atPath: dir + "/go", contents: nil)
        // Node 1 relays the ACK to the silent leader and gives up on it: the
        // ACK's outcome is unknown to the worker, which sends it again. The
        // leader is thawed then, so an ACK can take.
        let retried = Harness.eventually(timeout: 60) {
            run.err.contains("meshq: ACK 1: outcome unknown at \(address(c, 1)): ERR NOLEADER ")
        }
        c.sendSignal(SIGCONT, to: 3)
        let r = run.wait()
        #expect(retried, "\(r.err)")
        // ACK is safe to repeat: OK, or NOTFOUND when the first one took.
        #expect(r.status == 0, "\(r.err)")
        #expect(r.err.contains("task=1 acked "), "\(r.err)")
        #expect(!r.err.contains("meshq: ACK 1: ERR"), "\(r.err)")
        _ = try copies(of: [], in: c, among: [1, 2, 3])
        let acked = Harness.eventually(timeout: 30) {
            [1, 2, 3].contains { c.status($0)?["role"] == "leader" && c.status($0)?["tasks"] == "0" }
        }
        #expect(acked, "\([1, 2, 3].map { c.status($0) ?? [:] })")
    }

    /// Once the nodes agree on a leader and every mailbox is empty, drains the
    /// leader and counts each payload: a task sent twice would show up twice.
    private func copies(of payloads: [String], in c: Cluster, among: [Int]) throws -> [String: Int] {
        var leader: Int?
        let settled = Harness.eventually(timeout: 60) {
            let s = among.compactMap { c.status($0) }
            guard s.count == among.count, let l = s.first?["leader"], let id = Int(l),
                  s.allSatisfy({ $0["leader"] == l && $0["mailbox"] == "0" }),
                  c.status(id)?["role"] == "leader" else { return false }
            leader = id
            return true
        }
        try #require(settled, "the cluster did not settle: \(among.map { c.status($0) ?? [:] })")
        let conn = try c.client(leader!)
        var count = Dictionary(uniqueKeysWithValues: payloads.map { ($0, 0) })
        while true {
            let r = try conn.request("DEQUEUE")
            if r == "EMPTY" { break }
            let parts = r.split(separator: " ", maxSplits: 3).map(String.init)
            if parts.count == 4, count[parts[3]] != nil { count[parts[3]]! += 1 }
        }
        return count
    }
}
