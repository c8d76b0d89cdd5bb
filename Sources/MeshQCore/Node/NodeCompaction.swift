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
        public var snapshot: QueueSnapshot
        public var tail: [LogEntry]
    }

    /// The state to compact into, valid at any time (the caller writes it
    /// only once every record handed out is durable). With `sorted: false`
    /// the snapshot's tasks and keys come in no particular order, for a
    /// caller that sorts them off the loop (a snapshot is always written
    /// sorted: tasks by id, keys by queue and key).
    public func compactionImage(sorted: Bool = true) -> CompactionImage {
        let tail = log.lastIndex > commitIndex ? log.entries(from: commitIndex + 1, through: log.lastIndex) : []
        var snap = QueueSnapshot(lastIndex: commitIndex, lastEpoch: log.epoch(at: commitIndex) ?? log.baseEpoch,
                                 lamport: clock.time, highestTaskId: store.highestTaskId, tasks: [],
                                 parkedApplied: parkedApplied, pauses: store.pauses,
                                 keys: sorted ? store.keyRecords() : store.keyRecordsInAnyOrder())
        snap.tasks = sorted ? store.allTasks() : store.tasksInAnyOrder()
        return CompactionImage(snapshot: snap, tail: tail)
    }
}
