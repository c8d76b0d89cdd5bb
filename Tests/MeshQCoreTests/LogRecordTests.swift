import Testing
@testable import MeshQCore

@Suite struct LogRecordTests {
    static func enqueue(_ index: UInt64, epoch: UInt64 = 1, task: UInt64? = nil, _ payload: String = "") -> LogEntry {
        let id = task ?? index
        return LogEntry(index: index, epoch: epoch, lamport: index,
                        op: .enqueue(QueuedTask(id: id, lamport: index, enqueuedAtMs: 0, payload: Array(payload.utf8))))
    }

    static let samples: [LogRecord] = [
        .entry(LogEntry(index: 1, epoch: 1, lamport: 1, op: .noop)),
        .entry(enqueue(2, epoch: 3, task: 9, "payload")),
        .entry(LogEntry(index: UInt64.max, epoch: 2, lamport: 8, op: .ack(taskId: 9))),
        .commit(0), .commit(17), .commit(UInt64.max),
        .truncate(after: 0), .truncate(after: 42), .truncate(after: UInt64.max),
    ]

    @Test func everyRecordRoundTrips() {
        for r in Self.samples {
            #expect(LogRecord.decode(r.encoded()) == r)
        }
        #expect(LogRecord.commit(5).encoded().count == 9)
        #expect(LogRecord.truncate(after: 5).encoded().count == 9)
        // Commit and truncate marks are told apart by their kind byte alone.
        #expect(LogRecord.commit(5).encoded() != LogRecord.truncate(after: 5).encoded())
    }

    @Test func anEntryIsEncodedExactlyAsBeforeCommitMarks() {
        // Logs written before commit and truncate records existed hold plain
        // LogEntry encodings: they must still read, as entries.
        for e in [LogEntry(index: 3, epoch: 1, lamport: 4, op: .noop), Self.enqueue(4, "old"),
                  LogEntry(index: 5, epoch: 1, lamport: 6, op: .ack(taskId: 4))] {
            #expect(LogRecord.entry(e).encoded() == e.encoded())
            #expect(LogRecord.decode(e.encoded()) == .entry(e))
        }
    }

    @Test func garbageAndTruncatedBytesDecodeToNil() {
        #expect(LogRecord.decode([]) == nil)
        #expect(LogRecord.decode([0]) == nil)
        #expect(LogRecord.decode([0xC3, 0, 0, 0, 0, 0, 0, 0, 0]) == nil)   // unknown kind
        #expect(LogRecord.decode([0xFF]) == nil)
        for r in Self.samples {
            let bytes = r.encoded()
            for cut in 0..<bytes.count {
                #expect(LogRecord.decode(Array(bytes.prefix(cut))) == nil, "\(r) cut at \(cut)")
            }
            #expect(LogRecord.decode(bytes + [0]) == nil, "\(r) with a trailing byte")
        }
        // Random bytes: any answer but a trap.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let junk = (0..<Int.random(in: 0..<48, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = LogRecord.decode(junk)
            _ = LogRecord.decode([0xC1] + junk)
            _ = LogRecord.decode([2] + junk)
        }
    }
}

/// How a node rebuilds itself from its durable records (NodeCore.init).
@Suite struct LogRecordReplayTests {
    static let cluster = [1, 2, 3]

    static func boot(_ records: [LogRecord], members: [Int] = cluster, snapshot: QueueSnapshot? = nil) -> NodeCore {
        NodeCore(nodeId: 1, memberIds: members, settings: ClusterSettings(), snapshot: snapshot, records: records)
    }

    static func tasks(_ n: UInt64, epoch: UInt64 = 1) -> [LogRecord] {
        (1...n).map { .entry(LogRecordTests.enqueue($0, epoch: epoch, "t\($0)")) }
    }

    @Test func entriesPastTheLastCommitMarkAreKeptButNotApplied() {
        let core = Self.boot(Self.tasks(3) + [.commit(3)] + Self.tasks(5).suffix(2))
        #expect(core.store.count == 3)
        #expect(core.store.task(3) != nil && core.store.task(4) == nil && core.store.task(5) == nil)
        #expect(core.commitIndex == 3)
        #expect(core.lastIndex == 5)
        #expect(core.snapshot() == nil)   // the uncommitted tail must stay on disk
    }

    @Test func theHighestCommitMarkCountsWhereverItSits() {
        // Marks may come in any order; a later, lower one never uncommits.
        let core = Self.boot(Self.tasks(4) + [.commit(3), .commit(1)])
        #expect(core.commitIndex == 3)
        #expect(core.store.count == 3)
        // Nothing marked: nothing applied in a cluster.
        let unmarked = Self.boot(Self.tasks(4))
        #expect(unmarked.store.count == 0)
        #expect(unmarked.lastIndex == 4 && unmarked.commitIndex == 0)
        // A mark beyond the log commits what is there.
        let beyond = Self.boot(Self.tasks(2) + [.commit(9)])
        #expect(beyond.commitIndex == 2 && beyond.store.count == 2)
    }

    @Test func anEntryAtAnIndexAlreadyHeldReplacesItAndEverythingAfter() {
        // A follower's uncommitted tail (3...5 of epoch 1) gives way to a new
        // leader's entry 3 of epoch 2.
        let replacement = LogRecordTests.enqueue(3, epoch: 2, task: 30, "new")
        let core = Self.boot(Self.tasks(5) + [.commit(2), .entry(replacement), .commit(3)])
        #expect(core.lastIndex == 3)
        #expect(core.log.entry(at: 3) == replacement)
        #expect(core.log.entry(at: 4) == nil)
        #expect(core.commitIndex == 3)
        #expect(core.store.count == 3)
        #expect(core.store.task(30)?.payload == Array("new".utf8))
        #expect(core.store.task(3) == nil && core.store.task(4) == nil && core.store.task(5) == nil)
        #expect(core.epoch == 2)
    }

    @Test func truncateDropsTheTail() {
        let core = Self.boot(Self.tasks(5) + [.commit(2), .truncate(after: 3)])
        #expect(core.lastIndex == 3)
        #expect(core.commitIndex == 2)
        #expect(core.store.count == 2)
        // Appended after a truncation, the log goes on from the cut.
        let next = LogRecordTests.enqueue(4, epoch: 2, task: 40, "after")
        let again = Self.boot(Self.tasks(5) + [.truncate(after: 3), .entry(next), .commit(4)])
        #expect(again.lastIndex == 4 && again.log.entry(at: 4) == next)
        #expect(again.store.count == 4 && again.store.task(40) != nil && again.store.task(5) == nil)
        // A truncation at or past the end changes nothing.
        let noop = Self.boot(Self.tasks(3) + [.truncate(after: 3), .truncate(after: 7), .commit(3)])
        #expect(noop.lastIndex == 3 && noop.store.count == 3)
    }

    @Test func aClusterOfOneAppliesEverything() {
        let core = Self.boot(Self.tasks(4), members: [1])
        #expect(core.store.count == 4)
        #expect(core.commitIndex == 4 && core.lastIndex == 4)
        #expect(core.snapshot() != nil)
    }

    @Test func entriesCoveredByTheSnapshotAreSkipped() {
        let snap = QueueSnapshot(lastIndex: 2, lastEpoch: 1, lamport: 2, highestTaskId: 2,
                                 tasks: [QueuedTask(id: 1, lamport: 1, enqueuedAtMs: 0, payload: Array("t1".utf8)),
                                         QueuedTask(id: 2, lamport: 2, enqueuedAtMs: 0, payload: Array("t2".utf8))])
        let core = Self.boot(Self.tasks(4) + [.commit(3)], snapshot: snap)
        #expect(core.log.baseIndex == 2)
        #expect(core.commitIndex == 3 && core.lastIndex == 4)
        #expect(core.store.count == 3)
    }
}
