import Testing
@testable import MeshQCore

/// Drives a single-node NodeCore as meshqd does, with a fake clock and an
/// in-memory "disk" that records what was persisted.
final class SingleNodeHarness {
    var core: NodeCore
    var now: Int64 = 1_000
    var disk: [LogEntry] = []
    var replies: [ClientRef: Reply] = [:]
    var logs: [LogEvent] = []
    var seq: UInt64 = 0
    var settings: ClusterSettings

    init(settings: ClusterSettings = ClusterSettings(), snapshot: QueueSnapshot? = nil, disk: [LogEntry] = []) {
        self.settings = settings
        self.disk = disk
        core = NodeCore(nodeId: 1, memberIds: [1], settings: settings, snapshot: snapshot, entries: disk)
        core.start(now: now)
        drain()
        endIteration()
    }

    func drain() {
        while core.hasEffects {
            for e in core.takeEffects() {
                switch e {
                case .reply(let r, let reply): replies[r] = reply
                case .log(let l): logs.append(l)
                case .persist(let records):
                    for case .entry(let e) in records { disk.append(e) }
                    core.persisted(now: now)
                case .sendPeer, .persistVote, .installSnapshot, .persistMailbox, .resetPeerLink, .rejoined:
                    Issue.record("a cluster of one has no peers")
                }
            }
        }
    }

    @discardableResult
    func send(_ cmd: ClientCommand, session: UInt64 = 1) -> ClientRef {
        seq += 1
        let ref = ClientRef(session: session, seq: seq)
        core.handle(cmd, from: ref, owner: "s\(session)", now: now, wallMs: 1_700_000_000_000)
        drain()
        return ref
    }

    func endIteration() {
        core.flush(now: now)
        drain()
    }

    func advance(_ ms: Int64) {
        now += ms
        core.tick(now: now)
        drain()
    }

    /// ENQUEUE then commit; returns the task id.
    func enqueue(_ s: String) -> UInt64 {
        let r = send(.enqueue(payload: Array(s.utf8)))
        endIteration()
        guard case .ok(let id, _)? = replies[r] else {
            Issue.record("enqueue not OK: \(String(describing: replies[r]))")
            return 0
        }
        return id
    }
}

@Suite struct NodeCoreTests {
    @Test func singleNodeLeadsInANewEpochAtStart() {
        let h = SingleNodeHarness()
        #expect(h.core.role == .leader)
        #expect(h.core.leaderId == 1)
        #expect(h.core.epoch == 1)
        #expect(h.logs.contains { $0.name == "leader_elected" && $0.field("epoch") == "1" })
        #expect(h.logs.contains { $0.name == "tasks_recovered" && $0.field("count") == "0" })
        // The epoch is made durable by a noop entry.
        #expect(h.disk.last?.op == .noop && h.disk.last?.epoch == 1)
    }

    @Test func enqueueIsAnsweredOnlyAfterItIsPersisted() {
        let h = SingleNodeHarness()
        let r = h.send(.enqueue(payload: Array("hi".utf8)))
        #expect(h.replies[r] == nil)
        h.endIteration()
        guard case .ok(let id, let lamport)? = h.replies[r] else {
            Issue.record("no OK")
            return
        }
        #expect(id == 1)
        #expect(lamport > 0)
        #expect(h.disk.contains { if case .enqueue(let t) = $0.op { return t.id == 1 } else { return false } })
    }

    @Test func oneBatchPerIteration() {
        let h = SingleNodeHarness()
        let before = h.disk.count
        var refs: [ClientRef] = []
        for i in 0..<100 { refs.append(h.send(.enqueue(payload: Array("t\(i)".utf8)))) }
        h.endIteration()
        #expect(h.disk.count == before + 100)
        let ids = refs.compactMap { ref -> UInt64? in
            if case .ok(let id, _)? = h.replies[ref] { return id } else { return nil }
        }
        #expect(ids == Array(1...100))
    }

    @Test func dequeueAckNackCycle() {
        let h = SingleNodeHarness()
        let id = h.enqueue("job")
        let d = h.send(.dequeue(waitMs: nil))
        guard case .task(let tid, _, let payload)? = h.replies[d] else {
            Issue.record("no task")
            return
        }
        #expect(tid == id)
        #expect(payload == Array("job".utf8))
        #expect(h.replies[h.send(.dequeue(waitMs: nil))] == .empty)
        let n = h.send(.nack(taskId: id))
        guard case .ok(id, _)? = h.replies[n] else {
            Issue.record("nack not OK")
            return
        }
        guard case .task(id, _, _)? = h.replies[h.send(.dequeue(waitMs: nil))] else {
            Issue.record("nacked task not redelivered")
            return
        }
        let a = h.send(.ack(taskId: id))
        #expect(h.replies[a] == nil) // waits for the commit
        h.endIteration()
        guard case .ok(id, _)? = h.replies[a] else {
            Issue.record("ack not OK")
            return
        }
        #expect(h.core.queue.count == 0)
        guard case .error(.notfound, _)? = h.replies[h.send(.ack(taskId: id))] else {
            Issue.record("second ack should be NOTFOUND")
            return
        }
        guard case .error(.notfound, _)? = h.replies[h.send(.nack(taskId: 999))] else {
            Issue.record("nack of unknown should be NOTFOUND")
            return
        }
    }

    @Test func expiredLeaseIsRedelivered() {
        var s = ClusterSettings()
        s.ackTimeoutMs = 500
        let h = SingleNodeHarness(settings: s)
        let id = h.enqueue("x")
        _ = h.send(.dequeue(waitMs: nil))
        #expect(h.core.nextWakeup() == h.now + 500)
        h.advance(499)
        #expect(h.replies[h.send(.dequeue(waitMs: nil))] == .empty)
        h.advance(1)
        #expect(h.logs.contains { $0.name == "task_requeued" && $0.field("task") == "\(id)" })
        guard case .task(id, _, _)? = h.replies[h.send(.dequeue(waitMs: nil))] else {
            Issue.record("not redelivered")
            return
        }
    }

    @Test func blockedDequeueIsServedByTheNextCommit() {
        let h = SingleNodeHarness()
        let w = h.send(.dequeue(waitMs: 5_000), session: 7)
        #expect(h.replies[w] == nil)
        let id = h.enqueue("late")
        guard case .task(id, _, _)? = h.replies[w] else {
            Issue.record("waiter not served")
            return
        }
    }

    @Test func blockedDequeueTimesOutEmpty() {
        let h = SingleNodeHarness()
        let w = h.send(.dequeue(waitMs: 200))
        #expect(h.core.nextWakeup() == h.now + 200)
        h.advance(199)
        #expect(h.replies[w] == nil)
        h.advance(1)
        #expect(h.replies[w] == .empty)
    }

    @Test func closedSessionsWaitIsDropped() {
        let h = SingleNodeHarness()
        let w = h.send(.dequeue(waitMs: 5_000), session: 9)
        h.core.sessionClosed(9)
        let id = h.enqueue("for someone else")
        #expect(h.replies[w] == nil)
        guard case .task(id, _, _)? = h.replies[h.send(.dequeue(waitMs: nil))] else {
            Issue.record("task should still be ready")
            return
        }
    }

    @Test func limitsAnswerTooLargeAndBusy() {
        var s = ClusterSettings()
        s.maxPayloadBytes = 10
        s.maxMemoryMB = 1
        let h = SingleNodeHarness(settings: s)
        guard case .error(.toolarge, _)? = h.replies[h.send(.enqueue(payload: Array(repeating: 1, count: 11)))] else {
            Issue.record("expected TOOLARGE")
            return
        }
        // 1 MiB of 10-byte payloads fills max_memory_mb; the next is BUSY.
        for _ in 0..<(1_048_576 / 10) { h.send(.enqueue(payload: Array(repeating: 2, count: 10))) }
        guard case .error(.busy, _)? = h.replies[h.send(.enqueue(payload: Array(repeating: 3, count: 10)))] else {
            Issue.record("expected BUSY")
            return
        }
    }

    @Test func recoveryRebuildsStateAndNeverReusesIds() {
        let h = SingleNodeHarness()
        let a = h.enqueue("a")
        let b = h.enqueue("b")
        _ = h.send(.dequeue(waitMs: nil))
        _ = h.send(.ack(taskId: a))
        h.endIteration()
        // Restart from what reached the disk.
        let h2 = SingleNodeHarness(disk: h.disk)
        #expect(h2.core.epoch == 2)
        #expect(h2.core.queue.count == 1)
        #expect(h2.core.clock.time > h.core.clock.time - 1)
        guard case .task(b, _, _)? = h2.replies[h2.send(.dequeue(waitMs: nil))] else {
            Issue.record("b should be delivered after restart")
            return
        }
        #expect(h2.enqueue("c") == b + 1)
    }

    @Test func recoveryFromSnapshotSkipsOverlappingEntries() {
        let h = SingleNodeHarness()
        _ = h.enqueue("a")
        let b = h.enqueue("b")
        let snap = h.core.snapshot()!
        // The log still holds every entry: a crash between snapshot and log reset.
        let h2 = SingleNodeHarness(snapshot: snap, disk: h.disk)
        #expect(h2.core.queue.count == 2)
        #expect(h2.enqueue("c") == b + 1)
    }

    @Test func helloMergesTheClientsLamportClock() {
        let h = SingleNodeHarness()
        let r = h.send(.hello(clientId: "w1", lamport: 1_000))
        #expect(h.replies[r] == .hello(nodeId: 1, lamport: 1_001))
        let id = h.enqueue("x")
        _ = id
        #expect(h.core.clock.time > 1_001)
    }

    @Test func statusReportsCounts() {
        let h = SingleNodeHarness()
        _ = h.enqueue("a")
        _ = h.enqueue("b")
        _ = h.send(.dequeue(waitMs: nil))
        guard case .status(let line)? = h.replies[h.send(.status)] else {
            Issue.record("no status")
            return
        }
        #expect(line.hasPrefix("id=1 role=leader leader=1 epoch=1 "))
        #expect(line.contains(" ready=1 inflight=1 mailbox=0 peers_up=0 offset_ms=0.00"))
    }

    @Test func withNoLeaderReachableACommandIsHeldThenAnEnqueueIsParked() {
        var settings = ClusterSettings()
        settings.commitTimeoutMs = 2_000
        let core = NodeCore(nodeId: 1, memberIds: [1, 2, 3], settings: settings, snapshot: nil, entries: [])
        core.start(now: 0)
        _ = core.takeEffects()
        core.handle(.enqueue(payload: [65]), from: ClientRef(session: 1, seq: 0), owner: "x", now: 0, wallMs: 0)
        core.handle(.dequeue(waitMs: nil), from: ClientRef(session: 2, seq: 0), owner: "y", now: 0, wallMs: 0)
        // Held while an election may still bring a leader...
        #expect(!core.takeEffects().contains { if case .reply = $0 { return true } else { return false } })
        #expect(core.nextWakeup()! <= 2_000)
        // ...then the ENQUEUE is parked durably, the DEQUEUE refused.
        core.tick(now: 2_000)
        var parked: [MailboxRecord] = []
        var replies: [ClientRef: Reply] = [:]
        for e in core.takeEffects() {
            if case .persistMailbox(let r) = e { parked += r }
            if case .reply(let ref, let r) = e { replies[ref] = r }
        }
        #expect(parked == [.park(MailboxEntry(seq: 1, payload: [65], enqueuedAtMs: 0))])
        guard case .error(.noleader, _)? = replies[ClientRef(session: 2, seq: 0)] else {
            Issue.record("expected NOLEADER for the DEQUEUE, got \(replies)")
            return
        }
        #expect(replies[ClientRef(session: 1, seq: 0)] == nil)   // not before it is durable
        core.mailboxPersisted(now: 2_000)
        let after = core.takeEffects().compactMap { e -> Reply? in if case .reply(_, let r) = e { return r } else { return nil } }
        #expect(after.contains { if case .queued(ref: "1-1", _) = $0 { return true } else { return false } })
        #expect(core.status().line.contains(" mailbox=1 "))
    }
}
