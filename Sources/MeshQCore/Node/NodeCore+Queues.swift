// NodeCore's cluster clock and the outcome of queue entries. Cluster time
// is the leader's wall clock: a follower reads it as its own wall clock plus
// its Cristian offset to the leader, and a leader keeps the offset it last
// measured to the leader before it, so delays and leases go on from the
// same clock across a failover instead of from a new leader's unsynced one.
// Every node moves its TaskStore on by cluster time (delays come due,
// leases run out); only the leader acts on it (a task past its delivery
// cap is dead-lettered).
// Invariant: cluster time handed to the store never goes back, and each
// committed entry that changes a task clears exactly the busy mark its
// proposal set.

extension NodeCore {
    /// Cluster time at this node's wall clock reading `wallMs`.
    func clusterTime(wallMs: Int64) -> Int64 {
        wallMs + (leader?.clockOffsetMs ?? Int64(cristian.offsetMs.rounded()))
    }

    /// An input brought the wall clock: cluster time moves on (never back),
    /// and the store with it.
    func observeClock(now: Int64, wallMs: Int64) {
        let t = clusterTime(wallMs: wallMs)
        lastClusterAt = now
        guard t > lastClusterMs else { return }
        lastClusterMs = t
        for id in store.advance(to: t) {
            emit(.info, "task_requeued", [("node", "\(nodeId)"), ("task", "\(id)"),
                                         ("reason", "lease_expired"), ("lamport", "\(clock.time)")])
            guard role == .leader, serving, let task = store.task(id), task.origin == nil else { continue }
            let qs = settings.queue(task.queue)
            if qs.maxDeliveries > 0, task.deliveries >= UInt32(clamping: qs.maxDeliveries), !store.isBusy(id), !planted(.deliveryCapIgnored) {
                deadLetter(task, to: qs.deadLetter)
            }
        }
    }

    /// Applies one committed entry and answers its client, if it has one here.
    func applyCommitted(_ e: LogEntry, client: (target: ReplyTarget, answer: Proposal.Answer)?) {
        let applied: TaskStore.Applied
        switch e.op {
        case .ack(let id) where planted(.ackNotApplied):
            applied = store.task(id).map { .changed($0) } ?? .missing
        case .enqueueParked(let t, _, _) where planted(.parkedAppliedTwice):
            applied = store.apply(.enqueue(t), epoch: e.epoch, parked: &parkedApplied)
        case .touch(let id, _) where planted(.touchNotApplied):
            applied = store.task(id).map { .changed($0) } ?? .missing
        case _ where planted(.dedupSkippedAtApply) && e.op.isPut:
            store.forgetKey(of: e.op)
            applied = store.apply(e.op, epoch: e.epoch, parked: &parkedApplied)
        default:
            applied = store.apply(e.op, epoch: e.epoch, parked: &parkedApplied)
        }
        switch e.op {
        case .enqueue(let t), .enqueueParked(let t, _, _):
            nextTaskId = max(nextTaskId, t.id + 1)
            if client != nil, case .enqueue = e.op { leader?.pendingPayloadBytes -= t.payload.count }
        case .kick(let ids):
            if leader != nil { for id in ids { store.clearBusy(id) } }
        default:
            if let id = e.op.taskId, let leader {
                store.clearBusy(id)
                if case .ack = e.op { leader.acking.remove(id) }
                if case .lease = e.op { leader.leasing.remove(id) }
            }
        }
        countApplied(e.op, applied)
        guard let (target, answer) = client else { return }
        if answer == .task || answer == .job, case .changed = applied, role == .leader,
           let election, !election.quorumFresh(now: lastNow) {
            // A leader thawed from a pause commits what its followers had
            // acknowledged, but hands out nothing from state that may be stale:
            // the lease stands and runs out, and the task is delivered again.
            reply(target, .error(.noleader, "this node lost its majority before handing out the lease; the task is delivered again when the lease ends"))
            return
        }
        reply(target, Self.reply(to: e, applied, answer))
    }

    static func reply(to e: LogEntry, _ applied: TaskStore.Applied, _ answer: Proposal.Answer) -> Reply {
        // A parked delivery is confirmed by its mailbox sequence, whatever it
        // made (a task, nothing for a repeat, nothing for a key put before).
        if case .enqueueParked(_, _, let seq) = e.op { return .ok(taskId: seq, lamport: e.lamport) }
        switch (answer, applied) {
        case (_, .duplicate(let id, let l)):
            return .duplicate(taskId: id, lamport: l)
        case (.ok, .stored(let t)):
            return .ok(taskId: t.id, lamport: e.lamport)
        case (.ok, .changed(let t)):
            return .ok(taskId: t.id, lamport: e.lamport)
        case (.task, .changed(let t)):
            return .task(taskId: t.id, lamport: e.lamport, payload: t.payload)
        case (.job, .changed(let t)):
            return .job(taskId: t.id, lamport: e.lamport, queue: t.queue, deliveries: t.deliveries, payload: t.payload)
        case (.task, _), (.job, _):
            return .empty
        case (.moved, .moved(let n)):
            return .moved(n)
        case (.plain, _):
            return .plainOK
        default:
            return .error(.notfound, "no such task (acked meanwhile)")
        }
    }

    /// A proposal that will not commit: its task is free again and its client learns why.
    func unwind(_ op: LogEntry.Operation, leader: LeaderState) {
        switch op {
        case .enqueue(let t): leader.pendingPayloadBytes -= t.payload.count
        case .kick(let ids): for id in ids { store.clearBusy(id) }
        default:
            if let id = op.taskId {
                store.clearBusy(id)
                if case .ack = op { leader.acking.remove(id) }
                if case .lease = op { leader.leasing.remove(id) }
            }
        }
    }

    /// Per-queue counters of what this node applied (for /metrics).
    func countApplied(_ op: LogEntry.Operation, _ applied: TaskStore.Applied) {
        switch (op, applied) {
        case (.enqueue, .stored(let t)), (.enqueueParked, .stored(let t)): queueCounters[t.queue, default: .init()].put += 1
        case (.lease, .changed(let t)): queueCounters[t.queue, default: .init()].taken += 1
        case (.ack, .changed(let t)): queueCounters[t.queue, default: .init()].acked += 1
        case (.bury, .changed(let t)): queueCounters[t.origin ?? t.queue, default: .init()].buried += 1
        default: break
        }
    }

    /// Every known queue's counts and counters, by name (for /metrics).
    public func queueReport() -> [QueueReport] {
        queueNames().map { q in
            let line = store.line(q)
            return QueueReport(name: q, ready: line?.readyCount ?? 0, delayed: line?.delayed ?? 0,
                               inflight: (line?.leased ?? 0) + (line?.busy ?? 0),
                               dead: store.line(settings.queue(q).deadLetter)?.total ?? 0,
                               paused: store.isPaused(q),
                               oldestReadyMs: store.oldestReadyAtMs(in: q).map { max(0, lastClusterMs - $0) } ?? 0,
                               counters: queueCounters[q] ?? QueueCounters())
        }
    }

    func queueNames() -> [String] {
        store.knownQueues.union(store.pauses.keys).union(settings.queues.keys)
            .union(queueCounters.keys).sorted()
    }

    /// STATS: one queue's counts, or every known queue's.
    func stats(_ q: String?) -> Reply {
        if let q { return .stats(statsLine(q)) }
        return .statsList(queueNames().map(statsLine))
    }

    func statsLine(_ q: String) -> String {
        let line = store.line(q)
        let dead = store.line(settings.queue(q).deadLetter)?.total ?? 0
        let paused = max(0, (store.pauses[q] ?? 0) - lastClusterMs)
        let oldest = store.oldestReadyAtMs(in: q).map { max(0, lastClusterMs - $0) } ?? 0
        return "queue=\(q) ready=\(line?.readyCount ?? 0) delayed=\(line?.delayed ?? 0) "
            + "inflight=\((line?.leased ?? 0) + (line?.busy ?? 0)) dead=\(dead) paused_ms=\(paused) oldest_ready_ms=\(oldest)"
    }
}
