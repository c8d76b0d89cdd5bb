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
                park(payload, target: h.target, wallMs: h.wallMs)
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
        case .enqueue(let payload): enqueue(payload, target: target, wallMs: wallMs)
        case .dequeue(let waitMs): dequeue(target: target, owner: owner, waitMs: waitMs ?? 0, now: now)
        case .ack(let id): ack(id, target: target)
        case .nack(let id): nack(id, target: target, now: now)
        default: break
        }
    }

    func enqueue(_ payload: [UInt8], target: ReplyTarget, wallMs: Int64) {
        guard payload.count <= settings.maxPayloadBytes else {
            reply(target, .error(.toolarge, "payload is \(payload.count) bytes, max_payload_bytes is \(settings.maxPayloadBytes)"))
            return
        }
        let limit = settings.maxMemoryMB * 1_048_576
        guard queue.payloadBytes + pendingPayloadBytes + payload.count <= limit else {
            reply(target, .error(.busy, "queued payload is at max_memory_mb (\(settings.maxMemoryMB))"))
            return
        }
        let l = clock.tick()
        // Task timestamps use the cluster's corrected clock (Cristian).
        let at = wallMs + Int64(role == .leader ? 0 : cristian.offsetMs)
        let task = QueuedTask(id: nextTaskId, lamport: l, enqueuedAtMs: at, payload: payload)
        nextTaskId += 1
        pendingPayloadBytes += payload.count
        proposals.append(Proposal(op: .enqueue(task), lamport: l, client: target))
    }

    func ack(_ id: UInt64, target: ReplyTarget) {
        guard queue.markAcking(id) else {
            reply(target, .error(.notfound, "no task \(id) (never enqueued, or already acked)"))
            return
        }
        proposals.append(Proposal(op: .ack(taskId: id), lamport: clock.tick(), client: target))
    }

    func nack(_ id: UInt64, target: ReplyTarget, now: Int64) {
        guard queue.release(id) else {
            reply(target, .error(.notfound, "task \(id) is not leased"))
            return
        }
        reply(target, .ok(taskId: id, lamport: clock.tick()))
        serveWaiters(now: now)
    }

    func dequeue(target: ReplyTarget, owner: String, waitMs: Int, now: Int64) {
        if let t = queue.leaseNext(owner: owner, deadline: now + Int64(settings.ackTimeoutMs)) {
            reply(target, .task(taskId: t.id, lamport: clock.tick(), payload: t.payload))
        } else if waitMs > 0 {
            waiters.add(.init(target: target, owner: owner, deadline: now + Int64(waitMs)))
        } else {
            reply(target, .empty)
        }
    }

    func serveWaiters(now: Int64) {
        guard queue.readyCount > 0 else { return }
        checkLease(now: now)
        guard role == .leader else { return }
        while queue.readyCount > 0, let w = waiters.popFirst() {
            guard let t = queue.leaseNext(owner: w.owner, deadline: now + Int64(settings.ackTimeoutMs)) else {
                waiters.add(w)
                return
            }
            reply(w.target, .task(taskId: t.id, lamport: clock.tick(), payload: t.payload))
        }
    }
}
