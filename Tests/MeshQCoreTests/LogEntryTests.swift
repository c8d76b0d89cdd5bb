import Testing
@testable import MeshQCore

@Suite struct LogEntryTests {
    @Test func everyOperationRoundTrips() {
        let entries = [
            LogEntry(index: 1, epoch: 1, lamport: 1, op: .noop),
            LogEntry(index: 2, epoch: 1, lamport: 5,
                     op: .enqueue(QueuedTask(id: 7, lamport: 5, enqueuedAtMs: -3, payload: [0, 1, 255]))),
            LogEntry(index: UInt64.max, epoch: 9, lamport: 6, op: .ack(taskId: 7)),
        ]
        for e in entries {
            #expect(LogEntry.decode(e.encoded()) == e)
        }
    }

    @Test func truncatedOrTrailingBytesAreRejected() {
        let bytes = LogEntry(index: 2, epoch: 1, lamport: 5,
                             op: .enqueue(QueuedTask(id: 7, lamport: 5, enqueuedAtMs: 0, payload: Array("abc".utf8)))).encoded()
        for cut in 0..<bytes.count {
            #expect(LogEntry.decode(Array(bytes.prefix(cut))) == nil)
        }
        #expect(LogEntry.decode(bytes + [0]) == nil)
        #expect(LogEntry.decode([99] + bytes.dropFirst()) == nil)
    }

    @Test func snapshotRoundTrips() {
        let s = QueueSnapshot(lastIndex: 10, lastEpoch: 2, lamport: 44, highestTaskId: 9,
                              tasks: [QueuedTask(id: 3, lamport: 4, enqueuedAtMs: 5, payload: [1]),
                                      QueuedTask(id: 9, lamport: 40, enqueuedAtMs: 6, payload: [])])
        #expect(QueueSnapshot.decode(s.encoded()) == s)
        #expect(QueueSnapshot.decode(Array(s.encoded().dropLast())) == nil)
    }

    @Test func lamportClockRules() {
        var c = LamportClock()
        #expect(c.tick() == 1)
        #expect(c.merge(10) == 11)
        #expect(c.merge(3) == 12)
        c.observe(5)
        #expect(c.time == 12)
        c.observe(100)
        #expect(c.tick() == 101)
    }
}

/// Protocol 2's entries round-trip, and the records a protocol-1 build
/// wrote read as plain tasks of the queue `default`.
@Suite struct LogEntryProtocolTwoTests {
    @Test func everyNewOperationRoundTrips() {
        let t = QueuedTask(id: 7, lamport: 5, enqueuedAtMs: 12, payload: [0, 1, 255], queue: "img.resize", priority: 3,
                           readyAtMs: 900, key: "order:42/a", keyUntilMs: 600_012, deliveries: 2, leasedUntilMs: 44,
                           origin: "img")
        let ops: [LogEntry.Operation] = [
            .enqueue(t), .enqueueParked(t, from: 3, seq: 8), .lease(taskId: 7, until: 1_000, deliveries: 4),
            .touch(taskId: 7, until: -1), .release(taskId: 7, readyAt: 0), .bury(taskId: 7, deadLetter: "img.dead"),
            .kick(taskIds: [1, 2, UInt64.max]), .kick(taskIds: []), .pause(queue: "img", until: 77),
        ]
        for (i, op) in ops.enumerated() {
            let e = LogEntry(index: UInt64(i + 1), epoch: 2, lamport: 9, op: op)
            #expect(LogEntry.decode(e.encoded()) == e, "\(op)")
            let bytes = e.encoded()
            for cut in 0..<bytes.count { #expect(LogEntry.decode(Array(bytes.prefix(cut))) == nil) }
        }
    }

    @Test func aPlainTaskKeepsTheProtocolOneEncoding() {
        let plain = QueuedTask(id: 7, lamport: 5, enqueuedAtMs: 12, payload: Array("abc".utf8))
        let e = LogEntry(index: 2, epoch: 1, lamport: 5, op: .enqueue(plain))
        // kind 2, index, epoch, lamport, id, lamport, at, payload: what protocol-1 builds wrote.
        var w = ByteWriter()
        w.u8(2); w.u64(2); w.u64(1); w.u64(5); w.u64(7); w.u64(5); w.i64(12); w.blob(Array("abc".utf8))
        #expect(e.encoded() == w.bytes)
        #expect(LogEntry.decode(w.bytes) == e)
    }

    @Test func versionTwoSnapshotsStillRead() {
        // A protocol-1 build's snapshot (version 2): header, tasks, parkedApplied.
        var w = ByteWriter()
        w.u8(2); w.u64(10); w.u64(2); w.u64(44); w.u64(9); w.u64(1)
        w.u64(9); w.u64(40); w.i64(6); w.blob([1, 2])
        w.u32(1); w.u32(3); w.u64(5)
        let s = QueueSnapshot.decode(w.bytes)
        #expect(s?.tasks == [QueuedTask(id: 9, lamport: 40, enqueuedAtMs: 6, payload: [1, 2])])
        #expect(s?.tasks.first?.queue == "default" && s?.parkedApplied == [3: 5])
    }

    /// Every combination of options round-trips in the flagged form, in a
    /// log entry and in a snapshot, and the snapshot's computed size is exact.
    @Test func everyCombinationOfOptionsRoundTrips() {
        for mask in 0..<128 {
            var t = QueuedTask(id: 7, lamport: 5, enqueuedAtMs: 12, payload: [9, 8])
            if mask & 1 != 0 { t.queue = "q\(mask)" }
            if mask & 2 != 0 { t.priority = 3 }
            if mask & 4 != 0 { t.readyAtMs = 900 }
            if mask & 8 != 0 { t.key = "k\(mask)"; t.keyUntilMs = 600_012 }
            if mask & 16 != 0 { t.deliveries = 4 }
            if mask & 32 != 0 { t.leasedUntilMs = 44; t.leaseEpoch = 3 }
            if mask & 64 != 0 { t.origin = "from" }
            let e = LogEntry(index: 1, epoch: 2, lamport: 9, op: .enqueueParked(t, from: 2, seq: 5))
            #expect(LogEntry.decode(e.encoded()) == e, "mask \(mask)")
            let s = QueueSnapshot(lastIndex: 1, lastEpoch: 2, lamport: 9, highestTaskId: 7, tasks: [t])
            #expect(QueueSnapshot.decode(s.encoded()) == s, "mask \(mask)")
            #expect(s.encodedSize == s.encoded().count, "mask \(mask)")
        }
    }

    @Test func aKeyedPutWritesOnlyItsKeyAndPriority() {
        let t = QueuedTask(id: 7, lamport: 5, enqueuedAtMs: 12, payload: Array("abc".utf8), priority: 7,
                           key: "b12-34", keyUntilMs: 600_012)
        let plain = QueuedTask(id: 7, lamport: 5, enqueuedAtMs: 12, payload: Array("abc".utf8))
        let extra = LogEntry(index: 2, epoch: 1, lamport: 5, op: .enqueue(t)).encoded().count
            - LogEntry(index: 2, epoch: 1, lamport: 5, op: .enqueue(plain)).encoded().count
        // flags, priority, the key's length and bytes, its window end.
        #expect(extra == 1 + 4 + 4 + 6 + 8)
    }

    /// Entries of kinds 5 and 6 (every option field, as builds before the
    /// flagged form wrote them) still read.
    @Test func everyFieldEntriesStillRead() {
        let t = QueuedTask(id: 7, lamport: 5, enqueuedAtMs: 12, payload: [1], queue: "img", priority: 3, readyAtMs: 900,
                           key: "k", keyUntilMs: 60, deliveries: 2, leasedUntilMs: 44, leaseEpoch: 1, origin: "o")
        for kind: UInt8 in [5, 6] {
            var w = ByteWriter()
            w.u8(kind); w.u64(2); w.u64(1); w.u64(5)
            w.u64(7); w.u64(5); w.i64(12); w.blob([1])
            w.string("img"); w.u32(3); w.i64(900); w.string("k"); w.i64(60); w.u32(2); w.i64(44); w.u64(1); w.string("o")
            if kind == 6 { w.u32(3); w.u64(8) }
            let op: LogEntry.Operation = kind == 5 ? .enqueue(t) : .enqueueParked(t, from: 3, seq: 8)
            #expect(LogEntry.decode(w.bytes) == LogEntry(index: 2, epoch: 1, lamport: 5, op: op))
        }
    }

    @Test func versionThreeSnapshotsStillRead() {
        var w = ByteWriter()
        w.u8(3); w.u64(10); w.u64(2); w.u64(44); w.u64(9); w.u64(1)
        w.u64(9); w.u64(40); w.i64(6); w.blob([1, 2])
        w.u8(1); w.string("img"); w.u32(3); w.i64(900); w.string(""); w.i64(0); w.u32(2); w.i64(0); w.u64(0); w.string("")
        w.u32(0); w.u32(0); w.u64(0)
        let s = QueueSnapshot.decode(w.bytes)
        #expect(s?.tasks == [QueuedTask(id: 9, lamport: 40, enqueuedAtMs: 6, payload: [1, 2], queue: "img", priority: 3,
                                        readyAtMs: 900, deliveries: 2)])
    }
}
