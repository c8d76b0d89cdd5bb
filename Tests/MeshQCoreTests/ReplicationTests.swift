import Testing
@testable import MeshQCore
import MeshQTestSupport

/// Three NodeCores (ids 1, 2, 3) on NodeCoreDriver: envelopes delivered in
/// the order sent, at once, unless an end of the link is down; what a node
/// persists is durable at once; a fake clock advances in steps, each a loop
/// iteration of every node. Isolation here is loud (both ends see the link
/// drop), and a client answered twice, or a pump that never goes quiet, is
/// recorded as a test issue.
final class ReplicationCluster {
    static let ids = [1, 2, 3]
    static var settings: ClusterSettings { NodeCoreDriver.defaultSettings }

    let driver = NodeCoreDriver(nodes: 3, settings: ReplicationCluster.settings)

    init() {
        driver.start()
        check()
    }

    var nodes: [Int: NodeCore] { driver.nodes }
    var now: Int64 { driver.now }
    /// Every envelope a node received, in order.
    var delivered: [PeerEnvelope] { driver.delivered }
    var replies: [ClientRef: Reply] { driver.replies }
    var installedSnapshots: [Int: [QueueSnapshot]] { driver.installedSnapshots }
    var events: [LogEvent] { driver.events.map(\.event) }

    func node(_ id: Int) -> NodeCore { driver.node(id) }
    var leader: NodeCore? { driver.leader }

    /// Node 3 (the highest id) leads and serves, and the others follow it.
    var settledUnder3: Bool {
        node(3).role == .leader && node(3).serving
            && Self.ids.allSatisfy { $0 == 3 || node($0).leaderId == 3 }
            && Set(Self.ids.map { node($0).commitIndex }).count == 1
    }

    private func check(quiet: Bool = true) {
        if !quiet {
            Issue.record("the message pump never went quiet at t=\(now): \(events.suffix(12).map { "\($0.name) \($0.fields)" }) \(delivered.suffix(8).map { "\($0.from)->\($0.to) \($0.body)".prefix(120) })")
        }
        for twice in driver.repliedTwice.dropFirst(reported) { Issue.record("\(twice)") }
        reported = driver.repliedTwice.count
    }
    private var reported = 0

    /// Applies every effect and delivers every envelope until all is quiet.
    func pump() { check(quiet: driver.pump()) }

    /// One loop iteration of every node, `ms` later.
    func step(_ ms: Int64 = 10) {
        driver.step(ms)
        check()
    }

    /// Steps until `done` holds or `withinMs` pass; whether it held.
    @discardableResult
    func run(withinMs: Int64 = 5_000, until done: () -> Bool) -> Bool {
        defer { check() }
        return driver.run(withinMs: withinMs, until: done)
    }

    /// A client command at `id`; the reply lands in `replies[ref]`.
    @discardableResult
    func send(_ cmd: ClientCommand, to id: Int) -> ClientRef {
        let ref = driver.send(cmd, to: id)
        check()
        return ref
    }

    /// ENQUEUE at `id`, run until answered; the task id when it got OK.
    func enqueue(_ payload: String, at id: Int) -> UInt64? {
        let ref = send(.enqueue(payload: Array(payload.utf8)), to: id)
        run { replies[ref] != nil }
        return taskId(replies[ref])
    }

    /// The id of an `OK <id> <lamport>` reply, given here or relayed.
    func taskId(_ reply: Reply?) -> UInt64? {
        guard let line = reply?.line, line.hasPrefix("OK ") else { return nil }
        return line.split(separator: " ").dropFirst().first.flatMap { UInt64($0) }
    }

    /// Cuts `id` off: nothing more goes to or from it, and both ends of each
    /// of its links see the link drop.
    func isolate(_ id: Int) {
        driver.isolate(id, loud: true)
        check()
    }

    func reconnect(_ id: Int) {
        driver.reconnect(id, loud: true)
        check()
    }

    /// The tasks a node holds, by id, with their payloads.
    func contents(_ id: Int) -> [UInt64: String] { driver.contents(id) }
}

@Suite struct NodeCoreReplicationTests {
    /// A cluster that elected node 3 and settled: heartbeats went round, so
    /// the leader knows both followers are alive (it counts only voters
    /// until their first heartbeat acknowledgement).
    static func settled() -> ReplicationCluster? {
        let c = ReplicationCluster()
        c.run { c.settledUnder3 }
        c.run(withinMs: 4 * Int64(ReplicationCluster.settings.heartbeatIntervalMs)) { false }
        guard c.settledUnder3 else {
            let states = ReplicationCluster.ids.map { "\($0): \(c.node($0).debugSummary)" }.joined(separator: "; ")
            Issue.record("node 3 never led a settled cluster: \(states)")
            return nil
        }
        return c
    }

    @Test func enqueueAtAFollowerIsRelayedCommittedEverywhereAndAnsweredOK() throws {
        let c = try #require(Self.settled())
        #expect(c.node(3).role == .leader)
        #expect(c.node(1).role == .follower && c.node(2).role == .follower)
        let ref = c.send(.enqueue(payload: Array("hello".utf8)), to: 1)
        c.run { c.replies[ref] != nil && Set(ReplicationCluster.ids.map { c.node($0).commitIndex }).count == 1 }
        let reply = try #require(c.replies[ref])
        #expect(reply.line.hasPrefix("OK "), "\(reply.line)")
        let id = try #require(c.taskId(reply))
        // Node 1 relayed it to the leader rather than answering it itself.
        #expect(c.delivered.contains { env in
            if case .forward(_, _, .enqueue(Array("hello".utf8))) = env.body { return env.from == 1 && env.to == 3 }
            return false
        })
        let commits = ReplicationCluster.ids.map { c.node($0).commitIndex }
        #expect(Set(commits).count == 1, "commit indexes \(commits)")
        for n in ReplicationCluster.ids {
            #expect(c.node(n).store.task(id)?.payload == Array("hello".utf8), "node \(n)")
        }
    }

    @Test func enqueuesAtEveryNodeAgreeEverywhere() throws {
        let c = try #require(Self.settled())
        var ids: [UInt64: String] = [:]
        for i in 0..<9 {
            let payload = "p\(i)"
            let id = try #require(c.enqueue(payload, at: i % 3 + 1))
            #expect(ids[id] == nil, "task id \(id) given twice")
            ids[id] = payload
        }
        c.run { Set(ReplicationCluster.ids.map { c.node($0).commitIndex }).count == 1 }
        for n in ReplicationCluster.ids { #expect(c.contents(n) == ids, "node \(n)") }
    }

    @Test func aReturningFollowerIsSentOnlyWhatItLacks() throws {
        let c = try #require(Self.settled())
        var expected: [UInt64: String] = [:]
        for i in 0..<5 {
            let id = try #require(c.enqueue("early\(i)", at: 3))
            expected[id] = "early\(i)"
        }
        c.run { c.node(1).commitIndex == c.node(3).commitIndex }
        #expect(c.contents(1) == expected)

        c.isolate(1)
        for i in 0..<5 {
            // The majority (3 and 2) carries on without node 1.
            let id = try #require(c.enqueue("late\(i)", at: i % 2 == 0 ? 3 : 2))
            expected[id] = "late\(i)"
        }
        // Away long enough to time its leader out and campaign alone, in vain.
        c.run(withinMs: 1_000) { false }
        #expect(c.node(1).leaderId == nil)
        let heldBefore = c.node(1).lastIndex
        #expect(heldBefore < c.node(3).lastIndex)
        #expect(c.contents(1).count == 5)

        let mark = c.delivered.count
        c.reconnect(1)
        #expect(c.run { c.node(1).commitIndex == c.node(3).commitIndex && c.node(1).leaderId == 3 })
        let sent = c.delivered[mark...].filter { $0.to == 1 }.flatMap { env -> [LogEntry] in
            if case .replicate(let r) = env.body { return r.entries }
            return []
        }
        #expect(!sent.isEmpty)
        #expect(sent.count < Int(c.node(3).lastIndex), "\(sent.count) entries re-sent of \(c.node(3).lastIndex)")
        #expect(sent.allSatisfy { $0.index > heldBefore }, "re-sent \(sent.map(\.index)), node 1 held through \(heldBefore)")
        #expect(!c.delivered[mark...].contains { if case .snapshot = $0.body { return $0.to == 1 } else { return false } })
        #expect(c.contents(1) == expected)
        #expect(c.contents(2) == expected && c.contents(3) == expected)
    }

    /// Rounds pipeline: while the followers' writes are not yet durable,
    /// later batches are prepared and sent too (up to the pipeline's depth),
    /// and once a follower's copy is durable they all commit, answered in order.
    @Test func laterBatchesArePreparedWhileEarlierRoundsWaitForVotes() throws {
        let c = try #require(Self.settled())
        let depth = LeaderRounds.maxInFlight
        c.driver.holdDurable = [1, 2]
        let sentBefore = c.delivered.count
        var refs: [ClientRef] = []
        for i in 0...depth {
            refs.append(c.driver.send(.enqueue(payload: Array("p\(i)".utf8)), to: 3))
            c.driver.flush()
        }
        #expect(c.node(3).leader?.rounds.roundsInFlight == depth)
        #expect(refs.allSatisfy { c.replies[$0] == nil })
        let batches = c.delivered.dropFirst(sentBefore).filter {
            if $0.to == 1, case .replicate(let r) = $0.body { return !r.entries.isEmpty }
            return false
        }
        #expect(batches.count == depth, "one batch per round in flight went to follower 1")
        c.driver.holdDurable = []
        c.driver.sync(1)
        c.run { refs.allSatisfy { c.replies[$0] != nil } }
        let ids = refs.compactMap { c.taskId(c.replies[$0]) }
        #expect(ids.count == refs.count)
        #expect(ids == ids.sorted())
        #expect(c.node(3).leader?.rounds.inRound == false)
    }

    @Test func aFollowerBeyondTheLogWindowCatchesUpFromASnapshot() throws {
        let c = try #require(Self.settled())
        c.node(3).logWindow = 10
        var expected: [UInt64: String] = [:]
        let first = try #require(c.enqueue("first", at: 3))
        expected[first] = "first"
        c.run { c.node(1).commitIndex == c.node(3).commitIndex }
        c.isolate(1)
        // Three batches of ten: far past what the leader keeps in memory.
        for batch in 0..<3 {
            var refs: [(ClientRef, String)] = []
            for i in 0..<10 {
                let p = "b\(batch)-\(i)"
                refs.append((c.send(.enqueue(payload: Array(p.utf8)), to: 3), p))
            }
            c.run { refs.allSatisfy { c.replies[$0.0] != nil } }
            for (ref, p) in refs {
                let id = try #require(c.taskId(c.replies[ref]), "ENQUEUE \(p): \(String(describing: c.replies[ref]))")
                expected[id] = p
            }
        }
        // One ACK too, so the snapshot carries removals as well as additions.
        // A lease commits before its TASK (its delivery count is durable first).
        let d = c.send(.dequeue(waitMs: nil), to: 3)
        c.run { c.replies[d] != nil }
        guard case .task(let leased, _, _)? = c.replies[d] else {
            Issue.record("no task for DEQUEUE")
            return
        }
        let a = c.send(.ack(taskId: leased), to: 3)
        c.run { c.replies[a] != nil }
        #expect(c.taskId(c.replies[a]) == leased)
        expected[leased] = nil
        #expect(c.node(3).log.baseIndex > c.node(1).lastIndex, "the leader must have trimmed past node 1")

        let mark = c.delivered.count
        c.reconnect(1)
        #expect(c.run { c.node(1).commitIndex == c.node(3).commitIndex && c.node(1).leaderId == 3 })
        #expect(c.delivered[mark...].contains { if case .snapshot = $0.body { return $0.to == 1 } else { return false } })
        #expect(!(c.installedSnapshots[1] ?? []).isEmpty)
        // The catch-up is logged as the `sync` event (docs/operations.md).
        #expect(c.events.contains { $0.name == "sync" && $0.field("peer") == "1" && $0.field("mode") == "snapshot" })
        #expect(c.node(1).commitIndex == c.node(3).commitIndex)
        #expect(c.contents(1) == expected)
        #expect(c.contents(3) == expected)

        // Caught up, it takes part in the next rounds as usual.
        let id = try #require(c.enqueue("after", at: 1))
        c.run { c.node(1).commitIndex == c.node(3).commitIndex }
        #expect(c.node(1).store.task(id)?.payload == Array("after".utf8))
    }

    @Test func withoutAMajorityAnEnqueueIsNeverOK() throws {
        let c = try #require(Self.settled())
        let committed = c.node(3).commitIndex
        // The leader loses both followers; nothing it sends arrives.
        c.isolate(3)
        let ref = c.send(.enqueue(payload: Array("lost".utf8)), to: 3)
        // End of this loop iteration: the round starts with no follower to ask.
        c.node(3).flush(now: c.now)
        c.pump()
        c.run(withinMs: 3_000) { false }
        // The leader alone hears no majority: it steps down and never
        // answers OK. Without a leader the ENQUEUE is parked in its mailbox
        // (QUEUED); a NOQUORUM would be an unknown outcome.
        let reply = try #require(c.replies[ref], "the ENQUEUE was never answered")
        let parked = reply.line.hasPrefix("QUEUED ")
        #expect(parked || reply.line.hasPrefix("ERR NOQUORUM ") || reply.line.hasPrefix("ERR NOLEADER "), "\(reply.line)")
        #expect(c.node(3).role != .leader)
        #expect(c.node(3).commitIndex == committed)
        for n in ReplicationCluster.ids { #expect(!c.contents(n).values.contains("lost"), "node \(n)") }

        // Healed: a parked task is applied exactly once; anything else at most once.
        c.reconnect(3)
        #expect(c.run { c.settledUnder3 })
        let id = try #require(c.enqueue("next", at: 2))
        c.run { Set(ReplicationCluster.ids.map { c.node($0).commitIndex }).count == 1 && c.node(3).mailbox.isEmpty }
        for n in ReplicationCluster.ids {
            #expect(c.node(n).store.task(id) != nil, "node \(n)")
            let copies = c.contents(n).values.filter { $0 == "lost" }.count
            #expect(parked ? copies == 1 : copies <= 1, "node \(n) holds \(copies) copies")
        }
    }

    @Test func aFollowerRefusesAReplicateFromAnEpochOlderThanItsVote() throws {
        let c = try #require(Self.settled())
        let old = c.node(3).epoch
        let follower = c.node(1)
        let lastBefore = follower.lastIndex
        // Node 2 campaigns in a later epoch; node 1 (lower), which has not
        // heard its leader for a leader timeout (a frozen leader, say), votes for it.
        let silent = c.now + Int64(ReplicationCluster.settings.leaderTimeoutMs)
        follower.peerMessage(PeerEnvelope(from: 2, to: 1, lamport: 1, epoch: old,
                                          body: .election(.election(epoch: old + 5, position: follower.log.position))),
                             now: silent, wallMs: silent)
        let voted = follower.takeEffects()
        #expect(voted.contains { if case .persistVote(old + 5, promised: old + 5) = $0 { return true } else { return false } })
        #expect(voted.contains {
            if case .sendPeer(let env) = $0, case .election(.vote(old + 5, _, _, _)) = env.body { return env.to == 2 }
            return false
        })
        // The leader of the older epoch tries to add an entry.
        let entry = LogEntry(index: lastBefore + 1, epoch: old, lamport: 999,
                             op: .enqueue(QueuedTask(id: 999, lamport: 999, enqueuedAtMs: 0, payload: [1])))
        let rep = PeerEnvelope.Replicate(round: 77, prevIndex: lastBefore, prevEpoch: follower.log.lastEpoch,
                                         commit: lastBefore + 1, entries: [entry])
        follower.peerMessage(PeerEnvelope(from: 3, to: 1, lamport: 2, epoch: old, body: .replicate(rep)),
                             now: silent, wallMs: silent)
        let effects = follower.takeEffects()
        let acks = effects.compactMap { e -> PeerEnvelope? in
            if case .sendPeer(let env) = e, case .replicateAck = env.body { return env }
            return nil
        }
        #expect(acks.count == 1)
        let ack = try #require(acks.first)
        #expect(ack.to == 3)
        #expect(ack.epoch > old, "the refusal must carry the newer epoch it promised")
        guard case .replicateAck(77, let matched, _) = ack.body else {
            Issue.record("not an answer to round 77: \(ack.body)")
            return
        }
        #expect(!matched)
        #expect(!effects.contains { if case .persist = $0 { return true } else { return false } })
        #expect(follower.lastIndex == lastBefore)
        #expect(follower.store.task(999) == nil)
    }

    @Test func aRestartedVoterStillRefusesTheEpochsItPromisedAway() {
        // It voted for another node in epoch 7, then restarted: the leader of
        // epoch 2 must not add to its log (that vote carried its position).
        let n = LoneNode.start(1, votedEpoch: 7, promisedEpoch: 7)
        n.receiveFirstEntries([LogEntry(index: 1, epoch: 2, lamport: 1, op: .noop)], from: 3, epoch: 2, now: 1)
        let out = n.takeEffects()
        #expect(!out.contains { if case .persist = $0 { return true } else { return false } })
        #expect(out.contains {
            if case .sendPeer(let env) = $0, case .replicateAck(_, false, _) = env.body { return env.epoch >= 7 }
            return false
        })
        #expect(n.lastIndex == 0)
    }
}
