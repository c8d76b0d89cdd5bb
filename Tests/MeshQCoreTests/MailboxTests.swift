import Testing
@testable import MeshQCore

@Suite struct MailboxTests {
    @Test func replayKeepsWhatIsNotDeliveredAndNeverReusesASequence() {
        var m = Mailbox()
        let a = m.park(payload: [1], at: 10)
        let b = m.park(payload: [2], at: 11)
        #expect((a.seq, b.seq) == (1, 2))
        let records: [MailboxRecord] = [.park(a), .park(b), .delivered(through: 1)]
        let again = Mailbox(records: records.compactMap { MailboxRecord.decode($0.encoded()) })
        #expect(again.pending.map(\.seq) == [2])
        #expect(again.nextSeq == 3)
        // After compaction only the counter is left; it still moves on.
        var compacted = Mailbox(nextSeq: Mailbox.decodeSnapshot(Mailbox.encodeSnapshot(nextSeq: 3))!)
        #expect(compacted.isEmpty)
        #expect(compacted.park(payload: [3], at: 12).seq == 3)
    }

    /// A wiped mailbox restarts its counter, but the replicated state remembers
    /// what it applied from this node: the node hands out sequences above it.
    @Test func aNodeContinuesAboveTheSequencesTheStateApplied() {
        let snap = QueueSnapshot(lastIndex: 5, lastEpoch: 1, lamport: 9, highestTaskId: 3, tasks: [],
                                 parkedApplied: [2: 50, 3: 70])
        let core = NodeCore(nodeId: 2, memberIds: [1, 2, 3], settings: ClusterSettings(), snapshot: snap,
                            records: [], mailbox: Mailbox())
        #expect(core.mailbox.nextSeq == 51)
        // A mailbox already ahead keeps its own counter.
        let ahead = NodeCore(nodeId: 2, memberIds: [1, 2, 3], settings: ClusterSettings(), snapshot: snap,
                             records: [], mailbox: Mailbox(nextSeq: 900))
        #expect(ahead.mailbox.nextSeq == 900)
    }

    @Test func garbageRecordsDecodeToNil() {
        #expect(MailboxRecord.decode([]) == nil)
        #expect(MailboxRecord.decode([9, 1, 2]) == nil)
        let ok = MailboxRecord.park(MailboxEntry(seq: 4, payload: [7, 7], enqueuedAtMs: 1)).encoded()
        #expect(MailboxRecord.decode(Array(ok.dropLast())) == nil)
        #expect(MailboxRecord.decode(ok + [0]) == nil)
    }

    @Test func aParkedTaskDeliveredTwiceIsAppliedOnce() {
        // Node 2's entry 2-5 committed twice (a delivery retried after a lost
        // confirmation), then 2-4 late: only the first 2-5 applies.
        func parked(_ index: UInt64, id: UInt64, seq: UInt64) -> LogRecord {
            .entry(LogEntry(index: index, epoch: 1, lamport: index,
                            op: .enqueueParked(QueuedTask(id: id, lamport: index, enqueuedAtMs: 0, payload: [UInt8(id)]),
                                               from: 2, seq: seq)))
        }
        let n = NodeCore(nodeId: 1, memberIds: [1], settings: ClusterSettings(), snapshot: nil,
                         records: [parked(1, id: 1, seq: 5), parked(2, id: 2, seq: 5), parked(3, id: 3, seq: 4)])
        #expect(n.store.count == 1)
        #expect(n.store.task(1) != nil)
        #expect(n.parkedApplied == [2: 5])
        // The dedupe state travels in the snapshot.
        let snap = n.snapshot()!
        #expect(QueueSnapshot.decode(snap.encoded())?.parkedApplied == [2: 5])
        #expect(n.store.highestTaskId == 3)
    }
}
