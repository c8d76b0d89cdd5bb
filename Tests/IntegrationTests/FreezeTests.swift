// Silent failures with real processes: a node frozen with SIGSTOP keeps its
// sockets open and says nothing, as a VM pause, a hung disk or a long stall
// would. docs/replication.md: a peer heard from by no frame for leader_timeout_ms
// is down, so the majority elects and commits, a frozen follower costs the
// leader's clients no error, and a thawed old leader serves nothing stale.
import Foundation
import Glibc
import Reactor
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct FreezeTests {
    /// ENQUEUEs one at a time at `node` until one gets OK, on one connection
    /// that is dialled again only after a timeout or a close (as a retrying
    /// client would: a late reply must not be read as the next one's); the
    /// reply, or nil.
    private func firstOK(_ c: Cluster, at node: Int, payload: String, within seconds: Double) -> String? {
        var ok: String?
        var client: LineClient?
        Harness.eventually(timeout: seconds) {
            guard let conn = client ?? (try? LineClient(host: "127.0.0.1", port: c.clientPorts[node]!, timeoutMs: 3_000))
            else { return false }
            guard let r = try? conn.request("ENQUEUE \(payload)") else {
                client = nil
                return false
            }
            client = conn
            if r.hasPrefix("OK ") { ok = r }
            return ok != nil
        }
        return ok
    }

    @Test func aFrozenLeaderIsReplacedAndTheMajorityCommits() throws {
        let c = Cluster(name: "freeze-leader")
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        // As a client would: a leadership can still change just after the
        // agreement on a loaded machine (NOLEADER is never applied).
        let before = firstOK(c, at: 1, payload: "before-freeze", within: 20)
        #expect(before != nil, "no OK through node 1 before the freeze:\n\(c.log(1).suffix(2_000))")

        c.sendSignal(SIGSTOP, to: 3)
        defer { c.sendSignal(SIGCONT, to: 3) }
        let ok = firstOK(c, at: 1, payload: "during-freeze", within: 20)
        #expect(ok != nil, "no OK through node 1 while the leader was frozen:\n\(c.log(1).suffix(2_000))")
        #expect(c.awaitAgreement(on: 2, among: [1, 2]) != nil)
        #expect(c.log(2).contains("event=peer_silent"), "node 2 never noticed node 3 fall silent")

        // Thawed, node 3 takes over again (bully) and holds both tasks.
        c.sendSignal(SIGCONT, to: 3)
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        let at3 = try c.client(3)
        var got: Set<String> = []
        for _ in 0..<2 {
            let t = try at3.request("DEQUEUE 5000")
            if t.hasPrefix("TASK ") { got.insert(String(t.split(separator: " ", maxSplits: 3)[3])) }
        }
        #expect(got == ["before-freeze", "during-freeze"])
    }

    @Test func aFrozenFollowerCostsTheLeadersClientsNoError() throws {
        let c = Cluster(name: "freeze-follower")
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        let at3 = try c.client(3)
        #expect(try at3.request("ENQUEUE warm").hasPrefix("OK "))

        c.sendSignal(SIGSTOP, to: 1)
        defer { c.sendSignal(SIGCONT, to: 1) }
        // One ENQUEUE at a time for a few leader timeouts: every one is OK.
        var replies: [String] = []
        let end = Date().addingTimeInterval(2.5)
        while Date() < end && replies.count < 2_000 {
            replies.append(try at3.request("ENQUEUE f\(replies.count)"))
        }
        let errors = replies.filter { !$0.hasPrefix("OK ") }
        #expect(errors.isEmpty, "\(errors.count) of \(replies.count) were not OK, first: \(errors.first ?? "")")
        #expect(replies.count > 10)
        #expect(c.status(3)?["role"] == "leader")

        // Thawed, the follower catches up with everything it missed.
        c.sendSignal(SIGCONT, to: 1)
        #expect(Harness.eventually(timeout: 30) {
            guard let a = c.status(1)?["commit"], let b = c.status(3)?["commit"] else { return false }
            return a == b
        })
        #expect(c.status(1)?["ready"] == "\(replies.count + 1)")
    }

    @Test func aThawedOldLeaderNeverHandsOutATaskAckedMeanwhile() throws {
        let c = Cluster(name: "freeze-stale")
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        let ok = try c.client(3).request("ENQUEUE only-once")
        let id = try #require(ok.split(separator: " ").dropFirst().first.map(String.init))

        // A consumer's DEQUEUE reaches the old leader's socket while it is
        // frozen: it waits there, unread.
        let stale = try c.client(3)
        c.sendSignal(SIGSTOP, to: 3)
        defer { c.sendSignal(SIGCONT, to: 3) }
        try stale.send("DEQUEUE\n")

        // Meanwhile the majority elects node 2, which delivers and acks the task.
        _ = try #require(c.awaitAgreement(on: 2, among: [1, 2]))
        let at1 = try c.client(1)
        var task = ""
        #expect(Harness.eventually(timeout: 20) {
            task = (try? at1.request("DEQUEUE 1000")) ?? ""
            return task.hasPrefix("TASK ")
        })
        #expect(task.hasPrefix("TASK \(id) "), "\(task)")
        #expect(try at1.request("ACK \(id)").hasPrefix("OK \(id) "))

        // Thawed, the old leader reads the DEQUEUE first: it must not answer
        // from its stale state.
        c.sendSignal(SIGCONT, to: 3)
        let answer = try stale.readLine(timeoutMs: 20_000)
        #expect(!answer.hasPrefix("TASK \(id) "), "the old leader handed out acked task \(id): \(answer)")
        #expect(answer == "EMPTY" || answer.hasPrefix("ERR NOLEADER "), "\(answer)")
        #expect(c.log(3).contains("reason=lost_majority") || c.log(3).contains("reason=higher_epoch"),
                "node 3 never stepped down: \(c.log(3).suffix(1_500))")
    }
}
