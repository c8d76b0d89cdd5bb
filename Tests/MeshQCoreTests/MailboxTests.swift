import MeshQTestSupport
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

/// A PUT parked while no leader was reachable keeps its queue, options and
/// key: the leader it reaches puts it as it was asked, and its key makes no
/// second task next to one put directly.
@Suite struct MailboxPutTests {
    @Test func aParkedPutKeepsItsOptionsAndKey() {
        var settings = ClusterSettings()
        settings.commitTimeoutMs = 1_000
        let d = NodeCoreDriver(nodes: 3, settings: settings)
        d.start([1])
        let put = d.send(.put(queue: "mail", options: PutOptions(priority: 7, delayMs: 0, key: "order:9"), payload: [66]), to: 1)
        #expect(d.run(withinMs: 3_000) { d.replies[put] != nil })
        guard case .queued? = d.replies[put] else {
            Issue.record("expected QUEUED, got \(String(describing: d.replies[put]))")
            return
        }
        #expect(d.disks[1]!.mailbox.first.map { if case .park(let e) = $0 { e.queue == "mail" && e.options.key == "order:9" } else { false } } == true)
        d.start([2, 3])
        #expect(d.run(withinMs: 10_000) { d.node(3).store.count == 1 && d.node(1).mailbox.isEmpty })
        let t = d.node(3).store.allTasks().first
        #expect(t?.queue == "mail" && t?.priority == 7 && t?.key == "order:9" && t?.payload == [66])
        // The same key put directly now is the parked task's duplicate.
        let again = d.request(.put(queue: "mail", options: PutOptions(key: "order:9"), payload: [67]), at: 3)
        guard case .duplicate(let id, _)? = again else {
            Issue.record("expected dup, got \(String(describing: again))")
            return
        }
        #expect(id == t?.id && d.node(3).store.count == 1)
    }

    @Test func aParkedPutWhoseKeyWasPutDirectlyMakesNoTask() {
        var store = TaskStore()
        var parked: [Int: UInt64] = [:]
        let direct = QueuedTask(id: 1, lamport: 1, enqueuedAtMs: 100, payload: [1], queue: "q", key: "k", keyUntilMs: 10_000)
        _ = store.apply(.enqueue(direct), parked: &parked)
        let late = QueuedTask(id: 2, lamport: 2, enqueuedAtMs: 50, payload: [1], queue: "q", key: "k", keyUntilMs: 20_000)
        #expect(store.apply(.enqueueParked(late, from: 2, seq: 1), parked: &parked) == .duplicate(taskId: 1, lamport: 1))
        #expect(store.count == 1 && parked == [2: 1])
        // Delivered again: a repeat, still nothing.
        #expect(store.apply(.enqueueParked(late, from: 2, seq: 1), parked: &parked) == .parkedAgain)
        #expect(MailboxRecord.decode(MailboxRecord.park(MailboxEntry(seq: 3, payload: [9], enqueuedAtMs: 4, queue: "q",
            options: PutOptions(priority: 2, delayMs: 5, key: "k"))).encoded())
            == .park(MailboxEntry(seq: 3, payload: [9], enqueuedAtMs: 4, queue: "q", options: PutOptions(priority: 2, delayMs: 5, key: "k"))))
    }
}
