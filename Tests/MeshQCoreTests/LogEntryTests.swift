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
}
