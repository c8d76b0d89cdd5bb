// NodeCore's leadership: applying the election's outputs, taking and
// giving up the leadership, and recovery. A new leader adopts the log of the
// voter with the highest (last epoch, last index) among those that elected
// it (it holds every committed entry), then commits a first entry of its
// own epoch, and serves once that entry committed and no older leader's
// lease can still be in force. Invariant: a leader answers nothing from its
// state before `phase` is `.serving`, and a leadership that ends answers
// everything it had in flight (nothing is kept for the next one).

extension NodeCore {
    /// A leader answers nothing from its state unless a majority heard it
    /// within leader_timeout_ms (else it steps down here): run before any
    /// command is served, so a process waking from a pause cannot hand out
    /// a stale TASK first.
    func checkLease(now: Int64) {
        guard role == .leader, let lost = election?.checkQuorum(now: now) else { return }
        if !lost.isEmpty { applyElection(lost, now: now) }
    }

    func applyElection(_ outputs: [BullyElection.Output], now: Int64) {
        guard election != nil, halted == nil else { return }
        var won: (epoch: UInt64, votes: [Int: LogPosition], leaseWaitMs: Int64)?
        // Having voted for another node in epoch e, no older leader may add to
        // our log: the vote carries our log position, and that node's recovery
        // relies on it. The promise is made (and persisted with the vote)
        // before the vote leaves. Our own candidacy fences nothing: we know
        // our own log.
        for case .send(_, .vote(let e, _, _, _)) in outputs { fence.promise(epoch: e) }
        for o in outputs {
            switch o {
            case .send(let to, let m):
                sendPeer(to: to, .election(m))
            case .persistVote(let e):
                durablePromise = max(durablePromise, fence.promised)
                effects.append(.persistVote(e, promised: fence.promised))
            case .becameLeader(let e, let votes, let wait):
                won = (e, votes, wait)
            case .following(_, let e):
                fence.promise(epoch: e)
                persistPromiseIfRaised()
            case .leaderLost:
                break
            case .log(var event):
                if event.field("lamport") == nil { event.fields.append(("lamport", "\(clock.time)")) }
                effects.append(.log(event))
            }
        }
        let wasLeader = leader
        let oldLeader = leaderId
        // The election's state after the outputs (read now, not before the loop).
        guard let election else { return }
        leaderId = election.leaderId
        epoch = max(epoch, election.epoch)
        switch election.role {
        case .follower:
            roleState = .follower
        case .candidate:
            roleState = .candidate
        case .leader:
            // The same leadership goes on; a new one is set up by `becomeLeader` below.
            if won == nil, let wasLeader { roleState = .leader(wasLeader) } else { roleState = .follower }
        }
        if let wasLeader, election.role != .leader || won != nil { stoppedLeading(wasLeader, now: now) }
        if oldLeader != leaderId { failForwards { $0 == oldLeader } }
        if let won {
            elections += 1
            becomeLeader(epoch: won.epoch, votes: won.votes, now: now, tookMs: nil,
                         servingNotBefore: now + (planted(.leaseNeverExpires) ? 0 : won.leaseWaitMs))
        }
        dispatchHeld(now: now)
    }

    /// A leader that cannot commit steps down and calls a new election, so
    /// whoever leads next starts from a fresh epoch and a fresh majority.
    func resign(now: Int64, reason: String) {
        guard let outputs = election?.resign(now: now, reason: reason) else { return }
        applyElection(outputs, now: now)
    }

    // MARK: leading

    func becomeLeader(epoch newEpoch: UInt64, votes: [Int: LogPosition], now: Int64, tookMs: Int64?,
                      servingNotBefore: Int64 = 0) {
        epoch = newEpoch
        // Cluster time goes on from the previous leader's clock.
        let leader = LeaderState(rounds: LeaderRounds(nodeId: nodeId, members: memberIds),
                                 servingNotBefore: servingNotBefore, clockOffsetMs: Int64(cristian.offsetMs.rounded()))
        leader.rounds.debugEvents = debugEvents
        #if MESHQ_TESTING
        leader.rounds.plant(plantedBugs)
        #endif
        roleState = .leader(leader)
        store.clearAllBusy()
        fence.promise(epoch: newEpoch)
        if let tookMs {
            elections += 1
            emit(.info, "leader_elected", [("node", "\(nodeId)"), ("epoch", "\(epoch)"),
                                          ("lamport", "\(clock.time)"), ("took_ms", "\(tookMs)")])
        }
        // Recovery: the voter with the best log holds every committed entry.
        var best = votes.filter { $0.key != nodeId }.max { ($0.value, -$0.key) < ($1.value, -$1.key) }
        if planted(.recoveryByIndexOnly) {
            best = votes.filter { $0.key != nodeId }.max { ($0.value.index, -$0.key) < ($1.value.index, -$1.key) }
            if let b = best, b.value.index <= log.lastIndex { best = nil }
        }
        if let best, best.value > log.position || planted(.recoveryByIndexOnly),
           !planted(.skipRecovery) {
            leader.recoveryRequests += 1
            leader.phase = .recovering(Recovery(from: best.key, deadline: now + Int64(settings.commitTimeoutMs),
                                                nextAsk: now + retransmitMs, request: leader.recoveryRequests,
                                                position: best.value))
            emit(.info, "leader_recovery", [("node", "\(nodeId)"), ("epoch", "\(epoch)"), ("from", "\(best.key)"),
                                           ("their_last", "\(best.value.index)"), ("our_last", "\(log.lastIndex)")])
            sendPeer(to: best.key, .recoverRequest(id: leader.recoveryRequests, after: commitIndex))
        } else {
            recovered(now: now)
        }
    }

    func recovered(now: Int64) {
        guard let leader else { return }
        nextTaskId = max(nextTaskId, store.highestTaskId + 1, LogReplay.highestTaskId(in: log) + 1)
        leader.replication.start(followers: peers, next: log.lastIndex + 1)
        // The first entry of the epoch commits everything adopted before it.
        let l = clock.tick()
        leader.rounds.proposeFirst(Proposal(op: .noop, lamport: l, client: nil))
        leader.phase = .committingFirst(readyIndex: log.lastIndex + 1)
        startRound(now: now)
    }

    /// A recovery past its deadline gives the leadership up; an unanswered
    /// request (or a stalled chunked reply) is asked again.
    func tickRecovery(now: Int64) {
        guard let leader, var r = leader.recovering else { return }
        if now >= r.deadline {
            resign(now: now, reason: "recovery_timeout")
        } else if now >= r.nextAsk {
            r.nextAsk = now + retransmitMs
            if let k = transfers.recoveryIn.key, k.from == r.from, k.transfer == r.request, k.epoch == epoch,
               !transfers.recoveryIn.bytes.isEmpty {
                // A chunked reply stalled (a chunk lost): ask the voter to go
                // on from what we hold, not for a new reply from byte 0 (which
                // one more lost chunk would restart again, forever).
                leader.phase = .recovering(r)
                sendPeer(to: r.from, .chunkAck(kind: .recovery, epoch: epoch, transfer: r.request,
                                               received: UInt64(transfers.recoveryIn.bytes.count)))
            } else {
                leader.recoveryRequests += 1
                r.request = leader.recoveryRequests
                leader.phase = .recovering(r)
                sendPeer(to: r.from, .recoverRequest(id: leader.recoveryRequests, after: commitIndex))
            }
        }
    }

    /// A new leader of `epoch` asks for our log after `after`; the answer
    /// echoes the epoch and request id (a large one goes in chunks).
    func answerRecovery(to: Int, epoch e: UInt64, id: UInt64, after: UInt64) {
        // A node catching up never voted, so no recovery relies on its log.
        guard rejoin == nil else { return }
        sendRecoveryReply(to: to, epoch: e, id: id, after: after) {
            let from = max(after, commitIndex) + 1
            if after >= log.baseIndex {
                let all = log.entries(from: after + 1, through: log.lastIndex, maxBytes: 32 << 20)
                if all.last?.index ?? after == log.lastIndex { return (nil, all) }
            }
            return (committedSnapshot(), log.entries(from: from, through: log.lastIndex))
        }
    }

    func receiveRecovery(from: Int, epoch e: UInt64, id: UInt64, snapshot: QueueSnapshot?,
                                 entries: [LogEntry], now: Int64) {
        // Only the answer to this leadership's latest request counts: a late
        // answer to an earlier one may describe a log that has moved on.
        guard role == .leader, let r = recovering, r.from == from, e == epoch, id == r.request else { return }
        // The voter's log reached `r.position` when it voted for us, and it
        // has promised this epoch since, so its answer must reach that far.
        let replyLast = entries.last.map { LogPosition(epoch: $0.epoch, index: $0.index) }
            ?? snapshot.map { LogPosition(epoch: $0.lastEpoch, index: $0.lastIndex) }
        if !planted(.recoveryByIndexOnly) {
            guard let replyLast, replyLast >= r.position else {
                emit(.warn, "recovery_reply_refused", [("node", "\(nodeId)"), ("epoch", "\(epoch)"), ("from", "\(from)"),
                                                      ("voted_last", "\(r.position.index)"),
                                                      ("reply_last", "\(replyLast?.index ?? 0)")])
                return
            }
        }
        if let snapshot, snapshot.lastIndex > commitIndex { install(snapshot, encoded: nil) }
        var records: [LogRecord] = []
        guard merge(entries, into: &records) else {
            resign(now: now, reason: "recovery_conflict")
            return
        }
        // Adopt exactly the best voter's log: anything of ours past it never committed.
        let theirLast = entries.last?.index ?? max(snapshot?.lastIndex ?? 0, commitIndex)
        if log.lastIndex > theirLast, theirLast >= commitIndex {
            log.truncate(after: theirLast)
            records.append(.truncate(after: theirLast))
        }
        if !records.isEmpty { persist(records) }
        election?.logMoved(to: log.position)
        emit(.info, "leader_recovered", [("node", "\(nodeId)"), ("epoch", "\(epoch)"), ("last", "\(log.lastIndex)"),
                                        ("commit", "\(commitIndex)")])
        recovered(now: now)
    }

    /// The whole leadership ends: what was in flight is answered, nothing is
    /// kept (`roleState` no longer holds `leader`).
    func stoppedLeading(_ leader: LeaderState, now: Int64) {
        applyRounds(leader.rounds.stop(), now: now)
        store.clearAllBusy()
        for a in leader.awaiting {
            reply(a.target, .error(.noleader, "leadership was lost before this change committed; the next leader may still apply it"))
        }
        leader.awaiting.removeAll()
        failProposals(of: leader, .noleader, "this node stopped leading before the change was replicated; nothing was committed")
        for w in waiters.removeAll() { reply(w.target, .error(.noleader, "this node stopped leading")) }
        for h in commands.takeHeldForwarded() { reply(h.target, .error(.noleader, "node \(nodeId) stopped leading; not applied")) }
    }

    /// A new leader serves once its first entry committed (so it holds every
    /// committed entry) and no older leader's lease can still be in force.
    func startServingIfReady(now: Int64) {
        guard let leader, case .committingFirst(let readyIndex) = leader.phase, commitIndex >= readyIndex,
              now >= leader.servingNotBefore else { return }
        leader.phase = .serving
        dispatchHeld(now: now)
        deliverMailbox(now: now)
    }
}
