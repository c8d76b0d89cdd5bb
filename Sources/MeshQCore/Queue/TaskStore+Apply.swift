// TaskStore's replicated changes: one committed log operation applied to
// the state. Every decision here reads only the task's fields and the
// entry, never the placement (which depends on each node's clock) nor the
// config, so every node that applies the same entries holds the same
// fields. The leader checked each change before it proposed it (a lease
// only of a ready task, a TOUCH only of a live lease); applying does not
// check again what a node's clock could see differently.
// Invariant: an entry about a task that is gone (acked meanwhile) changes
// nothing.

extension TaskStore {
    /// What applying an operation did, for the reply its client gets.
    public enum Applied: Equatable, Sendable {
        /// A PUT stored this task.
        case stored(QueuedTask)
        /// A PUT whose key was put before: nothing stored; the first task's id and Lamport time.
        case duplicate(taskId: UInt64, lamport: UInt64)
        /// A parked PUT delivered again: nothing stored.
        case parkedAgain
        /// The task after the change (lease, touch, release, bury, ack).
        case changed(QueuedTask)
        /// KICK: how many tasks moved back.
        case moved(Int)
        /// A pause, or the first entry of an epoch.
        case done
        /// The task is gone.
        case missing
    }

    /// Applies a committed operation of an entry of `epoch`. `parked`: per
    /// node, the highest mailbox sequence applied (a parked PUT applies once).
    public mutating func apply(_ op: LogEntry.Operation, epoch entryEpoch: UInt64 = 0,
                               parked: inout [Int: UInt64]) -> Applied {
        enterEpoch(entryEpoch)
        switch op {
        case .noop:
            return .done
        case .enqueue(let t):
            return put(t)
        case .enqueueParked(let t, let from, let seq):
            observeTaskId(t.id)
            guard seq > parked[from, default: 0] else { return .parkedAgain }
            parked[from] = seq
            return put(t)
        case .ack(let id):
            return remove(id).map { .changed($0) } ?? .missing
        case .lease(let id, let until, let deliveries):
            return changed(update(id) { $0.leasedUntilMs = until; $0.leaseEpoch = entryEpoch; $0.deliveries = deliveries })
        case .touch(let id, let until):
            return changed(update(id) { $0.leasedUntilMs = until; $0.leaseEpoch = entryEpoch })
        case .release(let id, let readyAt):
            return changed(update(id) { $0.leasedUntilMs = 0; $0.readyAtMs = readyAt })
        case .bury(let id, let deadLetter):
            return changed(update(id) { t in
                guard t.origin == nil else { return }
                t.origin = t.queue
                t.queue = deadLetter
                t.leasedUntilMs = 0
                t.readyAtMs = 0
            })
        case .kick(let ids):
            var moved = 0
            for id in ids where tasks[id]?.extras?.origin != nil {
                _ = update(id) { t in
                    t.queue = t.origin ?? t.queue
                    t.origin = nil
                    t.deliveries = 0
                    t.leasedUntilMs = 0
                    t.readyAtMs = 0
                }
                moved += 1
            }
            return .moved(moved)
        case .pause(let queue, let until):
            pauses[queue] = until == 0 ? nil : until
            return .done
        }
    }

    private func changed(_ t: QueuedTask?) -> Applied { t.map { .changed($0) } ?? .missing }

    private mutating func put(_ t: QueuedTask) -> Applied {
        if let k = t.key {
            dropKeys(endedBy: t.enqueuedAtMs)
            let dk = DedupKey(queue: t.queue, key: k)
            let record = KeyRecord(taskId: t.id, lamport: t.lamport, untilMs: t.keyUntilMs)
            // One probe for the usual case, a new key: insert, then look at
            // what was there. Every key left after `dropKeys` is live, so
            // anything there makes this a repeat: the first record goes back.
            if let first = keys.updateValue(record, forKey: dk) {
                keys[dk] = first
                observeTaskId(t.id)
                return .duplicate(taskId: first.taskId, lamport: first.lamport)
            }
            keyExpiry.insert(KeyDeadline(untilMs: record.untilMs, key: dk))
        }
        guard insert(t) else { return .parkedAgain }
        return .stored(t)
    }
}
