// NodeCore's mailbox glue: an ENQUEUE or PUT held past its deadline is parked
// durably (QUEUED once it is), and the parked entries are handed to a leader
// in sequence order once one is reachable, again after leader_timeout_ms
// until a commit confirms them. Invariant: a parked entry applies at most once
// (the replicated `parkedApplied` skips duplicates) and leaves the mailbox
// only once a commit covers it.

extension NodeCore {
    /// No leader is reachable: the task is kept here durably, and the client
    /// hears QUEUED once it is.
    func park(_ payload: [UInt8], queue: String, options: PutOptions, target: ReplyTarget, wallMs: Int64) {
        let e = delivery.park(payload: payload, at: wallMs + Int64(cristian.offsetMs), queue: queue, options: options,
                              for: target)
        effects.append(.persistMailbox([.park(e)]))
    }

    /// Hands the parked entries to a leader once one is reachable, in
    /// sequence order; again after a while if no confirmation came.
    func deliverMailbox(now: Int64) {
        guard let batch = delivery.due(now: now) else { return }
        if role == .leader {
            guard serving else { return }
            receiveParked(batch, from: nodeId, now: now)
        } else {
            guard role == .follower, let leader = leaderId, detector.alive.contains(leader) else { return }
            sendPeer(to: leader, .deliverParked(batch))
        }
        // A delivery commits in a round trip or two; one lost with a link is
        // sent again (duplicates are skipped where they apply).
        delivery.sent(retryAt: now + Int64(settings.leaderTimeoutMs))
    }

    /// The leader takes a node's parked entries like PUTs, options and key
    /// kept (the delay and the key's window count from now, when the task
    /// is put here); duplicates of an earlier delivery are skipped when they
    /// apply, and a key put before makes no second task.
    func receiveParked(_ entries: [MailboxEntry], from: Int, now: Int64) {
        guard role == .leader, serving else { return }
        for e in entries {
            var t = QueuedTask(id: nextTaskId, lamport: clock.tick(), enqueuedAtMs: e.enqueuedAtMs, payload: e.payload,
                               queue: e.queue, priority: e.options.priority,
                               readyAtMs: e.options.delayMs > 0 ? lastClusterMs + Int64(e.options.delayMs) : 0)
            if let k = e.options.key {
                t.key = k
                t.keyUntilMs = max(lastClusterMs, e.enqueuedAtMs) + Int64(settings.queue(e.queue).dedupWindowMs)
            }
            nextTaskId += 1
            propose(Proposal(op: .enqueueParked(t, from: from, seq: e.seq), lamport: t.lamport,
                                      client: .parked(from: from, seq: e.seq)))
        }
        startRound(now: now)
    }

    /// A leader committed our parked entries up to `seq`.
    func parkedDelivered(through seq: UInt64, now: Int64) {
        let n = delivery.delivered(through: seq)
        guard n > 0 else { return }
        effects.append(.persistMailbox([.delivered(through: seq)]))
        emit(.info, "mailbox_deliver", [("node", "\(nodeId)"), ("through", "\(nodeId)-\(seq)"), ("entries", "\(n)"),
                                       ("mailbox", "\(mailbox.count)"), ("lamport", "\(clock.time)")])
        deliverMailbox(now: now)
    }
}
