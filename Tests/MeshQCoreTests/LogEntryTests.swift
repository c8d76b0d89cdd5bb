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
