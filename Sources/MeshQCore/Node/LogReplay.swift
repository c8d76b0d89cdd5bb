// LogReplay: rebuilds a node's state at start from its snapshot and the
// records logged after it, in order. An entry at an index already in the log
// replaces it and everything after (a tail cut by a newer leader, logged
// again); an entry out of sequence is skipped and counted (a damaged log);
// a commit record moves the commit mark; a truncate record cuts the
// uncommitted tail. Then the entries up to the commit mark apply to the
// store (all of them for a cluster of one: alone, everything durable was
// committed).
// Invariant: the queue holds exactly the effects of the committed entries,
// the same way a running node applies them (`apply`), and the log stays
// contiguous from the snapshot.

struct LogReplay {
    private(set) var store = TaskStore()
    private(set) var log: ReplicatedLog
    private(set) var clock = LamportClock()
    /// The highest mailbox sequence applied from each node.
    private(set) var parkedApplied: [Int: UInt64] = [:]
    /// Entries out of sequence, skipped.
    private(set) var skippedRecords = 0

    init(snapshot: QueueSnapshot?, records: [LogRecord], commitAll: Bool) {
        log = ReplicatedLog(baseIndex: snapshot?.lastIndex ?? 0, baseEpoch: snapshot?.lastEpoch ?? 0)
        var commitMark = log.baseIndex
        // Tasks the replay will leave (the snapshot's, plus enqueues, minus
        // acks), so the queue is sized once instead of growing step by step;
        // a log of churn around a small queue reserves little.
        var liveEstimate = snapshot?.tasks.count ?? 0
        log.reserveCapacity(records.count)
        for r in records {
            switch r {
            case .entry(let e):
                guard e.index > log.baseIndex else { continue }
                if e.index <= log.lastIndex { log.truncate(after: e.index - 1) }
                guard e.index == log.lastIndex + 1 else { skippedRecords += 1; continue }
                switch e.op {
                case .enqueue, .enqueueParked: liveEstimate += 1
                case .ack: liveEstimate -= 1
                default: break
                }
                log.append(e)
                clock.observe(e.lamport)
            case .commit(let i):
                commitMark = max(commitMark, i)
            case .truncate(let after):
                if after >= log.baseIndex && after < log.lastIndex { log.truncate(after: max(after, log.commitIndex)) }
            }
        }
        store.reserveCapacity(max(0, liveEstimate))
        if let s = snapshot {
            store.load(s)
            clock.observe(s.lamport)
            parkedApplied = s.parkedApplied
        }
        // Applied in place, then marked: no copy of a long log's entries.
        let through = min(commitAll ? log.lastIndex : commitMark, log.lastIndex)
        var i = log.commitIndex
        while i < through {
            i += 1
            if let e = log.entry(at: i) { _ = store.apply(e.op, epoch: e.epoch, parked: &parkedApplied) }
        }
        log.markCommitted(through: through)
    }

    /// The highest task id among the uncommitted entries.
    static func highestTaskId(in log: ReplicatedLog) -> UInt64 {
        var top: UInt64 = 0
        for i in stride(from: log.lastIndex, to: log.commitIndex, by: -1) {
            switch log.entry(at: i)?.op {
            case .enqueue(let t)?, .enqueueParked(let t, _, _)?: top = max(top, t.id)
            default: break
            }
        }
        return top
    }
}
