// NodeCore's replication rounds, leader side: the glue between the
// `LeaderRounds` value (the section, the batch, the 2PC rounds in flight)
// and the node. NodeCore feeds it inputs with a `Context` read fresh from
// the node (whether rounds are open, the next log index, the live peers)
// and carries out its actions: a round's batch becomes log entries (one
// persist, after the followers' copies left), each follower is sent what it
// lacks, paced by its `LeaderReplication.Progress`, and committed rounds are
// applied and answered. Invariant: every input to `rounds` is followed by
// `applyRounds` of what it returned, in order; an aborted round cuts only
// this epoch's uncommitted entries, and the leader resigns.

extension NodeCore {
    /// The batch not yet in a round is answered with an error and undone.
    func failProposals(of leader: LeaderState, _ code: ErrorCode, _ text: String) {
        for p in leader.rounds.takeBatch() {
            unwind(p.op, leader: leader)
            if let c = p.client { reply(c, .error(code, text)) }
        }
    }

    /// A change for the next round; only a serving leader proposes.
    func propose(_ p: Proposal) {
        guard let leader else { preconditionFailure("a proposal while not leading") }
        leader.rounds.propose(p)
    }

    /// Whether rounds may begin: this node leads and is not recovering.
    var roundsOpen: Bool { role == .leader && recovering == nil }

    func roundContext(now: Int64) -> LeaderRounds.Context {
        LeaderRounds.Context(open: roundsOpen, epoch: epoch, nextIndex: log.lastIndex + 1, livePeers: livePeers,
                             now: now, retransmitMs: retransmitMs, commitTimeoutMs: settings.commitTimeoutMs)
    }

    /// Starts a replication round with the waiting batch, when one can start.
    func startRound(now: Int64) {
        guard let leader, leader.rounds.canStart(open: roundsOpen, livePeers: livePeers)
                || (leader.rounds.mutex.state == .inside && !leader.rounds.inRound) else { return }
        applyRounds(leader.rounds.advance(roundContext(now: now), clock: &clock), now: now)
    }

    func applyRounds(_ actions: [LeaderRounds.Action], now: Int64) {
        for a in actions {
            switch a {
            case .mutex(let to, let m):
                sendPeer(to: to, .mutex(m))
            case .begin(_, let first, let batch, let prepare):
                writeRound(first: first, batch: batch, prepare: prepare, now: now)
            case .commit(let to, let round, let through):
                sendPeer(to: to, .commit(round: round, through: through))
            case .abort(let to, let round):
                sendPeer(to: to, .abort(round: round, keep: commitIndex))
            case .committed(let through):
                commit(through: through, now: now)
                // The section is kept for the next batch unless someone asked
                // for it meanwhile (a deferred requester waits at most until
                // the rounds in flight end) or this node no longer leads.
                startRound(now: now)
            case .aborted(let reason):
                abortRound(reason: reason, now: now)
            case .sectionTimedOut:
                guard let leader else { continue }
                failProposals(of: leader, .noquorum, "the replication section was not granted within commit_timeout_ms; this change was not replicated")
                resign(now: now, reason: "mutex_timeout")
            case .log(let e):
                effects.append(.log(e))
            }
        }
    }

    /// Inside the critical section: the batch becomes log entries, sent to
    /// every live follower, then persisted here (so the copies overlap).
    private func writeRound(first: UInt64, batch: [Proposal], prepare: [Int], now: Int64) {
        guard let leader else { preconditionFailure("a round begun while not leading") }
        precondition(first == log.lastIndex + 1, "a round's first entry follows the log")
        var records: [LogRecord] = []
        records.reserveCapacity(batch.count + 1)
        if election != nil && commitIndex > lastCommitMark {
            records.append(.commit(commitIndex))
            lastCommitMark = commitIndex
        }
        for p in batch {
            let e = LogEntry(index: log.lastIndex + 1, epoch: epoch, lamport: p.lamport, op: p.op)
            log.append(e)
            records.append(.entry(e))
            if let c = p.client { leader.awaiting.append((e.index, c, p.answer)) }
        }
        election?.logMoved(to: log.position)
        for id in prepare { sendReplication(to: id, now: now) }
        persist(records)
    }

    /// No majority in time: the clients learn the outcome is unknown (a
    /// follower may hold the entry, and a later leader may commit it), our own
    /// uncommitted entries of this epoch are cut (so we never commit them
    /// later), and we resign. Entries adopted from older epochs stay: they
    /// may have committed under an earlier leader.
    func abortRound(reason: String, now: Int64) {
        guard let leader else { return }
        var cut: UInt64?
        var i = commitIndex + 1
        while i <= log.lastIndex {
            if log.entry(at: i)?.epoch == epoch { cut = i - 1; break }
            i += 1
        }
        if let cut {
            for a in leader.awaiting where a.index > cut {
                if let op = log.entry(at: a.index)?.op { unwind(op, leader: leader) }
                reply(a.target, .error(.noquorum, reason == "timeout"
                    ? "no majority acknowledged within commit_timeout_ms (\(settings.commitTimeoutMs) ms); the outcome is unknown: a later leader may still apply it"
                    : "a majority cannot be reached (too few peers up or willing); the outcome is unknown: a later leader may still apply it"))
            }
            leader.awaiting.removeAll { $0.index > cut }
            log.truncate(after: cut)
            persist([.truncate(after: cut)])
            election?.logMoved(to: log.position)
        }
        applyRounds(leader.rounds.releaseSection(), now: now)
        failProposals(of: leader, .noquorum, "no majority acknowledged within commit_timeout_ms; this change was not replicated")
        resign(now: now, reason: "no_quorum_\(reason)")
    }

    /// Sends a follower what it lacks: one message at a time until it is
    /// known to match, then a few batches in flight (the next goes as it
    /// acknowledges); past the in-memory window, a snapshot (a large one as
    /// a chunked transfer: NodeCore+Transfers).
    func sendReplication(to id: Int, now: Int64) {
        guard let leader, detector.alive.contains(id) else { return }
        if sendTransferChunks(to: id) { return }
        // More than one only while streaming entries to a follower known to match.
        while let message = leader.replication.nextMessage(to: id, log: log, commitIndex: commitIndex, now: now) {
            switch message {
            case .snapshot:
                sendSnapshot(to: id)
                return
            case .entries(let prev, let prevEpoch, let entries):
                sendPeer(to: id, .replicate(.init(round: leader.rounds.latestRound, prevIndex: prev, prevEpoch: prevEpoch,
                                                  commit: commitIndex, entries: entries)))
            }
        }
    }

    func receiveAck(from: Int, epoch e: UInt64, round: UInt64, matched: Bool, index: UInt64, now: Int64) {
        guard let leader, leader.replication.progress[from] != nil else { return }
        guard e == epoch else {
            guard e > epoch else { return }
            // It promised a newer epoch to another candidate: it will refuse
            // us for as long as we lead in this one.
            leader.replication.refused(by: from)
            applyRounds(leader.rounds.refused(from: from, epoch: epoch), now: now)
            if role == .leader { resign(now: now, reason: "newer_epoch") }
            return
        }
        if let resend = leader.replication.acknowledged(by: from, matched: matched, index: index, lastIndex: log.lastIndex) {
            emit(.debug, "sync", [("node", "\(nodeId)"), ("peer", "\(from)"), ("mode", "entries"),
                                  ("from", "\(resend)"), ("last", "\(log.lastIndex)")])
        }
        if matched { applyRounds(leader.rounds.acknowledged(from: from, epoch: epoch, through: index), now: now) }
        sendReplication(to: from, now: now)
    }
}
