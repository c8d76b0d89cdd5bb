// NodeCore's client commands: served here when this node leads and serves,
// relayed to the leader when one is reachable (CommandRouter keeps the
// relays), else held in arrival order until one is (or NOLEADER / parked in
// the mailbox at the hold deadline). Queue service: ENQUEUE and ACK become
// proposals, answered when they commit; DEQUEUE leases at once or waits.
// Invariant: held commands are dispatched in order, and a relayed command is
// answered exactly once (by the leader's reply, or NOLEADER when it is lost).

extension NodeCore {
    /// Where a queue command goes: served here when this node leads, relayed
    /// when a leader is reachable, else held until one is (or NOLEADER).
    func submit(_ command: ClientCommand, target: ReplyTarget, owner: String, now: Int64, wallMs: Int64) {
        if commands.held.isEmpty, dispatch(command, target: target, owner: owner, now: now, wallMs: wallMs) { return }
        commands.hold(.init(command: command, target: target, owner: owner, wallMs: wallMs,
                          deadline: now + Int64(max(settings.commitTimeoutMs, settings.leaderTimeoutMs))))
    }

    func dispatch(_ command: ClientCommand, target: ReplyTarget, owner: String, now: Int64, wallMs: Int64) -> Bool {
        if role == .leader {
            guard serving else { return false }
            serve(command, target: target, owner: owner, now: now, wallMs: wallMs)
            return true
        }
        if target.isForwarded {
            // Relayed to a node that no longer leads: the relaying follower
            // answers its client (it never loops the command onwards).
            reply(target, .error(.noleader, "node \(nodeId) is not the leader"))
            return true
        }
        guard role == .follower, let leader = leaderId, detector.alive.contains(leader) else { return false }
        var patience = Int64(settings.commitTimeoutMs + settings.leaderTimeoutMs)
        if case .dequeue(let wait?) = command { patience += Int64(wait) }
        if case .take(_, let wait?) = command { patience += Int64(wait) }
        let id = commands.forward(target, to: leader, deadline: now + patience)
        emit(.debug, "route_forward", [("node", "\(nodeId)"), ("to", "\(leader)"), ("id", "\(id)")])
        sendPeer(to: leader, .forward(id: id, owner: owner, command: command))
        return true
    }

    /// Dispatches held commands in order. Not reentrant: a step-down while
    /// dispatching calls back here, and the loop below already goes on.
    func dispatchHeld(now: Int64) {
        guard !dispatchingHeld else { return }
        dispatchingHeld = true
        defer { dispatchingHeld = false }
        checkLease(now: now)
        deliverMailbox(now: now)
        while let h = commands.held.first {
            guard dispatch(h.command, target: h.target, owner: h.owner, now: now, wallMs: h.wallMs) else { return }
            commands.removeFirstHeld()
        }
    }

    func expireForwards(now: Int64) {
        for f in commands.expireForwards(now: now) {
            reply(f.target, .error(.noleader, "no answer from leader \(f.leader) in time; the command may have been applied"))
        }
    }

    func expireHeld(now: Int64) {
        for h in commands.expireHeld(now: now) {
            if case .enqueue(let payload) = h.command, !h.target.isForwarded, payload.count <= settings.maxPayloadBytes {
                park(payload, queue: QueuedTask.defaultQueue, options: PutOptions(), target: h.target, wallMs: h.wallMs)
            } else if case .put(let q, let o, let payload) = h.command, !h.target.isForwarded,
                      payload.count <= settings.maxPayloadBytes {
                park(payload, queue: q, options: o, target: h.target, wallMs: h.wallMs)
            } else {
                reply(h.target, .error(.noleader, "no leader is reachable"))
            }
        }
    }

    /// Relayed commands whose leader went away: their outcome is unknown here.
    func failForwards(where lost: (Int) -> Bool) {
        for f in commands.failForwards(where: lost) {
            reply(f.target, .error(.noleader, "the leader was lost while the command was in flight; it may have been applied"))
        }
    }

    func serve(_ command: ClientCommand, target: ReplyTarget, owner: String, now: Int64, wallMs: Int64) {
        switch command {
        case .enqueue(let payload):
            put(QueuedTask.defaultQueue, PutOptions(), payload, target: target, wallMs: wallMs)
        case .put(let q, let options, let payload):
            put(q, options, payload, target: target, wallMs: wallMs)
        case .dequeue(let waitMs):
            take([QueuedTask.defaultQueue], job: false, target: target, owner: owner, waitMs: waitMs ?? 0, now: now)
        case .take(let queues, let waitMs):
            take(queues, job: true, target: target, owner: owner, waitMs: waitMs ?? 0, now: now)
        case .ack(let id): ack(id, target: target)
        case .nack(let id, let delay): nack(id, delayMs: delay ?? 0, target: target)
        case .touch(let id, let ms): touch(id, ms: ms, target: target)
        case .bury(let id): bury(id, target: target)
        case .kick(let q, let count): kick(q, count: count, target: target)
        case .pause(let q, let ms): pause(q, ms: ms, target: target)
        case .stats(let q): reply(target, stats(q))
        case .peek(let q): peek(q, target: target)
        default: break
        }
    }

    /// PUT (and ENQUEUE on `default`): a task with its options, stamped
    /// with cluster time; a key put before in this queue within its window
    /// answers the first task's OK at once.
    func put(_ q: String, _ o: PutOptions, _ payload: [UInt8], target: ReplyTarget, wallMs: Int64) {
        guard payload.count <= settings.maxPayloadBytes else {
            reply(target, .error(.toolarge, "payload is \(payload.count) bytes, max_payload_bytes is \(settings.maxPayloadBytes)"))
            return
        }
        let at = clusterTime(wallMs: wallMs)
        if let k = o.key, let first = store.firstPut(queue: q, key: k, atMs: at) {
            reply(target, .duplicate(taskId: first.taskId, lamport: first.lamport))
            return
        }
        let limit = settings.maxMemoryMB * 1_048_576
        guard store.payloadBytes + leadership.pendingPayloadBytes + payload.count <= limit else {
            reply(target, .error(.busy, "queued payload is at max_memory_mb (\(settings.maxMemoryMB))"))
            return
        }
        let l = clock.tick()
        var task = QueuedTask(id: nextTaskId, lamport: l, enqueuedAtMs: at, payload: payload, queue: q,
                              priority: o.priority, readyAtMs: o.delayMs > 0 ? at + Int64(planted(.delayFiresEarly) ? o.delayMs / 2 : o.delayMs) : 0)
        if let k = o.key {
            task.key = k
            task.keyUntilMs = at + Int64(settings.queue(q).dedupWindowMs)
        }
        nextTaskId += 1
        leadership.pendingPayloadBytes += payload.count
        propose(Proposal(op: .enqueue(task), lamport: l, client: target))
    }

    func ack(_ id: UInt64, target: ReplyTarget) {
        guard store.task(id) != nil, !leadership.acking.contains(id) else {
            reply(target, .error(.notfound, "no task \(id) (never enqueued, or already acked)"))
            return
        }
        leadership.acking.insert(id)
        propose(.ack(taskId: id), for: id, target: target)
    }

    /// A lease this leader can see in force (by cluster time).
    func leased(_ id: UInt64) -> QueuedTask? {
        guard let t = store.task(id), !leadership.acking.contains(id),
              store.leaseInForce(t) || leadership.leasing.contains(id) else { return nil }
        return t
    }

    func nack(_ id: UInt64, delayMs: Int, target: ReplyTarget) {
        guard leased(id) != nil else {
            reply(target, .error(.notfound, "task \(id) is not leased"))
            return
        }
        propose(.release(taskId: id, readyAt: delayMs > 0 ? lastClusterMs + Int64(delayMs) : 0), for: id, target: target)
    }

    func touch(_ id: UInt64, ms: Int?, target: ReplyTarget) {
        guard let t = leased(id) else {
            reply(target, .error(.notfound, "task \(id) is not leased (its lease ended, or it was acked)"))
            return
        }
        let length = ms ?? settings.queue(t.queue).ackTimeoutMs
        propose(.touch(taskId: id, until: lastClusterMs + Int64(length)), for: id, target: target)
    }

    func bury(_ id: UInt64, target: ReplyTarget) {
        guard let t = leased(id) else {
            reply(target, .error(.notfound, "task \(id) is not leased"))
            return
        }
        guard t.origin == nil else {
            reply(target, .error(.badarg, "task \(id) is in the dead-letter queue \(t.queue) already"))
            return
        }
        propose(.bury(taskId: id, deadLetter: settings.queue(t.queue).deadLetter), for: id, target: target)
    }

    func kick(_ q: String, count: Int?, target: ReplyTarget) {
        let ids = store.readyTasks(in: q, limit: count ?? Int.max).filter { $0.origin != nil }.map(\.id)
        guard !ids.isEmpty else {
            reply(target, .moved(0))
            return
        }
        for id in ids { store.markBusy(id) }
        propose(Proposal(op: .kick(taskIds: ids), lamport: clock.tick(), client: target, answer: .moved))
    }

    func pause(_ q: String, ms: Int, target: ReplyTarget) {
        propose(Proposal(op: .pause(queue: q, until: ms > 0 ? lastClusterMs + Int64(ms) : 0),
                                  lamport: clock.tick(), client: target, answer: .plain))
    }

    func peek(_ q: String, target: ReplyTarget) {
        guard let t = store.head(of: q) else {
            reply(target, .empty)
            return
        }
        reply(target, .task(taskId: t.id, lamport: clock.tick(), payload: t.payload))
    }

    /// The leadership serving a queue command (they reach here only while serving).
    var leadership: LeaderState {
        guard let leader else { preconditionFailure("a queue command served while not leading") }
        return leader
    }

    /// A change to one task: it is handed to nobody until the change commits.
    func propose(_ op: LogEntry.Operation, for id: UInt64, target: ReplyTarget?, answer: Proposal.Answer = .ok) {
        store.markBusy(id)
        propose(Proposal(op: op, lamport: clock.tick(), client: target, answer: answer))
    }

    /// TAKE (DEQUEUE: `default`, answered TASK): leases the next ready task
    /// of the first listed queue that has one, or waits for one.
    func take(_ queues: [String], job: Bool, target: ReplyTarget, owner: String, waitMs: Int, now: Int64) {
        if leaseNext(queues, job: job, target: target) { return }
        if waitMs > 0 {
            waiters.add(.init(target: target, owner: owner, deadline: now + Int64(waitMs), job: job), queues: queues)
        } else {
            reply(target, .empty)
        }
    }

    /// Proposes a lease of the next ready task of `queues` for `target`;
    /// a task leased max_deliveries times goes to its dead-letter queue
    /// instead. False when no task is ready.
    func leaseNext(_ queues: [String], job: Bool, target: ReplyTarget) -> Bool {
        while let t = planted(.readyIgnoresPriority) ? store.nextReadyIgnoringPriority(in: queues) : store.nextReady(in: queues) {
            let qs = settings.queue(t.queue)
            if qs.maxDeliveries > 0, t.deliveries >= UInt32(clamping: qs.maxDeliveries), t.origin == nil, !planted(.deliveryCapIgnored) {
                deadLetter(t, to: qs.deadLetter)
                continue
            }
            leadership.leasing.insert(t.id)
            propose(.lease(taskId: t.id, until: lastClusterMs + Int64(qs.ackTimeoutMs), deliveries: t.deliveries &+ 1),
                    for: t.id, target: target, answer: job ? .job : .task)
            return true
        }
        return false
    }

    /// A task past its queue's delivery cap moves to its dead-letter queue.
    func deadLetter(_ t: QueuedTask, to deadLetter: String) {
        queueCounters[t.queue, default: .init()].deadLettered += 1
        emit(.warn, "task_dead_lettered", [("node", "\(nodeId)"), ("task", "\(t.id)"), ("queue", t.queue),
                                          ("dead_letter", deadLetter), ("deliveries", "\(t.deliveries)")])
        propose(.bury(taskId: t.id, deadLetter: deadLetter), for: t.id, target: nil)
    }

    func serveWaiters(now: Int64) {
        guard store.readyCount > 0, waiters.count > 0 else { return }
        checkLease(now: now)
        guard role == .leader, serving else { return }
        for queues in waiters.queueLists {
            while store.nextReady(in: queues) != nil, let w = waiters.popFirst(queues: queues) {
                guard leaseNext(queues, job: w.job, target: w.target) else {
                    waiters.putBack(w, queues: queues)
                    break
                }
            }
        }
    }
}
