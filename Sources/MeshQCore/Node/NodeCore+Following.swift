// NodeCore's log on the follower side, and committing on both sides: a
// follower appends a leader's entries only after its entry at prevIndex
// matches (log matching), cutting a conflicting uncommitted tail; it
// acknowledges only once they are durable; it applies the leader's commit
// point only as far as its log is known to match that leader's. Invariant:
// the queue changes only when an entry commits, and a committed entry is
// never cut.

extension NodeCore {
    /// Merges entries that follow on from our log (a leader's, or the best
    /// voter's): equal entries are kept, a conflicting uncommitted tail is cut.
    /// False when the entries would cut a committed one (a broken invariant).
    func merge(_ entries: [LogEntry], into records: inout [LogRecord]) -> Bool {
        for e in entries where e.index > log.baseIndex {
            if e.index <= log.lastIndex {
                if log.epoch(at: e.index) == e.epoch { continue }
                guard e.index > commitIndex else {
                    emit(.error, "log_conflict", [("node", "\(nodeId)"), ("index", "\(e.index)"), ("commit", "\(commitIndex)")])
                    return false
                }
                log.truncate(after: e.index - 1)
            }
            guard e.index == log.lastIndex + 1 else { return false }
            log.append(e)
            records.append(.entry(e))
            switch e.op {
            case .enqueue(let t), .enqueueParked(let t, _, _): nextTaskId = max(nextTaskId, t.id + 1)
            default: break
            }
        }
        return true
    }

    /// Replaces the committed state by a snapshot. Entries after the
    /// snapshot's last one stay when that entry is ours too (log matching
    /// makes them the leader's as well); they are written again after the
    /// snapshot, which replaces the log on disk.
    func install(_ snap: QueueSnapshot, encoded: [UInt8]?) {
        store = TaskStore()
        _ = store.advance(to: lastClusterMs)
        store.load(snap)
        clock.observe(snap.lamport)
        parkedApplied = snap.parkedApplied
        let kept: [LogEntry]
        if planted(.snapshotDropsSuffix) {
            log.reset(toSnapshotAt: snap.lastIndex, epoch: snap.lastEpoch)
            kept = []
        } else {
            kept = log.rebase(toSnapshotAt: snap.lastIndex, epoch: snap.lastEpoch)
        }
        matched.cut(after: log.lastIndex)
        lastCommitMark = snap.lastIndex
        nextTaskId = max(nextTaskId, snap.highestTaskId + 1, LogReplay.highestTaskId(in: log) + 1)
        unsyncedPersists += 1
        effects.append(.installSnapshot(snap, encoded: encoded))
        if !kept.isEmpty { persist(kept.map { .entry($0) }) }
        election?.logMoved(to: log.position)
    }

    /// The queue as of the commit point (valid at any time: the queue only
    /// ever holds committed changes).
    func committedSnapshot() -> QueueSnapshot {
        QueueSnapshot(lastIndex: commitIndex, lastEpoch: log.epoch(at: commitIndex) ?? log.baseEpoch,
                      lamport: clock.time, highestTaskId: store.highestTaskId, tasks: store.allTasks(),
                      parkedApplied: parkedApplied, pauses: store.pauses, keys: store.keyRecords())
    }

    // MARK: following

    func receiveReplicate(_ m: PeerEnvelope.Replicate, from: Int, epoch e: UInt64, now: Int64) {
        // A leader meeting a newer one steps down through the election first;
        // until then its own rounds own the log.
        guard role != .leader else { return }
        guard fence.accept(epoch: e) || planted(.prepareWithoutPromise) else {
            // A deposed leader: the newer epoch we promised tells it so.
            sendPeer(to: from, .replicateAck(round: m.round, matched: false, index: commitIndex),
                     epoch: fence.promised)
            return
        }
        persistPromiseIfRaised()
        if matched.follow(epoch: e, commitIndex: commitIndex) { epoch = max(epoch, e) }
        matched.saw(round: m.round)
        guard m.prevIndex <= log.lastIndex, log.matches(index: m.prevIndex, epoch: m.prevEpoch) else {
            sendPeer(to: from, .replicateAck(round: m.round, matched: false, index: commitIndex))
            return
        }
        var records: [LogRecord] = []
        guard merge(m.entries, into: &records) else {
            sendPeer(to: from, .replicateAck(round: m.round, matched: false, index: commitIndex))
            return
        }
        let through = max(m.prevIndex, m.entries.last?.index ?? 0)
        matched.matched(through: through)
        let newCommit = min(m.commit, matched.through)
        if newCommit > lastCommitMark && !records.isEmpty {
            records.append(.commit(min(newCommit, log.lastIndex)))
            lastCommitMark = newCommit
        }
        election?.logMoved(to: log.position)
        if !records.isEmpty { persist(records) }
        pendingAcks.append((from, m.round, through))
        if unsyncedPersists == 0 { sendPendingAcks() }
        commit(through: newCommit, now: now)
        checkRejoined(now: now)
    }

    /// `encoded`: the bytes `snap` was decoded from, when they came chunked.
    func receiveSnapshot(_ snap: QueueSnapshot, encoded: [UInt8]? = nil, from: Int, epoch e: UInt64, now: Int64) {
        guard role != .leader, fence.accept(epoch: e) else { return }
        persistPromiseIfRaised()
        if matched.follow(epoch: e, commitIndex: commitIndex) { epoch = max(epoch, e) }
        if snap.lastIndex > commitIndex {
            install(snap, encoded: encoded)
            emit(.info, "snapshot_installed", [("node", "\(nodeId)"), ("from", "\(from)"), ("index", "\(snap.lastIndex)"),
                                              ("tasks", "\(snap.tasks.count)")])
        }
        matched.matched(through: snap.lastIndex)
        pendingAcks.append((from, 0, max(snap.lastIndex, commitIndex)))
        if unsyncedPersists == 0 { sendPendingAcks() }
        checkRejoined(now: now)
    }

    /// The leader aborted a round: our uncommitted entries of its epoch past
    /// its commit point were never committed; drop them so no later recovery
    /// adopts them. Only the leader we replicate, in its own epoch, for its
    /// latest round, and only a tail made wholly of that epoch's entries: a
    /// late ABORT must never cut what a newer leader wrote or committed.
    func receiveAbort(epoch e: UInt64, round: UInt64, keep: UInt64, now: Int64) {
        guard role != .leader else { return }
        var i = max(keep, commitIndex) + 1
        if planted(.abortIgnoresEpoch) {
            while i <= log.lastIndex, log.entry(at: i)?.epoch != e { i += 1 }
        } else {
            guard e == matched.epoch, e >= fence.promised, round >= matched.round else { return }
            while i <= log.lastIndex, log.entry(at: i)?.epoch != e { i += 1 }
            var j = i
            while j <= log.lastIndex {
                guard log.entry(at: j)?.epoch == e else { return }
                j += 1
            }
        }
        guard i <= log.lastIndex else { return }
        log.truncate(after: i - 1)
        matched.cut(after: i - 1)
        persist([.truncate(after: i - 1)])
        election?.logMoved(to: log.position)
    }

    func sendPendingAcks() {
        for a in pendingAcks { sendPeer(to: a.to, .replicateAck(round: a.round, matched: true, index: a.through)) }
        pendingAcks.removeAll()
    }

    // MARK: committing

    func persist(_ records: [LogRecord]) {
        unsyncedPersists += 1
        effects.append(.persist(records))
    }

    /// Entries up to `index` are committed: apply them, answer their clients.
    func commit(through index: UInt64, now: Int64) {
        let entries = log.commit(through: index)
        guard !entries.isEmpty else { return }
        for e in entries {
            entriesCommitted += 1
            var client: (target: ReplyTarget, answer: Proposal.Answer)?
            if let leader, leader.awaiting.first?.index == e.index {
                let a = leader.awaiting.removeFirst()
                client = (a.target, a.answer)
            }
            applyCommitted(e, client: client)
        }
        if election == nil { emit(.debug, "repl_commit", [("node", "\(nodeId)"), ("epoch", "\(epoch)"),
                                                         ("commit", "\(commitIndex)"), ("entries", "\(entries.count)")]) }
        log.trim(keep: logWindow)
        if let t = delivery.takeCommittedHere() {
            parkedDelivered(through: t, now: now)
        }
        if role == .leader {
            startServingIfReady(now: now)
            serveWaiters(now: now)
        }
    }
}
