// What a node writes when it compacts its log: the committed state as a
// snapshot, plus the entries after the commit point (a cluster's uncommitted
// tail: durable, maybe acknowledged to a leader, so they must outlive the old
// log). Asking only for a moment with no tail would starve compaction: a
// leader under steady load starts its next round in the same step that
// commits the last one, so its log always has a tail, and its log (and its
// followers') would then grow without bound.
// The snapshot is the one `committedSnapshot` gives (same fields).
// Invariant: snapshot.lastIndex == commitIndex, and tail holds exactly the
// entries commitIndex+1 ... lastIndex of the in-memory log, in order.

extension NodeCore {
    public struct CompactionImage: Sendable {
        /// The snapshot's fields; its tasks and keys are empty while `store`
        /// is set (a background compaction takes them from it).
        public var snapshot: QueueSnapshot
        public var tail: [LogEntry]
        /// The queue as it stood, for a background compaction: a copy of the
        /// store's tables is O(1) (copy-on-write), so the loop pays for the
        /// tables only as it next changes each of them (the key table, not
        /// at all while nothing is PUT), never for materializing every task
        /// and key into arrays (a third of a second at 161,000 tasks and
        /// 420,000 keys, on each node at the same moment).
        var store: TaskStore?

        /// How many tasks the image holds.
        public var taskCount: Int { store?.count ?? snapshot.tasks.count }

        /// The snapshot with its tasks and keys, in no particular order
        /// (the background thread's work).
        public func filledSnapshot() -> QueueSnapshot {
            guard let store else { return snapshot }
            var s = snapshot
            s.tasks = store.tasksInAnyOrder()
            s.keys = store.keyRecordsInAnyOrder()
            return s
        }
    }

    /// The state to compact into, valid at any time (the caller writes it
    /// only once every record handed out is durable). With `sorted: false`
    /// the snapshot's tasks and keys are left to `filledSnapshot`, for a
    /// caller that fills and sorts them off the loop (a snapshot is always
    /// written sorted: tasks by id, keys by queue and key).
    public func compactionImage(sorted: Bool = true) -> CompactionImage {
        let tail = log.lastIndex > commitIndex ? log.entries(from: commitIndex + 1, through: log.lastIndex) : []
        var snap = QueueSnapshot(lastIndex: commitIndex, lastEpoch: log.epoch(at: commitIndex) ?? log.baseEpoch,
                                 lamport: clock.time, highestTaskId: store.highestTaskId, tasks: [],
                                 parkedApplied: parkedApplied, pauses: store.pauses, keys: [])
        guard sorted else { return CompactionImage(snapshot: snap, tail: tail, store: store) }
        snap.tasks = store.allTasks()
        snap.keys = store.keyRecords()
        return CompactionImage(snapshot: snap, tail: tail, store: nil)
    }
}
