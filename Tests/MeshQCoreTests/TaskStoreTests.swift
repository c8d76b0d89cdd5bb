import Testing
@testable import MeshQCore

/// TaskStore: the ready order (priority, id) per queue, delays and leases by
/// cluster time, dead letters and KICK, pauses, keys, and busy marks.
@Suite struct TaskStoreTests {
    private func task(_ id: UInt64, _ queue: String = "default", pri: UInt32 = 1024, readyAt: Int64 = 0,
                      key: String? = nil, keyUntil: Int64 = 0, at: Int64 = 0) -> QueuedTask {
        QueuedTask(id: id, lamport: id, enqueuedAtMs: at, payload: Array("p\(id)".utf8), queue: queue, priority: pri,
                   readyAtMs: readyAt, key: key, keyUntilMs: keyUntil)
    }

    private func apply(_ s: inout TaskStore, _ op: LogEntry.Operation) -> TaskStore.Applied {
        var parked: [Int: UInt64] = [:]
        return s.apply(op, parked: &parked)
    }

    @Test func readyTasksLeaveInPriorityThenIdOrder() {
        var s = TaskStore()
        for (id, pri) in [(1, 5), (2, 1), (3, 5), (4, 0), (5, 1)] as [(UInt64, UInt32)] {
            _ = apply(&s, .enqueue(task(id, pri: pri)))
        }
        var order: [UInt64] = []
        while let t = s.nextReady(in: ["default"]) {
            order.append(t.id)
            _ = apply(&s, .ack(taskId: t.id))
        }
        #expect(order == [4, 2, 5, 1, 3])
        #expect(s.count == 0 && s.readyCount == 0)
    }

    @Test func firstListedQueueWithAReadyTaskWins() {
        var s = TaskStore()
        _ = apply(&s, .enqueue(task(1, "b")))
        _ = apply(&s, .enqueue(task(2, "c")))
        #expect(s.nextReady(in: ["a", "c", "b"])?.id == 2)
        #expect(s.nextReady(in: ["a"]) == nil)
    }

    @Test func aDelayedTaskIsReadyOnlyAtItsTime() {
        var s = TaskStore()
        _ = s.advance(to: 1_000)
        _ = apply(&s, .enqueue(task(1, readyAt: 1_500)))
        #expect(s.nextReady(in: ["default"]) == nil)
        #expect(s.lines["default"]?.delayed == 1)
        #expect(s.nextDue() == 1_500)
        _ = s.advance(to: 1_499)
        #expect(s.nextReady(in: ["default"]) == nil)
        _ = s.advance(to: 1_500)
        #expect(s.nextReady(in: ["default"])?.id == 1)
        #expect(s.lines["default"]?.delayed == 0)
    }

    @Test func aLeaseEndsAtItsDeadlineAndATouchMovesIt() {
        var s = TaskStore()
        _ = s.advance(to: 100)
        _ = apply(&s, .enqueue(task(1)))
        guard case .changed(let t) = apply(&s, .lease(taskId: 1, until: 200, deliveries: 1)) else {
            Issue.record("lease not applied")
            return
        }
        #expect(t.deliveries == 1 && s.place(of: 1) == .leased && s.leasedCount == 1)
        _ = apply(&s, .touch(taskId: 1, until: 400))
        #expect(s.advance(to: 399).isEmpty)
        #expect(s.place(of: 1) == .leased)
        #expect(s.advance(to: 400) == [1])
        #expect(s.place(of: 1) == .ready && s.leasedCount == 0)
        // The delivery count stays: it counts leases, not how they ended.
        #expect(s.task(1)?.deliveries == 1)
    }

    @Test func aNewLeadershipsFirstEntryEndsTheLeasesOfEarlierOnes() {
        var s = TaskStore()
        var parked: [Int: UInt64] = [:]
        _ = s.advance(to: 100)
        _ = s.apply(.enqueue(task(1)), epoch: 1, parked: &parked)
        _ = s.apply(.enqueue(task(2, readyAt: 5_000)), epoch: 1, parked: &parked)
        _ = s.apply(.lease(taskId: 1, until: 60_000, deliveries: 2), epoch: 1, parked: &parked)
        #expect(s.place(of: 1) == .leased)
        _ = s.apply(.noop, epoch: 2, parked: &parked)
        #expect(s.place(of: 1) == .ready && s.leasedCount == 0 && s.task(1)?.deliveries == 2)
        // Delays are not leases: they go on.
        #expect(s.place(of: 2) == .delayed)
        _ = s.apply(.lease(taskId: 1, until: 60_000, deliveries: 3), epoch: 2, parked: &parked)
        #expect(s.place(of: 1) == .leased && s.leaseInForce(s.task(1)!))
    }

    @Test func aReleaseWithADelayWaitsThenIsReady() {
        var s = TaskStore()
        _ = s.advance(to: 10)
        _ = apply(&s, .enqueue(task(1)))
        _ = apply(&s, .lease(taskId: 1, until: 1_000, deliveries: 1))
        _ = apply(&s, .release(taskId: 1, readyAt: 50))
        #expect(s.place(of: 1) == .delayed)
        _ = s.advance(to: 50)
        #expect(s.place(of: 1) == .ready)
    }

    @Test func buryAndKickMoveTasksBetweenAQueueAndItsDeadLetterQueue() {
        var s = TaskStore()
        _ = apply(&s, .enqueue(task(1, "jobs")))
        _ = apply(&s, .enqueue(task(2, "jobs")))
        _ = apply(&s, .lease(taskId: 1, until: 5_000, deliveries: 3))
        _ = apply(&s, .bury(taskId: 1, deadLetter: "jobs.dead"))
        #expect(s.task(1)?.queue == "jobs.dead" && s.task(1)?.origin == "jobs")
        #expect(s.lines["jobs.dead"]?.total == 1 && s.lines["jobs"]?.total == 1)
        // Burying again leaves it where it is.
        _ = apply(&s, .bury(taskId: 1, deadLetter: "jobs.dead.dead"))
        #expect(s.task(1)?.queue == "jobs.dead")
        // KICK moves only dead-lettered tasks, and resets their count.
        #expect(apply(&s, .kick(taskIds: [1, 2, 99])) == .moved(1))
        #expect(s.task(1)?.queue == "jobs" && s.task(1)?.origin == nil && s.task(1)?.deliveries == 0)
        #expect(s.lines["jobs.dead"] == nil)
        #expect(s.nextReady(in: ["jobs"])?.id == 1)
    }

    @Test func aKeyDeduplicatesWithinItsWindowOnly() {
        var s = TaskStore()
        #expect(apply(&s, .enqueue(task(1, key: "k", keyUntil: 1_000, at: 0))) == .stored(task(1, key: "k", keyUntil: 1_000)))
        #expect(apply(&s, .enqueue(task(2, key: "k", keyUntil: 1_500, at: 500))) == .duplicate(taskId: 1, lamport: 1))
        // Another queue is another key.
        guard case .stored = apply(&s, .enqueue(task(3, "other", key: "k", keyUntil: 1_500, at: 500))) else {
            Issue.record("a key in another queue was taken for a duplicate")
            return
        }
        // Acked, the key still counts until its window ends.
        _ = apply(&s, .ack(taskId: 1))
        #expect(apply(&s, .enqueue(task(4, key: "k", keyUntil: 1_900, at: 900))) == .duplicate(taskId: 1, lamport: 1))
        guard case .stored = apply(&s, .enqueue(task(5, key: "k", keyUntil: 2_000, at: 1_000))) else {
            Issue.record("a key past its window still deduplicated")
            return
        }
        #expect(s.firstPut(queue: "default", key: "k", atMs: 1_000)?.taskId == 5)
        #expect(s.keyCount == 2)
    }

    @Test func aPauseHoldsTheQueueUntilItEnds() {
        var s = TaskStore()
        _ = apply(&s, .enqueue(task(1)))
        _ = apply(&s, .pause(queue: "default", until: 300))
        #expect(s.isPaused("default") && s.nextReady(in: ["default"]) == nil)
        #expect(s.nextDue() == 300)
        _ = s.advance(to: 300)
        #expect(!s.isPaused("default") && s.nextReady(in: ["default"])?.id == 1)
        _ = apply(&s, .pause(queue: "default", until: 900))
        _ = apply(&s, .pause(queue: "default", until: 0))
        #expect(!s.isPaused("default"))
    }

    @Test func aBusyTaskIsHandedToNobodyUntilEveryChangeSettles() {
        var s = TaskStore()
        _ = apply(&s, .enqueue(task(1)))
        s.markBusy(1)
        s.markBusy(1)
        #expect(s.nextReady(in: ["default"]) == nil && s.readyCount == 0)
        s.clearBusy(1)
        #expect(s.nextReady(in: ["default"]) == nil)
        s.clearBusy(1)
        #expect(s.nextReady(in: ["default"])?.id == 1 && s.readyCount == 1)
    }

    @Test func aSnapshotLoadsTheSameState() {
        var s = TaskStore()
        _ = s.advance(to: 100)
        _ = apply(&s, .enqueue(task(1, "a", pri: 3, key: "x", keyUntil: 10_000, at: 100)))
        _ = apply(&s, .enqueue(task(2, "a", readyAt: 5_000)))
        _ = apply(&s, .lease(taskId: 1, until: 900, deliveries: 2))
        _ = apply(&s, .pause(queue: "a", until: 700))
        let snap = QueueSnapshot(lastIndex: 9, lastEpoch: s.epoch, lamport: 9, highestTaskId: s.highestTaskId,
                                 tasks: s.allTasks(), pauses: s.pauses, keys: s.keyRecords())
        let decoded = QueueSnapshot.decode(snap.encoded())
        #expect(decoded == snap)
        #expect(decoded.map { ChunkSource.encodedSize($0) } == snap.encoded().count)
        var t = TaskStore()
        _ = t.advance(to: 100)
        t.load(decoded!)
        #expect(t.allTasks() == s.allTasks())
        #expect(t.place(of: 1) == .leased && t.place(of: 2) == .delayed && t.isPaused("a"))
        #expect(t.firstPut(queue: "a", key: "x", atMs: 200)?.taskId == 1)
    }

    /// The compact form gives back every field it was given, through a
    /// change of queue (BURY) and back (KICK).
    @Test func aStoredTaskIsEightyBytes() {
        #expect(MemoryLayout<StoredTask>.stride == 80)
    }

    @Test func aStoredTaskKeepsEveryField() {
        var s = TaskStore()
        let t = QueuedTask(id: 4, lamport: 9, enqueuedAtMs: 12, payload: [1, 2], queue: "img", priority: 3,
                           readyAtMs: 0, key: "k", keyUntilMs: 60_000, deliveries: 2, leasedUntilMs: 44,
                           leaseEpoch: 0, origin: nil)
        _ = apply(&s, .enqueue(t))
        #expect(s.task(4) == t)
        _ = apply(&s, .bury(taskId: 4, deadLetter: "img.dead"))
        var buried = t
        buried.queue = "img.dead"
        buried.origin = "img"
        buried.leasedUntilMs = 0
        #expect(s.task(4) == buried)
        #expect(s.knownQueues == ["img", "img.dead"])
        _ = apply(&s, .kick(taskIds: [4]))
        var kicked = t
        kicked.deliveries = 0
        kicked.leasedUntilMs = 0
        #expect(s.task(4) == kicked && s.lines["img.dead"] == nil && s.head(of: "img") == kicked)
    }

    /// Keys leave as their windows end, earliest first, however they arrived.
    @Test func keysExpireInWindowOrder() {
        var s = TaskStore()
        for (id, until) in [(1, 900), (2, 300), (3, 600)] as [(UInt64, Int64)] {
            _ = apply(&s, .enqueue(task(id, key: "k\(id)", keyUntil: until, at: 0)))
        }
        #expect(s.keyCount == 3)
        _ = apply(&s, .enqueue(task(4, at: 600)))
        #expect(s.keyCount == 3)
        _ = apply(&s, .enqueue(task(5, key: "k5", keyUntil: 2_000, at: 600)))
        #expect(s.keyCount == 2)
        #expect(s.firstPut(queue: "default", key: "k1", atMs: 600)?.taskId == 1)
        #expect(s.firstPut(queue: "default", key: "k3", atMs: 599) == nil)
    }
}
