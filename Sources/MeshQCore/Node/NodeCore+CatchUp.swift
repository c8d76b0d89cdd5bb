// NodeCore's glue for a node catching up after losing part of its log (see
// CatchUp), and for the durable epoch promise it relies on. Invariant: a
// catching-up node votes again only after its log durably matches, through
// the target, the log of the leader that answered this incarnation's probe;
// and a follower's promise to a newer leader is in the vote file before it
// acknowledges anything to that leader.

extension NodeCore {
    /// A catching-up follower asks its leader how far it must get.
    func askCatchUpTarget(now: Int64) {
        guard catchUp != nil, role == .follower, let leader = leaderId else { return }
        catchUp!.leaderChanged(epoch: epoch)
        guard catchUp!.shouldAsk(leaderEpoch: epoch, now: now, retryMs: retransmitMs) else { return }
        sendPeer(to: leader, .catchUpProbe(id: catchUp!.probeId))
    }

    /// A leader answers with its last index, once it has recovered (before
    /// that its log may still lack what its best voter holds).
    func answerCatchUpProbe(from: Int, id: UInt64, now: Int64) {
        checkLease(now: now)
        guard role == .leader, serving else { return }
        sendPeer(to: from, .catchUpTarget(epoch: epoch, id: id, index: log.lastIndex))
    }

    func receiveCatchUpTarget(from: Int, epoch e: UInt64, id: UInt64, index: UInt64, now: Int64) {
        guard catchUp != nil, from == leaderId else { return }
        catchUp!.answered(epoch: e, id: id, index: index, followingEpoch: epoch)
        emit(.info, "catch_up_target", [("node", "\(nodeId)"), ("leader", "\(from)"), ("epoch", "\(e)"),
                                        ("index", "\(index)"), ("last", "\(log.lastIndex)")])
        checkCaughtUp(now: now)
    }

    /// Once the log durably matches the leader's through the target, this
    /// node counts in elections again.
    func checkCaughtUp(now: Int64) {
        guard let c = catchUp, unsyncedPersists == 0,
              c.reached(matchedEpoch: matched.epoch, matchedThrough: matched.through) else { return }
        catchUp = nil
        election?.caughtUp()
        effects.append(.caughtUp)
        emit(.info, "caught_up", [("node", "\(nodeId)"), ("leader", "\(leaderId.map(String.init) ?? "-")"),
                                  ("epoch", "\(matched.epoch)"), ("index", "\(matched.through)"),
                                  ("lamport", "\(clock.time)")])
    }

    /// Having accepted a newer leader (by following it, or by taking its
    /// entries), make that promise durable before anything is acknowledged
    /// to it: the log's last epoch implies it too, but a damaged log may
    /// lose it, and a node that forgets a promise could accept a deposed
    /// leader's entries.
    func persistPromiseIfRaised() {
        guard let election, twoPC.promisedEpoch > durablePromise else { return }
        durablePromise = twoPC.promisedEpoch
        effects.append(.persistVote(election.votedEpoch, promised: durablePromise))
    }
}
