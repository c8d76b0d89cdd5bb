// NodeCore's replication rounds, leader side: a batch of proposals takes the
// Ricart-Agrawala section, becomes log entries (one persist), and runs as a
// two-phase commit round; each follower is sent what it lacks, paced by its
// acknowledgements and tracked by its `LeaderReplication.Progress`. Up to
// `maxRoundsInFlight` rounds run at once: the next batch is prepared while
// the last one waits for its votes, and they commit in log order. The
// leader keeps the section for as long as it leads, nobody else asks for it
// and no peer came up since it asked, so a round starts without the
// request's round trip. Invariant: a requester deferred by the leader gets
// the section once the rounds in flight drain (no new round starts
// meanwhile); an aborted round aborts every round in flight, cuts only this
// epoch's uncommitted entries, and the leader resigns.

extension NodeCore {
    func failProposals(_ code: ErrorCode, _ text: String) {
        for p in proposals {
            unwind(p.op)
            if let c = p.client { reply(c, .error(code, text)) }
        }
        proposals.removeAll()
        pendingPayloadBytes = max(0, pendingPayloadBytes)
    }

    /// Rounds prepared at once (the pipeline's depth).
    static var maxRoundsInFlight: Int { 4 }

    /// Whether `startRound` starts a round now: a batch waits, this node
    /// serves or commits its first entry, the pipeline has room, and the
    /// section is held and may be kept (or is free to ask for).
    var roundCanStart: Bool {
        guard !proposals.isEmpty, role == .leader, recovering == nil,
              twoPC.roundsInFlight < Self.maxRoundsInFlight else { return false }
        switch mutex.state {
        case .requesting: return false
        case .idle: return true
        case .inside: return mutexKept || !twoPC.inRound
        }
    }

    /// The section held may be kept for the next round: nobody asked for it
    /// meanwhile and every live peer was asked when it was granted.
    private var mutexKept: Bool { !mutex.hasDeferred && livePeers.isSubset(of: mutex.asked) }

    /// Starts a replication round with the waiting batch, when one can start.
    func startRound(now: Int64) {
        guard roundCanStart else { return }
        if mutex.state == .inside {
            if mutexKept {
                beginRound(now: now)
                return
            }
            // Someone waits for it, or a peer we did not ask is alive: no
            // round in flight (`roundCanStart`), so it goes now.
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
            if !twoPC.inRound { applyMutex(mutex.release(), now: now) }
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
                // at most until the rounds in flight end) or it no longer
                // leads. While rounds are in flight (or `commit` started the
                // next one: a mailbox delivery), nothing is released here.
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
