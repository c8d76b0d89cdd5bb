// Replication as a client sees it: whatever a node answered OK to stays in the
// queue when any minority of the cluster dies, whichever node the client used;
// a node that missed writes catches up; a minority never acknowledges.
// Three real meshqd processes per test, fast timings (see ClusterHarness).
import Foundation
import Glibc
import Reactor
import MeshQClient
import MeshQTestSupport
import Testing

@Suite(.serialized) struct ReplicationTests {
    @Test func enqueueAtAFollowerDequeueAtTheOtherAck() throws {
        let c = Cluster(name: "repl-basic")
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))

        let enq = try c.patientClient(1).request("ENQUEUE hello from node 1")
        let ok = try #require(parseOK(enq), "ENQUEUE at follower 1: \(enq)")
        let deq = try c.patientClient(2).request("DEQUEUE")
        let task = try #require(parseTask(deq), "DEQUEUE at follower 2: \(deq)")
        #expect(task.id == ok.id)
        #expect(task.payload == "hello from node 1")
        // Acked where it was enqueued, not where it was leased: any node serves any command.
        let ack = try c.patientClient(1).request("ACK \(ok.id)")
        #expect(parseOK(ack)?.id == ok.id, "ACK at follower 1: \(ack)")
        #expect(try c.patientClient(3).request("DEQUEUE") == "EMPTY")

        let converged = c.awaitStatuses([1, 2, 3]) { s in
            oneCommitAboveZero(s) && s.allSatisfy { $0["ready"] == "0" && $0["inflight"] == "0" }
        }
        #expect(converged, "STATUS never converged: \(c.statusReport([1, 2, 3]))")
    }

    @Test func killLeaderUnderPipelinedLoadLosesNothingAcknowledged() throws {
        let c = Cluster(name: "repl-kill-leader")
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))

        // The producer sits on follower 1, so every write is forwarded to the leader
        // it is about to lose; it moves to node 2 only if node 1 drops it.
        let producer = Producer(c, via: [1, 2])
        let sent = (0..<5_000).map { "t-\($0)" }
        for (n, start) in stride(from: 0, to: sent.count, by: 100).enumerated() {
            // The leader dies with a batch in flight, once five batches were acknowledged.
            let midway: (after: Int, run: () -> Void)? = n == 5 ? (40, { c.kill9(3) }) : nil
            let accepted = producer.enqueue(Array(sent[start..<start + 100]), midway: midway)
            try #require(accepted, "batch \(n) not accepted in 30 s: \(c.statusReport([1, 2]))")
        }
        #expect(producer.unexpected.isEmpty, "unexpected replies: \(producer.unexpected.prefix(5))")
        _ = try #require(c.awaitAgreement(on: 2, among: [1, 2]))
        if !producer.queued.isEmpty {
            // Parked tasks travel to the new leader on their own; drain after they arrived.
            let delivered = c.awaitStatuses([1, 2]) { $0.allSatisfy { $0["mailbox"] == "0" } }
            #expect(delivered, "parked tasks never left the mailbox: \(c.statusReport([1, 2]))")
        }

        let drained = try drain(c, at: 2, timeout: 300)
        let lostOK = producer.ok.subtracting(drained)
        #expect(lostOK.isEmpty, "\(lostOK.count) acknowledged (OK) tasks lost, e.g. \(lostOK.sorted().prefix(10))")
        let lostParked = producer.queued.subtracting(drained)
        #expect(lostParked.isEmpty, "\(lostParked.count) parked (QUEUED) tasks lost, e.g. \(lostParked.sorted().prefix(10))")
        #expect(Set(drained).isSubset(of: sent), "delivered a task nobody sent")
        #expect(try c.patientClient(2).request("DEQUEUE") == "EMPTY", "an acked task came back")

        // Node 3 comes back with a log from before the drain and leads again:
        // the tasks acked while it was away must stay acked.
        try c.start([3])
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        let after = c.requestUntilServed(3, "DEQUEUE")
        #expect(after == "EMPTY", "the returning leader handed out an acked task: \(after ?? "no answer")")
        let converged = c.awaitStatuses([1, 2, 3]) { oneCommitAboveZero($0) }
        #expect(converged, "commit indexes never converged: \(c.statusReport([1, 2, 3]))")
    }

    @Test func followerStoppedDuringEnqueuesCatchesUp() throws {
        let c = Cluster(name: "repl-catch-up")
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))

        c.kill9(1)
        let payloads = (0..<500).map { "c-\($0)" }
        let replies = try c.patientClient(3).pipeline(payloads.map { "ENQUEUE \($0)" })
        let refused = replies.filter { parseOK($0) == nil }
        #expect(refused.isEmpty, "2 of 3 is a majority, yet: \(refused.prefix(3))")

        try c.start([1])
        var leaderView: [String: String] = [:]
        let caughtUp = Harness.eventually(timeout: 30) {
            guard let s3 = c.status(3), let s1 = c.status(1) else { return false }
            leaderView = s3
            return s3["ready"] == "500" && s1["commit"] == s3["commit"] && s1["ready"] == s3["ready"]
        }
        #expect(caughtUp, "node 1 did not catch up with leader 3 (\(leaderView)): \(c.statusReport([1]))")

        // Only 1 and 2 remain: node 1's copy now matters.
        c.kill9(3)
        _ = try #require(c.awaitAgreement(on: 2, among: [1, 2]))
        let drained = try drain(c, at: 1)
        #expect(Set(drained) == Set(payloads), "missing: \(Set(payloads).subtracting(drained).sorted().prefix(10))")
        let twice = duplicates(drained)
        #expect(twice.isEmpty, "delivered twice in one drain: \(twice.sorted().prefix(10))")
        #expect(try c.patientClient(1).request("DEQUEUE") == "EMPTY")
    }

    @Test func twoOfThreeDownTheSurvivorRefusesToCommit() throws {
        let c = Cluster(name: "repl-minority")
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))

        c.kill9(3)
        c.kill9(2)
        // Asked at once (node 1 may still believe in leader 3), then once it knows it is alone.
        try expectRefusal(c.patientClient(1), "right after the crash")
        let alone = c.awaitStatuses([1]) { $0[0]["leader"] == "-" && $0[0]["role"] != "leader" }
        #expect(alone, "node 1 never gave up on a leader: \(c.statusReport([1]))")
        try expectRefusal(c.patientClient(1), "once alone")
    }

    @Test func oldLeaderReturnsAndClusterConverges() throws {
        let c = Cluster(name: "repl-return")
        try c.start()
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))

        let first = (0..<100).map { "a-\($0)" }
        let replies = try c.patientClient(3).pipeline(first.map { "ENQUEUE \($0)" })
        #expect(replies.allSatisfy { parseOK($0) != nil }, "at leader 3: \(replies.first { parseOK($0) == nil } ?? "")")

        c.kill9(3)
        _ = try #require(c.awaitAgreement(on: 2, among: [1, 2]))
        let producer = Producer(c, via: [1])
        let second = (0..<100).map { "b-\($0)" }
        #expect(producer.enqueue(second), "not accepted: \(c.statusReport([1, 2]))")
        #expect(producer.ok == Set(second), "not OK with a leader in place: \(Set(second).subtracting(producer.ok).count)")
        #expect(producer.unexpected.isEmpty, "unexpected replies: \(producer.unexpected.prefix(5))")

        // Node 3 missed the second hundred and takes the lead back anyway.
        try c.start([3])
        _ = try #require(c.awaitAgreement(on: 3, among: [1, 2, 3]))
        let drained = try drain(c, at: 2)
        let expected = Set(first + second)
        #expect(Set(drained) == expected,
                "missing \(expected.subtracting(drained).sorted().prefix(10)), extra \(Set(drained).subtracting(expected).sorted().prefix(10))")
        // A payload resent after a lost reply may legitimately be queued twice; nothing else may.
        let twice = duplicates(drained).subtracting(producer.resentBlind)
        #expect(twice.isEmpty, "delivered twice: \(twice.sorted().prefix(10))")
        #expect(try c.patientClient(2).request("DEQUEUE") == "EMPTY")
        let converged = c.awaitStatuses([1, 2, 3]) { s in
            oneCommitAboveZero(s) && s.allSatisfy { $0["ready"] == "0" && $0["inflight"] == "0" }
        }
        #expect(converged, "STATUS never converged: \(c.statusReport([1, 2, 3]))")
    }

    /// A node without a majority behind it: ENQUEUE is never OK, DEQUEUE finds no leader.
    private func expectRefusal(_ client: LineClient, _ when: String) throws {
        let enq = try client.request("ENQUEUE alone")
        let refused = enq.hasPrefix("ERR NOLEADER") || enq.hasPrefix("ERR NOQUORUM") || parseQueued(enq)
        #expect(refused, "ENQUEUE \(when) must not be acknowledged: \(enq)")
        let deq = try client.request("DEQUEUE")
        #expect(deq.hasPrefix("ERR NOLEADER"), "DEQUEUE \(when): \(deq)")
    }
}

// MARK: - Replies

/// `OK <id> <lamport>`, the answer to ENQUEUE and ACK.
private func parseOK(_ line: String) -> (id: UInt64, lamport: UInt64)? {
    let w = line.split(separator: " ", omittingEmptySubsequences: false)
    guard w.count == 3, w[0] == "OK", let id = UInt64(w[1]), let lamport = UInt64(w[2]) else { return nil }
    return (id, lamport)
}

/// `TASK <id> <lamport> <payload>`; the payload is the rest of the line, spaces included.
private func parseTask(_ line: String) -> (id: UInt64, lamport: UInt64, payload: String)? {
    let w = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
    guard w.count == 4, w[0] == "TASK", let id = UInt64(w[1]), let lamport = UInt64(w[2]) else { return nil }
    return (id, lamport, String(w[3]))
}

/// `QUEUED <node-id>-<seq> <lamport>`: parked in the mailbox of a node that sees no leader.
private func parseQueued(_ line: String) -> Bool {
    let w = line.split(separator: " ", omittingEmptySubsequences: false)
    guard w.count == 3, w[0] == "QUEUED", UInt64(w[2]) != nil else { return false }
    let ref = w[1].split(separator: "-", omittingEmptySubsequences: false)
    return ref.count == 2 && ref.allSatisfy { UInt64($0) != nil }
}

/// The cluster could not serve the command just now (failover, no majority yet,
/// back-pressure); the documented remedy is to send it again.
private func isTransient(_ reply: String) -> Bool {
    reply.hasPrefix("ERR NOLEADER") || reply.hasPrefix("ERR NOQUORUM") || reply.hasPrefix("ERR BUSY")
}

private func oneCommitAboveZero(_ statuses: [[String: String]]) -> Bool {
    let commits = Set(statuses.map { $0["commit"] ?? "" })
    return commits.count == 1 && (UInt64(commits.first!) ?? 0) > 0
}

private func duplicates(_ xs: [String]) -> Set<String> {
    var seen = Set<String>(), twice = Set<String>()
    for x in xs where !seen.insert(x).inserted { twice.insert(x) }
    return twice
}

// MARK: - Cluster helpers

private extension Cluster {
    /// A client that waits as long as these tests do: a node may hold a command for
    /// commit_timeout_ms, and a forward through a dying leader for longer, before it answers.
    func patientClient(_ id: Int) throws -> LineClient {
        try LineClient(host: "127.0.0.1", port: clientPorts[id]!, timeoutMs: 30_000)
    }

    /// Polls STATUS of `ids` until `holds` is true of all their answers together.
    func awaitStatuses(_ ids: [Int], timeout: Double = 30, _ holds: ([[String: String]]) -> Bool) -> Bool {
        Harness.eventually(timeout: timeout) {
            let s = ids.compactMap { status($0) }
            return s.count == ids.count && holds(s)
        }
    }

    /// Sends `line` to node `id` until the answer is not a transient refusal, since a node
    /// just elected may still be catching up; returns the last answer. One connection,
    /// dialled again only after it fails.
    func requestUntilServed(_ id: Int, _ line: String, timeout: Double = 30) -> String? {
        var answer: String?
        var client: LineClient?
        Harness.eventually(timeout: timeout) {
            guard let conn = client ?? (try? patientClient(id)) else { return false }
            guard let r = try? conn.request(line) else {
                client = nil
                return false
            }
            client = conn
            answer = r
            return !isTransient(r)
        }
        return answer
    }

    /// The STATUS keys that matter here, per node, for failure messages.
    func statusReport(_ ids: [Int]) -> String {
        ids.map { id in
            guard let s = status(id) else { return "node \(id): no answer" }
            let keys = ["role", "leader", "epoch", "commit", "ready", "inflight", "mailbox"]
            return "node \(id): " + keys.map { "\($0)=\(s[$0] ?? "?")" }.joined(separator: " ")
        }.joined(separator: "; ")
    }
}

/// Takes every ready task at node `id` and acks it, pipelining 100 DEQUEUEs then their ACKs,
/// until a whole round answers EMPTY. Returns the payloads in delivery order (twice if
/// delivered twice). Transient refusals are retried; any other odd reply fails the drain.
/// Drains the queue through node `id` (DEQUEUE and ACK, pipelined), riding
/// out refusals while the cluster settles; returns payloads in delivery order.
/// Shared by the cluster suites.
func drain(_ c: Cluster, at id: Int, timeout: Double = 120) throws -> [String] {
    let client = try c.patientClient(id)
    let deadline = Date().addingTimeInterval(timeout)
    var delivered: [String] = []
    while true {
        guard Date() < deadline else {
            throw HarnessError("drain at node \(id) unfinished after \(timeout) s, \(delivered.count) delivered")
        }
        var leased: [UInt64] = []
        var refusals = 0
        for r in try client.pipeline(Array(repeating: "DEQUEUE", count: 100)) {
            if let t = parseTask(r) {
                delivered.append(t.payload)
                leased.append(t.id)
            } else if isTransient(r) {
                refusals += 1
            } else if r != "EMPTY" {
                throw HarnessError("DEQUEUE at node \(id): \(r)")
            }
        }
        if leased.isEmpty && refusals == 0 { return delivered }
        while !leased.isEmpty {
            guard Date() < deadline else { throw HarnessError("ACKs at node \(id) still refused after \(timeout) s") }
            var again: [UInt64] = []
            for (task, r) in zip(leased, try client.pipeline(leased.map { "ACK \($0)" })) where parseOK(r)?.id != task {
                guard isTransient(r) else { throw HarnessError("ACK \(task) at node \(id): \(r)") }
                again.append(task)
            }
            leased = again
            refusals += again.count
        }
        // Retry cadence while the cluster refuses, not a wait for a condition.
        if refusals > 0 { usleep(20_000) }
    }
}

/// Enqueues payloads through the given nodes, pipelined, sending again whatever the
/// cluster could not take yet, and remembers how each payload was finally answered.
private final class Producer {
    let cluster: Cluster
    let nodes: [Int]
    private var current = 0
    private var client: LineClient?
    private(set) var ok: Set<String> = []
    private(set) var queued: Set<String> = []
    /// Sent again after the connection lost their reply: they may be in the queue twice.
    private(set) var resentBlind: Set<String> = []
    private(set) var unexpected: [String] = []

    init(_ cluster: Cluster, via nodes: [Int]) {
        self.cluster = cluster
        self.nodes = nodes
    }

    /// True once every payload got OK, QUEUED or a reply that is not worth retrying
    /// (kept in `unexpected`), within `timeout`. `midway.run` is called once, just
    /// before the reply number `midway.after` of this batch is read.
    func enqueue(_ payloads: [String], timeout: Double = 30, midway: (after: Int, run: () -> Void)? = nil) -> Bool {
        var pending = payloads
        var hook = midway
        return Harness.eventually(timeout: timeout) {
            pending = attempt(pending, &hook)
            return pending.isEmpty
        }
    }

    /// One pipelined round; returns the payloads to send again.
    private func attempt(_ payloads: [String], _ hook: inout (after: Int, run: () -> Void)?) -> [String] {
        guard let conn = client ?? (try? cluster.patientClient(nodes[current])) else {
            current = (current + 1) % nodes.count
            return payloads
        }
        client = conn
        guard (try? conn.send(payloads.map { "ENQUEUE \($0)\n" }.joined())) != nil else {
            return lostConnection(resending: payloads)
        }
        var again: [String] = []
        for (i, p) in payloads.enumerated() {
            if let h = hook, h.after == i {
                hook = nil
                h.run()
            }
            guard let r = try? conn.readLine() else {
                return again + lostConnection(resending: Array(payloads[i...]))
            }
            if parseOK(r) != nil {
                ok.insert(p)
            } else if parseQueued(r) {
                queued.insert(p)
            } else if isTransient(r) {
                again.append(p)
            } else {
                unexpected.append("ENQUEUE \(p) -> \(r)")
            }
        }
        return again
    }

    private func lostConnection(resending unanswered: [String]) -> [String] {
        client = nil
        current = (current + 1) % nodes.count
        resentBlind.formUnion(unanswered)
        return unanswered
    }
}
