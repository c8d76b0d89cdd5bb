// NodeCore's peer bus: dispatching an incoming envelope to the concern it
// belongs to, sending (directly, or relayed through a neighbour when the
// direct link is down), the periodic link reports, and applying the failure
// detector's verdicts. Invariant: every envelope that reaches `receive` came
// from a member other than this node, and every send ticks the Lamport clock
// once; a peer declared dead is no longer waited on by any part (election,
// mutex, 2PC, replication, forwards, recovery).

extension NodeCore {
    func receive(_ env: PeerEnvelope, now: Int64, wallMs: Int64) {
        if planted(.skipLamportMerge) { clock.tick() } else { clock.merge(env.lamport) }
        guard election != nil, memberIds.contains(env.from), env.from != nodeId else { return }
        // Fencing: a message stamped with a newer epoch than ours means a
        // newer leader was accepted; a leader of an older epoch steps down.
        if role == .leader && env.epoch > epoch {
            applyElection(election?.observe(epoch: env.epoch, now: now) ?? [], now: now)
        }
        switch env.body {
        case .hello, .challenge:
            break
        case .election(let m):
            // Having promised a newer epoch (by voting, or by accepting its
            // leader's entries), we no longer acknowledge an older leader:
            // its heartbeats learn of the newer epoch instead, so its lease
            // cannot be renewed by a node that may help a newer leader commit.
            switch m {
            case .heartbeat(let e, let sentAt) where e < fence.promised:
                sendPeer(to: env.from, .election(.heartbeatAck(epoch: fence.promised, sentAt: sentAt)))
                return
            case .coordinator(let e) where e < fence.promised:
                return
            default:
                break
            }
            applyElection(election?.receive(from: env.from, m, now: now) ?? [], now: now)
        case .timeRequest(let seq):
            if role == .leader { sendPeer(to: env.from, .timeReply(seq: seq, serverMs: clusterTime(wallMs: wallMs))) }
        case .timeReply(let seq, let serverMs):
            guard env.from == leaderId, let s = timeSync.reply(seq: seq, serverMs: serverMs, wallMs: wallMs) else { return }
            emit(.info, "time_sync", [("node", "\(nodeId)"), ("leader", "\(env.from)"), ("offset_ms", formatMs(cristian.offsetMs)),
                                     ("rtt_ms", formatMs(s.rttMs)), ("sample_offset_ms", formatMs(s.offsetMs))])
        case .mutex(let m):
            if let leader {
                // Held between rounds, the section goes to whoever asks.
                applyRounds(leader.rounds.receiveMutex(from: env.from, m, roundContext(now: now), clock: &clock), now: now)
            } else if case .request(let ts) = m {
                // Neither inside nor asking (only a leader asks): answer at once.
                sendPeer(to: env.from, .mutex(.reply(ts: ts)))
            }
        case .replicate(let r):
            receiveReplicate(r, from: env.from, epoch: env.epoch, now: now)
        case .replicateAck(let round, let matched, let index):
            receiveAck(from: env.from, epoch: env.epoch, round: round, matched: matched, index: index, now: now)
        case .commit(_, let through):
            guard env.epoch == matched.epoch, role != .leader else { return }
            commit(through: min(through, matched.through), now: now)
        case .abort(let round, let keep):
            receiveAbort(epoch: env.epoch, round: round, keep: keep, now: now)
        case .snapshot(let snap):
            receiveSnapshot(snap, from: env.from, epoch: env.epoch, now: now)
        case .recoverRequest(let id, let after):
            answerRecovery(to: env.from, epoch: env.epoch, id: id, after: after)
        case .recoverReply(let e, let id, let snap, let entries):
            receiveRecovery(from: env.from, epoch: e, id: id, snapshot: snap, entries: entries, now: now)
        case .chunk(let c):
            receiveChunk(c, from: env.from, epoch: env.epoch, now: now)
        case .chunkAck(let kind, let e, let transfer, let received):
            receiveChunkAck(kind: kind, epoch: e, transfer: transfer, received: received, from: env.from, now: now)
        case .forward(let id, let owner, let command):
            guard commands.firstSight(relay: id, from: env.from) else { return }
            let target = ReplyTarget.forwarded(from: env.from, id: id)
            checkLease(now: now)
            // Only a leader takes relayed commands, and only those relayed to
            // its own leadership: a late or repeated message (perhaps across
            // our restart, which forgets the relay ids seen) was relayed to an
            // earlier one, whose relaying node has already told its client
            // the outcome is unknown, so it must not apply now.
            guard role == .leader else {
                reply(target, .error(.noleader, "node \(nodeId) is not the leader"))
                return
            }
            if env.epoch < epoch {
                reply(target, .error(.noleader, "relayed to an earlier leadership (epoch \(env.epoch)); not applied"))
                return
            }
            submit(command, target: target, owner: "\(env.from)/\(owner)", now: now, wallMs: wallMs)
        case .forwardReply(let id, let line):
            guard let target = commands.answered(id, from: env.from) else { return }
            reply(target, .relayed(line))
        case .deliverParked(let entries):
            receiveParked(entries, from: env.from, now: now)
        case .parkedDelivered(let through):
            parkedDelivered(through: through, now: now)
        case .links(let direct, let heard):
            router.report(from: env.from, links: direct, now: now)
            detector.report(from: env.from, heard: heard)
            applyDetector(now: now)
            dispatchHeld(now: now)
        case .rejoinProbe(let id):
            answerRejoinProbe(from: env.from, id: id, now: now)
        case .rejoinTarget(let e, let id, let index):
            receiveRejoinTarget(from: env.from, epoch: e, id: id, index: index, now: now)
        case .logProbe(let id):
            sendPeer(to: env.from, .logReport(id: id, lastIndex: log.lastIndex, votedEpoch: election?.votedEpoch ?? 0,
                                              promisedEpoch: durablePromise))
        case .logReport(let id, let lastIndex, let voted, let promised):
            receiveLogReport(from: env.from, id: id, lastIndex: lastIndex, votedEpoch: voted, promisedEpoch: promised,
                             now: now)
        case .relay(let id, let origin, let dest, let ttl, let inner):
            guard router.firstSight(origin: origin, id: id) else { return }
            if dest == nodeId {
                guard inner.envelope.from == origin, inner.envelope.to == nodeId,
                      memberIds.contains(origin), origin != nodeId else { return }
                // Heard over a relay: alive, though not over its own link.
                detector.heard(from: origin, directly: false, now: now)
                applyDetector(now: now)
                receive(inner.envelope, now: now, wallMs: wallMs)
                return
            }
            guard ttl > 1, memberIds.contains(dest),
                  let hop = router.nextHop(to: dest, avoid: [env.from, origin], now: now) else {
                emit(.debug, "route_drop", [("node", "\(nodeId)"), ("origin", "\(origin)"), ("dest", "\(dest)"), ("ttl", "\(ttl)")])
                return
            }
            emit(.debug, "route_forward", [("node", "\(nodeId)"), ("origin", "\(origin)"), ("dest", "\(dest)"),
                                           ("via", "\(hop)"), ("ttl", "\(ttl - 1)")])
            effects.append(.sendPeer(PeerEnvelope(from: nodeId, to: hop, lamport: clock.tick(), epoch: epoch,
                                                  body: .relay(id: id, origin: origin, dest: dest, ttl: ttl - 1, inner: inner))))
        }
    }

    func sendPeer(to: Int, _ body: PeerEnvelope.Body, epoch e: UInt64? = nil) {
        let env = PeerEnvelope(from: nodeId, to: to, lamport: clock.tick(), epoch: e ?? epoch, body: body)
        // The direct link, or (when it is down) a neighbour that reaches `to`.
        guard !router.direct.contains(to), let hop = router.nextHop(to: to, now: lastNow) else {
            effects.append(.sendPeer(env))
            return
        }
        nextRoutedId &+= 1
        effects.append(.sendPeer(PeerEnvelope(from: nodeId, to: hop, lamport: env.lamport, epoch: env.epoch,
                                              body: .relay(id: nextRoutedId, origin: nodeId, dest: to,
                                                           ttl: settings.routeTTL, inner: .init(env)))))
    }

    /// Peers heard from within leader_timeout_ms (directly or over a relay):
    /// the Ricart-Agrawala wait set and the 2PC participants. A silent peer
    /// is waited on for no longer than that.
    var livePeers: Set<Int> { detector.alive }

    /// Every heartbeat interval, on every link (never relayed: it probes the
    /// link itself): which peers this node hears directly, and which links it
    /// can send on. It is the traffic that proves this node alive to each
    /// peer, whatever its role, and what routing around a cut link uses.
    func reportLinks(now: Int64, to only: Int? = nil) {
        guard election != nil else { return }
        if only == nil { nextLinkReport = now + Int64(settings.heartbeatIntervalMs) }
        let heard = detector.heardDirectly(now: now)
        for p in only.map({ [$0] }) ?? peers {
            effects.append(.sendPeer(PeerEnvelope(from: nodeId, to: p, lamport: clock.tick(), epoch: epoch,
                                                  body: .links(direct: router.direct, heard: heard))))
        }
    }

    /// Followers sample the leader's clock every time_sync_interval_ms, and at
    /// once when they start following a new leader.
    func sampleLeaderClock(now: Int64, wallMs: Int64) {
        guard role == .follower, let leader = leaderId,
              let seq = timeSync.due(leader: leader, now: now, wallMs: wallMs, intervalMs: settings.timeSyncIntervalMs)
        else { return }
        sendPeer(to: leader, .timeRequest(seq: seq))
    }

    /// Applies the failure detector's verdicts as they change.
    func applyDetector(now: Int64) {
        for change in detector.evaluate(now: now) {
            switch change {
            case .directUp(let id):
                router.linkUp(id)
                reportLinks(now: now)
            case .directDown(let id):
                router.linkDown(id)
                reportLinks(now: now)
            case .resetLink(let id):
                effects.append(.resetPeerLink(id))
            case .alive(let id):
                emit(.info, "peer_alive", [("node", "\(nodeId)"), ("peer", "\(id)")])
                // Tell it at once that we hear it (its direct link needs that).
                reportLinks(now: now, to: id)
                election?.peerUp(id)
                if role == .leader { sendReplication(to: id, now: now) }
                dispatchHeld(now: now)
            case .dead(let id):
                emit(.warn, "peer_silent", [("node", "\(nodeId)"), ("peer", "\(id)"),
                                            ("timeout_ms", "\(settings.leaderTimeoutMs)")])
                peerLost(id, now: now)
            }
        }
    }

    /// A peer is down for everything: stop waiting on it.
    func peerLost(_ id: Int, now: Int64) {
        election?.peerDown(id)
        if let leader {
            applyRounds(leader.rounds.peerDown(id, roundContext(now: now)), now: now)
            leader.replication.lost(id)
        }
        failForwards { $0 == id }
        if let r = recovering, r.from == id { resign(now: now, reason: "recovery_source_lost") }
    }
}
