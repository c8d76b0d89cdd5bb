import MeshQTestSupport
import Testing
@testable import MeshQCore

/// A cluster of one on the NodeCoreDriver, as meshqd runs it: started, and
/// its first iteration ended (its noop entry committed).
private func singleNode(_ settings: ClusterSettings = ClusterSettings()) -> NodeCoreDriver {
    let d = NodeCoreDriver(nodes: 1, settings: settings)
    d.start()
    d.flush()
    return d
}

private extension NodeCoreDriver {
    var core: NodeCore { node(1) }
    /// The entries on node 1's disk, in order.
    var disk: [LogEntry] { disks[1]!.records.compactMap { if case .entry(let e) = $0 { e } else { nil } } }
    var logs: [LogEvent] { events.map(\.event) }

    @discardableResult
    func send(_ cmd: ClientCommand, session: UInt64 = 1) -> ClientRef { send(cmd, to: 1, session: session) }

    /// Sends and returns the reply (if any yet). Send first, then read:
    /// `replies[send(...)]` would read `replies` before the send.
    /// A change (a lease too) is answered once it commits: the end of the
    /// loop iteration (`flush`) commits it on a cluster of one.
    func answer(_ cmd: ClientCommand, session: UInt64 = 1) -> Reply? {
        let ref = send(cmd, session: session)
        if replies[ref] == nil { flush() }
        return replies[ref]
    }

    /// ENQUEUE then commit; returns the task id.
    func enqueue(_ s: String) -> UInt64 {
        let r = send(.enqueue(payload: Array(s.utf8)))
        flush()
        guard case .ok(let id, _)? = replies[r] else {
            Issue.record("enqueue not OK: \(String(describing: replies[r]))")
            return 0
        }
        return id
    }
}

@Suite struct NodeCoreTests {
    @Test func singleNodeLeadsInANewEpochAtStart() {
        let h = singleNode()
        #expect(h.core.role == .leader)
        #expect(h.core.leaderId == 1)
        #expect(h.core.epoch == 1)
        #expect(h.logs.contains { $0.name == "leader_elected" && $0.field("epoch") == "1" })
        #expect(h.logs.contains { $0.name == "tasks_recovered" && $0.field("count") == "0" })
        // The epoch is made durable by a noop entry.
        #expect(h.disk.last?.op == .noop && h.disk.last?.epoch == 1)
        // A cluster of one sends nothing and persists no vote.
        #expect(h.delivered.isEmpty && h.disks[1]!.votedEpoch == 0)
    }

    @Test func enqueueIsAnsweredOnlyAfterItIsPersisted() {
        let h = singleNode()
        h.holdDurable = [1]
        let r = h.send(.enqueue(payload: Array("hi".utf8)))
        #expect(h.replies[r] == nil)
        h.flush()
        #expect(h.replies[r] == nil, "answered before its entry was durable")
        h.sync(1)
        guard case .ok(let id, let lamport)? = h.replies[r] else {
            Issue.record("no OK")
            return
        }
        #expect(id == 1)
        #expect(lamport > 0)
        #expect(h.disk.contains { if case .enqueue(let t) = $0.op { return t.id == 1 } else { return false } })
    }

    @Test func oneBatchPerIteration() {
        let h = singleNode()
        let before = h.disk.count
        var refs: [ClientRef] = []
        for i in 0..<100 { refs.append(h.send(.enqueue(payload: Array("t\(i)".utf8)))) }
        h.flush()
        #expect(h.disk.count == before + 100)
        let ids = refs.compactMap { ref -> UInt64? in
            if case .ok(let id, _)? = h.replies[ref] { return id } else { return nil }
        }
        #expect(ids == Array(1...100))
    }

    @Test func dequeueAckNackCycle() {
        let h = singleNode()
        let id = h.enqueue("job")
        guard case .task(let tid, _, let payload)? = h.answer(.dequeue(waitMs: nil)) else {
            Issue.record("no task")
            return
        }
        #expect(tid == id)
        #expect(payload == Array("job".utf8))
        #expect(h.answer(.dequeue(waitMs: nil)) == .empty)
        guard case .ok(id, _)? = h.answer(.nack(taskId: id)) else {
            Issue.record("nack not OK")
            return
        }
        guard case .task(id, _, _)? = h.answer(.dequeue(waitMs: nil)) else {
            Issue.record("nacked task not redelivered")
            return
        }
        let a = h.send(.ack(taskId: id))
        #expect(h.replies[a] == nil) // waits for the commit
        h.flush()
        guard case .ok(id, _)? = h.replies[a] else {
            Issue.record("ack not OK")
            return
        }
        #expect(h.core.store.count == 0)
        guard case .error(.notfound, _)? = h.answer(.ack(taskId: id)) else {
            Issue.record("second ack should be NOTFOUND")
            return
        }
        guard case .error(.notfound, _)? = h.answer(.nack(taskId: 999)) else {
            Issue.record("nack of unknown should be NOTFOUND")
            return
        }
    }

    @Test func expiredLeaseIsRedelivered() {
        var s = ClusterSettings()
        s.ackTimeoutMs = 500
        let h = singleNode(s)
        let id = h.enqueue("x")
        _ = h.answer(.dequeue(waitMs: nil))
        #expect(h.core.nextWakeup() == h.now + 500)
        h.step(499)
        #expect(h.answer(.dequeue(waitMs: nil)) == .empty)
        h.step(1)
        #expect(h.logs.contains { $0.name == "task_requeued" && $0.field("task") == "\(id)" })
        guard case .task(id, _, _)? = h.answer(.dequeue(waitMs: nil)) else {
            Issue.record("not redelivered")
            return
        }
    }

    @Test func blockedDequeueIsServedByTheNextCommit() {
        let h = singleNode()
        let w = h.send(.dequeue(waitMs: 5_000), session: 7)
        #expect(h.replies[w] == nil)
        let id = h.enqueue("late")
        guard case .task(id, _, _)? = h.replies[w] else {
            Issue.record("waiter not served")
            return
        }
    }

    @Test func blockedDequeueTimesOutEmpty() {
        let h = singleNode()
        let w = h.send(.dequeue(waitMs: 200))
        #expect(h.core.nextWakeup() == h.now + 200)
        h.step(199)
        #expect(h.replies[w] == nil)
        h.step(1)
        #expect(h.replies[w] == .empty)
    }

    @Test func closedSessionsWaitIsDropped() {
        let h = singleNode()
        let w = h.send(.dequeue(waitMs: 5_000), session: 9)
        h.core.sessionClosed(9)
        let id = h.enqueue("for someone else")
        #expect(h.replies[w] == nil)
        guard case .task(id, _, _)? = h.answer(.dequeue(waitMs: nil)) else {
            Issue.record("task should still be ready")
            return
        }
    }

    @Test func limitsAnswerTooLargeAndBusy() {
        var s = ClusterSettings()
        s.maxPayloadBytes = 10
        s.maxMemoryMB = 1
        let h = singleNode(s)
        guard case .error(.toolarge, _)? = h.answer(.enqueue(payload: Array(repeating: 1, count: 11))) else {
            Issue.record("expected TOOLARGE")
            return
        }
        // 1 MiB of 10-byte payloads fills max_memory_mb; the next is BUSY.
        for _ in 0..<(1_048_576 / 10) { h.send(.enqueue(payload: Array(repeating: 2, count: 10))) }
        guard case .error(.busy, _)? = h.answer(.enqueue(payload: Array(repeating: 3, count: 10))) else {
            Issue.record("expected BUSY")
            return
        }
    }

    @Test func recoveryRebuildsStateAndNeverReusesIds() {
        let h = singleNode()
        let a = h.enqueue("a")
        let b = h.enqueue("b")
        _ = h.send(.dequeue(waitMs: nil))
        _ = h.send(.ack(taskId: a))
        h.flush()
        // Restart from what reached the disk.
        let clockBefore = h.core.clock.time
        h.crash(1)
        h.start([1])
        h.flush()
        #expect(h.core.epoch == 2)
        #expect(h.core.store.count == 1)
        #expect(h.core.clock.time >= clockBefore)
        guard case .task(b, _, _)? = h.answer(.dequeue(waitMs: nil), session: 2) else {
            Issue.record("b should be delivered after restart")
            return
        }
        #expect(h.enqueue("c") == b + 1)
    }

    @Test func recoveryFromSnapshotSkipsOverlappingEntries() {
        let h = singleNode()
        _ = h.enqueue("a")
        let b = h.enqueue("b")
        let snap = h.core.snapshot()!
        // The log still holds every entry: a crash between snapshot and log reset.
        h.crash(1)
        h.editDisk(1) { $0.snapshot = snap }
        h.start([1])
        h.flush()
        #expect(h.core.store.count == 2)
        #expect(h.enqueue("c") == b + 1)
    }

    @Test func helloMergesTheClientsLamportClock() {
        let h = singleNode()
        let r = h.send(.hello(clientId: "w1", lamport: 1_000))
        #expect(h.replies[r] == .hello(nodeId: 1, lamport: 1_001))
        let id = h.enqueue("x")
        _ = id
        #expect(h.core.clock.time > 1_001)
    }

    @Test func statusReportsCounts() {
        let h = singleNode()
        _ = h.enqueue("a")
        _ = h.enqueue("b")
        _ = h.answer(.dequeue(waitMs: nil))
        guard case .status(let line)? = h.answer(.status) else {
            Issue.record("no status")
            return
        }
        #expect(line.hasPrefix("id=1 role=leader leader=1 epoch=1 "))
        #expect(line.contains(" ready=1 inflight=1 mailbox=0 peers_up=0 offset_ms=0.00"))
    }

    @Test func withNoLeaderReachableACommandIsHeldThenAnEnqueueIsParked() {
        var settings = ClusterSettings()
        settings.commitTimeoutMs = 2_000
        // Node 1 of three, its peers down; its writes wait for `sync`.
        let d = NodeCoreDriver(nodes: 3, settings: settings)
        d.start([1])
        d.holdDurable = [1]
        let enqueue = d.send(.enqueue(payload: [65]), to: 1)
        let dequeue = d.send(.dequeue(waitMs: nil), to: 1)
        // Held while an election may still bring a leader...
        #expect(d.replies.isEmpty)
        #expect(d.node(1).nextWakeup()! <= 2_000)
        // ...then the ENQUEUE is parked durably, the DEQUEUE refused.
        #expect(d.run(withinMs: 2_100) { d.replies[dequeue] != nil })
        #expect(d.now >= 2_000)
        guard case .error(.noleader, _)? = d.replies[dequeue] else {
            Issue.record("expected NOLEADER for the DEQUEUE, got \(d.replies)")
            return
        }
        #expect(d.replies[enqueue] == nil)   // not before it is durable
        #expect(d.disks[1]!.mailbox.isEmpty)
        d.sync(1)
        #expect(d.disks[1]!.mailbox == [.park(MailboxEntry(seq: 1, payload: [65], enqueuedAtMs: 0))])
        guard case .queued(ref: "1-1", _)? = d.replies[enqueue] else {
            Issue.record("expected QUEUED 1-1 once parked, got \(String(describing: d.replies[enqueue]))")
            return
        }
        #expect(d.node(1).status().line.contains(" mailbox=1 "))
    }
}
