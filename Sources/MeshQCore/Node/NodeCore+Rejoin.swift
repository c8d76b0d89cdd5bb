// NodeCore's glue for a node catching up after losing part of its log, or
// starting with none (see Rejoin), and for the durable epoch promise it
// relies on. Invariant: a rejoining node votes again only after its log
// durably matches, through the target, the log of the leader that answered
// this incarnation's probe, or (its log empty, no promise) once blank peers
// and itself are a majority; and a follower's promise to a newer leader is
// in the vote file before it acknowledges anything to that leader.

extension NodeCore {
    /// Whether a node starts catching up (see Rejoin): its log was found
    /// damaged (`marked`), or, in a cluster, it holds nothing at all and never
    /// voted or promised an epoch (a new data_dir, or a wiped one).
    public static func startsRejoining(members: Int, marked: Bool, snapshot: QueueSnapshot?, records: [LogRecord],
                                       votedEpoch: UInt64, promisedEpoch: UInt64) -> Bool {
        guard members > 1 else { return false }
        return marked || holdsNothing(snapshot: snapshot, records: records, votedEpoch: votedEpoch, promisedEpoch: promisedEpoch)
    }

    /// No entry, no vote, no promise: a new data_dir, or a wiped one.
    static func holdsNothing(snapshot: QueueSnapshot?, records: [LogRecord], votedEpoch: UInt64, promisedEpoch: UInt64) -> Bool {
        (snapshot?.lastIndex ?? 0) == 0 && records.isEmpty && votedEpoch == 0 && promisedEpoch == 0
    }

    /// A rejoining follower asks its leader how far it must get.
    func askRejoinTarget(now: Int64) {
        guard rejoin != nil, role == .follower, let leader = leaderId else { return }
        rejoin!.leaderChanged(epoch: epoch)
        guard rejoin!.shouldAsk(leaderEpoch: epoch, now: now, retryMs: retransmitMs) else { return }
        sendPeer(to: leader, .rejoinProbe(id: rejoin!.probeId))
    }

    /// A leader answers with its last index, once it has recovered (before
    /// that its log may still lack what its best voter holds).
    func answerRejoinProbe(from: Int, id: UInt64, now: Int64) {
        checkLease(now: now)
        guard role == .leader, serving else { return }
        sendPeer(to: from, .rejoinTarget(epoch: epoch, id: id, index: log.lastIndex))
    }

    func receiveRejoinTarget(from: Int, epoch e: UInt64, id: UInt64, index: UInt64, now: Int64) {
        guard rejoin != nil, from == leaderId else { return }
        rejoin!.answered(epoch: e, id: id, index: index, followingEpoch: epoch)
        emit(.info, "rejoin_target", [("node", "\(nodeId)"), ("leader", "\(from)"), ("epoch", "\(e)"),
                                        ("index", "\(index)"), ("last", "\(log.lastIndex)")])
        checkRejoined(now: now)
    }

    /// A node that started with an empty log asks its peers' log lengths
    /// (each retransmit interval, and as links come up) until they settle
    /// whether the cluster is new.
    func probePeerLogs(now: Int64) {
        guard rejoin != nil, log.lastIndex == 0,
              rejoin!.shouldProbeLogs(now: now, retryMs: retransmitMs) else { return }
        for p in peers where !rejoin!.blankPeers.contains(p) { sendPeer(to: p, .logProbe(id: rejoin!.probeId)) }
    }

    /// A peer's answer: only to this incarnation's question (a late answer
    /// to an earlier one may describe the peer as it was long ago: the
    /// simulator found a wiped node taking one for a blank peer's).
    func receiveLogReport(from: Int, id: UInt64, lastIndex: UInt64, votedEpoch: UInt64, promisedEpoch: UInt64,
                          now: Int64) {
        guard rejoin != nil, id == rejoin!.probeId else { return }
        let wasOpen = rejoin!.mayFindNewCluster
        rejoin!.reported(by: from, lastIndex: lastIndex, votedEpoch: votedEpoch, promisedEpoch: promisedEpoch)
        if wasOpen && !rejoin!.mayFindNewCluster {
            emit(.warn, "rejoin_behind", [("node", "\(nodeId)"), ("peer", "\(from)"), ("peer_last", "\(lastIndex)"),
                                          ("peer_promised", "\(promisedEpoch)"),
                                          ("reason", "the cluster is not new: catching up before voting")])
        }
        guard log.lastIndex == 0, durablePromise == 0, unsyncedPersists == 0,
              rejoin!.provesNewCluster(size: memberIds.count) else { return }
        let blank = (rejoin!.blankPeers.sorted() + [nodeId]).sorted().map(String.init).joined(separator: ",")
        emit(.info, "new_cluster", [("node", "\(nodeId)"), ("blank", blank),
                                    ("reason", "a majority never held an entry, voted or followed a leader")])
        rejoin = nil
        election?.rejoined()
        effects.append(.rejoined)
    }

    /// Once the log durably matches the leader's through the target, this
    /// node counts in elections again.
    func checkRejoined(now: Int64) {
        guard let c = rejoin, unsyncedPersists == 0,
              c.reached(matchedEpoch: matched.epoch, matchedThrough: matched.through) else { return }
        rejoin = nil
        election?.rejoined()
        effects.append(.rejoined)
        emit(.info, "rejoined", [("node", "\(nodeId)"), ("leader", "\(leaderId.map(String.init) ?? "-")"),
                                  ("epoch", "\(matched.epoch)"), ("index", "\(matched.through)"),
                                  ("lamport", "\(clock.time)")])
    }

    /// Having accepted a newer leader (by following it, or by taking its
    /// entries), make that promise durable before anything is acknowledged
    /// to it: the log's last epoch implies it too, but a damaged log may
    /// lose it, and a node that forgets a promise could accept a deposed
    /// leader's entries.
    func persistPromiseIfRaised() {
        guard let election, fence.promised > durablePromise else { return }
        durablePromise = fence.promised
        effects.append(.persistVote(election.votedEpoch, promised: durablePromise))
    }
}
