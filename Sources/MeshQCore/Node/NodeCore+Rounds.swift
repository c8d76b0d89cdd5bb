// NodeCore's replication rounds, leader side: a batch of proposals takes the
// Ricart-Agrawala section, becomes log entries (one persist), and runs one
// two-phase commit round; each follower is sent what it lacks, paced by its
// acknowledgements and tracked by its `LeaderReplication.Progress`. The
// leader keeps the section between rounds while nobody else asks for it and
// no peer came up since it asked, so a round usually starts without the
// request's round trip. Invariant: at most one round runs at a time; a
// requester deferred by the leader is answered as soon as no round runs; an
// aborted round cuts only this epoch's uncommitted entries and the leader
// resigns.

extension NodeCore {
    func failProposals(_ code: ErrorCode, _ text: String) {
        for p in proposals {
            unwind(p.op)
            if let c = p.client { reply(c, .error(code, text)) }
        }
        proposals.removeAll()
        pendingPayloadBytes = max(0, pendingPayloadBytes)
    }

    /// Starts a replication round with the waiting batch, unless one runs.
    func startRound(now: Int64) {
        guard role == .leader, recovering == nil, !twoPC.inRound, !proposals.isEmpty else { return }
        if mutex.state == .inside {
            // Still held from the last round: go on unless someone asked
            // meanwhile or a peer we did not ask is alive now.
            if !mutex.hasDeferred, livePeers.isSubset(of: mutex.asked) {
                beginRound(now: now)
                return
            }
            applyMutex(mutex.release(), now: now)
        }
        guard mutex.state == .idle else { return }
        mutexRetryAt = now + retransmitMs
        mutexGiveUpAt = now + Int64(settings.commitTimeoutMs)
        applyMutex(mutex.request(ts: clock.tick(), livePeers: livePeers), now: now)
    }

    func applyMutex(_ outputs: [RicartAgrawalaMutex.Output], now: Int64) {
        for o in outputs {
            switch o {
            case .send(let to, let m): sendPeer(to: to, .mutex(m))
            case .log(let e): effects.append(.log(e))
            case .granted: beginRound(now: now)
            }
        }
    }

    /// Inside the critical section: the batch becomes log entries, persisted
    /// here and sent to every live follower.
    func beginRound(now: Int64) {
        mutexRetryAt = nil
        guard role == .leader, recovering == nil, !proposals.isEmpty else {
            applyMutex(mutex.release(), now: now)
            return
        }
        let first = log.lastIndex + 1
        var records: [LogRecord] = []
        records.reserveCapacity(proposals.count + 1)
        if election != nil && commitIndex > lastCommitMark {
            records.append(.commit(commitIndex))
            lastCommitMark = commitIndex
        }
        for p in proposals {
            let e = LogEntry(index: log.lastIndex + 1, epoch: epoch, lamport: p.lamport, op: p.op)
            log.append(e)
            records.append(.entry(e))
            if let c = p.client { awaiting.append((e.index, c, p.answer)) }
        }
        proposals.removeAll(keepingCapacity: true)
        election?.logMoved(to: log.position)
        let round = replication.nextRound()
        // The followers' copies leave before our own fsync, so the two overlap.
        applyTwoPC(twoPC.begin(round: round, epoch: epoch, first: first, last: log.lastIndex,
                               participants: livePeers, now: now, timeoutMs: settings.commitTimeoutMs), now: now)
        persist(records)
    }

    func applyTwoPC(_ outputs: [TwoPhaseCommit.Output], now: Int64) {
        for o in outputs {
            switch o {
            case .send(let to, .prepare):
                sendReplication(to: to, now: now)
            case .send(let to, .commit(_, let round, let last)):
                sendPeer(to: to, .commit(round: round, through: last))
            case .send(let to, .abort(_, let round)):
                sendPeer(to: to, .abort(round: round, keep: commitIndex))
            case .log(let e):
                effects.append(.log(e))
            case .committed(_, let through):
                commit(through: through, now: now)
                // The leader keeps the section for the next batch unless
                // someone asked for it meanwhile (a deferred requester waits
                // at most until this round ends) or it no longer leads.
                // `commit` may have started the next round already (a
                // mailbox delivery): then nothing is released here.
                if mutex.state == .inside, !twoPC.inRound, role != .leader || mutex.hasDeferred {
                    applyMutex(mutex.release(), now: now)
                }
                startRound(now: now)
            case .aborted(_, let reason):
                abortRound(reason: reason, now: now)
            }
        }
    }

    /// No majority in time: the clients learn the outcome is unknown (a
    /// follower may hold the entry, and a later leader may commit it), our own
    /// uncommitted entries of this epoch are cut (so we never commit them
    /// later), and we resign. Entries adopted from older epochs stay: they
    /// may have committed under an earlier leader.
    func abortRound(reason: String, now: Int64) {
        var cut: UInt64?
        var i = commitIndex + 1
        while i <= log.lastIndex {
            if log.entry(at: i)?.epoch == epoch { cut = i - 1; break }
            i += 1
        }
        if let cut {
            for a in awaiting where a.index > cut {
                if let op = log.entry(at: a.index)?.op { unwind(op) }
                reply(a.target, .error(.noquorum, reason == "timeout"
                    ? "no majority acknowledged within commit_timeout_ms (\(settings.commitTimeoutMs) ms); the outcome is unknown: a later leader may still apply it"
                    : "a majority cannot be reached (too few peers up or willing); the outcome is unknown: a later leader may still apply it"))
            }
            awaiting.removeAll { $0.index > cut }
            log.truncate(after: cut)
            persist([.truncate(after: cut)])
            election?.logMoved(to: log.position)
        }
        applyMutex(mutex.release(), now: now)
        failProposals(.noquorum, "no majority acknowledged within commit_timeout_ms; this change was not replicated")
        resign(now: now, reason: "no_quorum_\(reason)")
    }

    /// Sends a follower what it lacks: one message at a time until it is
    /// known to match, then a few batches in flight (the next goes as it
    /// acknowledges); past the in-memory window, a snapshot (a large one as
    /// a chunked transfer: NodeCore+Transfers).
    func sendReplication(to id: Int, now: Int64) {
        guard role == .leader, detector.alive.contains(id) else { return }
        if sendTransferChunks(to: id) { return }
        // More than one only while streaming entries to a follower known to match.
        while let message = replication.nextMessage(to: id, log: log, commitIndex: commitIndex, now: now) {
            switch message {
            case .snapshot:
                sendSnapshot(to: id)
                return
            case .entries(let prev, let prevEpoch, let entries):
                sendPeer(to: id, .replicate(.init(round: replication.round, prevIndex: prev, prevEpoch: prevEpoch,
                                                  commit: commitIndex, entries: entries)))
            }
        }
    }

    func receiveAck(from: Int, epoch e: UInt64, round: UInt64, matched: Bool, index: UInt64, now: Int64) {
        guard role == .leader, replication.progress[from] != nil else { return }
        guard e == epoch else {
            guard e > epoch else { return }
            // It promised a newer epoch to another candidate: it will refuse
            // us for as long as we lead in this one.
            replication.refused(by: from)
            applyTwoPC(twoPC.refused(from: from, epoch: epoch), now: now)
            if role == .leader { resign(now: now, reason: "newer_epoch") }
            return
        }
        if let resend = replication.acknowledged(by: from, matched: matched, index: index, lastIndex: log.lastIndex) {
            emit(.debug, "sync", [("node", "\(nodeId)"), ("peer", "\(from)"), ("mode", "entries"),
                                  ("from", "\(resend)"), ("last", "\(log.lastIndex)")])
        }
        if matched { applyTwoPC(twoPC.acknowledged(from: from, epoch: epoch, through: index), now: now) }
        sendReplication(to: from, now: now)
    }
}
