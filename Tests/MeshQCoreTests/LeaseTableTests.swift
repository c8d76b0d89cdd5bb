import Testing
@testable import MeshQCore

@Suite struct LeaseTableTests {
    @Test func expiresInDeadlineOrder() {
        var t = LeaseTable()
        t.grant(1, owner: "a", deadline: 300)
        t.grant(2, owner: "b", deadline: 100)
        t.grant(3, owner: "c", deadline: 200)
        #expect(t.nextDeadline() == 100)
        #expect(t.expire(now: 99) == [])
        #expect(t.expire(now: 250) == [2, 3])
        #expect(t.count == 1)
        #expect(t.nextDeadline() == 300)
    }

    @Test func releasedLeaseNeverExpires() {
        var t = LeaseTable()
        t.grant(1, owner: "a", deadline: 100)
        do { let ok = t.release(1); #expect(ok) }
        do { let ok = t.release(1); #expect(!ok) }
        #expect(t.expire(now: 1000) == [])
        #expect(t.nextDeadline() == nil)
    }

    @Test func regrantReplacesTheOldDeadline() {
        var t = LeaseTable()
        t.grant(1, owner: "a", deadline: 100)
        t.release(1)
        t.grant(1, owner: "b", deadline: 500)
        #expect(t.expire(now: 200) == [])
        #expect(t.lease(of: 1)?.owner == "b")
        #expect(t.expire(now: 500) == [1])
    }

    @Test func staleEntriesDoNotAccumulate() {
        var t = LeaseTable()
        for i in 0..<10_000 {
            t.grant(UInt64(i), owner: "x", deadline: Int64(i))
            t.release(UInt64(i))
        }
        #expect(t.expire(now: 0) == [])
        #expect(t.count == 0)
        #expect(t.nextDeadline() == nil)
    }
}

@Suite struct TaskQueueTests {
    private func task(_ id: UInt64) -> QueuedTask {
        QueuedTask(id: id, lamport: id, enqueuedAtMs: 0, payload: Array("p\(id)".utf8))
    }

    @Test func readyTasksLeaveInIdOrder() {
        var q = TaskQueue()
        for i in 1...5 { q.apply(enqueue: task(UInt64(i))) }
        #expect(q.leaseNext(owner: "w", deadline: 10)?.id == 1)
        #expect(q.leaseNext(owner: "w", deadline: 10)?.id == 2)
        #expect(q.readyCount == 3)
        #expect(q.leasedCount == 2)
    }

    @Test func nackedTaskGoesBackToItsPlace() {
        var q = TaskQueue()
        for i in 1...4 { q.apply(enqueue: task(UInt64(i))) }
        _ = q.leaseNext(owner: "w", deadline: 10) // 1
        _ = q.leaseNext(owner: "w", deadline: 10) // 2
        do { let ok = q.release(2); #expect(ok) }
        do { let ok = q.release(2); #expect(!ok) } // not leased any more
        #expect(q.leaseNext(owner: "w", deadline: 10)?.id == 2)
        #expect(q.leaseNext(owner: "w", deadline: 10)?.id == 3)
    }

    @Test func expiredLeaseIsDeliveredAgainAheadOfYoungerTasks() {
        var q = TaskQueue()
        for i in 1...3 { q.apply(enqueue: task(UInt64(i))) }
        _ = q.leaseNext(owner: "w", deadline: 100)
        q.apply(enqueue: task(4))
        #expect(q.expireLeases(now: 99) == [])
        #expect(q.expireLeases(now: 100) == [1])
        #expect(q.leaseNext(owner: "w", deadline: 200)?.id == 1)
        #expect(q.leaseNext(owner: "w", deadline: 200)?.id == 2)
    }

    @Test func ackRemovesForGoodInAnyState() {
        var q = TaskQueue()
        for i in 1...3 { q.apply(enqueue: task(UInt64(i))) }
        _ = q.leaseNext(owner: "w", deadline: 100)           // 1 leased
        do { let ok = q.apply(ack: 1); #expect(ok) }
        do { let ok = q.apply(ack: 3); #expect(ok) }                              // ready may be acked
        do { let ok = q.apply(ack: 3); #expect(!ok) }
        #expect(q.expireLeases(now: 1000) == [])              // acked lease never returns
        #expect(q.leaseNext(owner: "w", deadline: 100)?.id == 2)
        #expect(q.leaseNext(owner: "w", deadline: 100) == nil)
        #expect(q.count == 1)
        #expect(q.payloadBytes == 2)
    }

    @Test func ackingTaskIsNotHandedOutAndCanBeRestored() {
        var q = TaskQueue()
        q.apply(enqueue: task(1))
        do { let ok = q.markAcking(1); #expect(ok) }
        do { let ok = q.markAcking(1); #expect(!ok) }
        #expect(q.leaseNext(owner: "w", deadline: 100) == nil)
        q.unmarkAcking(1)
        #expect(q.leaseNext(owner: "w", deadline: 100)?.id == 1)
    }

    @Test func manyNackCyclesKeepCountsRight() {
        var q = TaskQueue()
        for i in 1...10 { q.apply(enqueue: task(UInt64(i))) }
        for _ in 0..<100 {
            let t = q.leaseNext(owner: "w", deadline: 5)!
            #expect(t.id == 1)
            do { let ok = q.release(t.id); #expect(ok) }
        }
        #expect(q.readyCount == 10)
        var seen: [UInt64] = []
        while let t = q.leaseNext(owner: "w", deadline: 5) { seen.append(t.id) }
        #expect(seen == Array(1...10))
    }

    @Test func leadershipChangeMakesEveryLeaseReady() {
        var q = TaskQueue()
        for i in 1...3 { q.apply(enqueue: task(UInt64(i))) }
        _ = q.leaseNext(owner: "w", deadline: 5)
        _ = q.leaseNext(owner: "w", deadline: 5)
        q.releaseAllLeases()
        #expect(q.readyCount == 3)
        #expect(q.leasedCount == 0)
        #expect(q.leaseNext(owner: "w", deadline: 5)?.id == 1)
    }
}
