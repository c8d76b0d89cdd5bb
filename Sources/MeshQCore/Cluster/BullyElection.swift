// BullyElection: leader election where the highest live id wins, with epochs
// and votes so that a partition can never produce two leaders in one epoch.
//
// A candidate proposes epoch E = (highest epoch seen or voted) + 1 and asks
// everyone. A higher-id node answers ANSWER and runs its own election (the
// bully step: a returning higher node takes over); a lower one grants its vote
// for E if it has not voted in E or later — or if its only vote in E is for
// its own candidacy, which it then abandons (so simultaneous candidates
// converge on the highest instead of splitting the votes forever; each node
// still counts for one candidate per epoch). The candidate leads once a majority
// (itself included) voted for E and no higher node answered before the
// election timeout (or at once, when no higher node's link is up). One vote
// per node per epoch means at most one majority per epoch: invariant 1.
// A leader keeps leading only while a majority acknowledges its heartbeats:
// each heartbeat carries the leader's send time and each acknowledgement
// echoes it, so the leader's lease runs from when it *sent* what a majority
// answered, never from when an answer happened to be read. A process waking
// from a pause therefore finds its lease expired before it can serve from
// stale state (`quorumFresh`). Any message showing a later epoch makes a node
// follow it (stale leaders step down). Votes must be durable before they are sent: the `persistVote` output
// comes first and the driver must apply outputs in order.
//
// A node that may have lost entries it acknowledged (its log was found
// corrupt) is `rejoining`: it follows and acknowledges heartbeats, but
// neither votes nor runs, and answers every ELECTION with ABSTAIN so that a
// lower candidate need not wait for it; the driver calls `rejoined()` once it
// holds a leader's log, and only then does it count in a majority again.
// (A majority that elects must intersect every majority that committed;
// a node that forgot what it acknowledged would break that intersection.)
//
// Pure: inputs are messages, peer links and `now`; outputs are messages to
// send and role changes. No clock, socket or randomness of its own. A value:
// its owner changes it only through the mutating inputs below (the timings
// only through `reload`), and everything else outside reads.

public struct BullyElection: Sendable {
    public typealias Role = MeshQCore.Role

    /// Whether this node counts in elections: a node catching up after
    /// losing part of its log neither votes nor runs.
    public enum Standing: Sendable, Equatable { case voter, rejoining }

    public enum Message: Equatable, Sendable {
        case election(epoch: UInt64, position: LogPosition)
        /// `leaseWaitMs`: how much longer the leader `leaseHolder` (0: none),
        /// whose heartbeat this voter acknowledged last, may still count on
        /// that acknowledgement (its lease). The new leader serves nothing
        /// from its state before that has passed, unless that leader voted
        /// for it too (a leader steps down before it votes).
        case vote(epoch: UInt64, position: LogPosition, leaseWaitMs: Int64, leaseHolder: Int)
        case answer(epoch: UInt64)
        /// "I am catching up: I will neither vote in `epoch` nor run."
        case abstain(epoch: UInt64)
        case coordinator(epoch: UInt64)
        /// `sentAt`: the leader's monotonic clock when it sent the heartbeat.
        case heartbeat(epoch: UInt64, sentAt: Int64)
        /// Echoes the heartbeat's `sentAt` (the leader's lease runs from it).
        case heartbeatAck(epoch: UInt64, sentAt: Int64)

        var epoch: UInt64 {
            switch self {
            case .election(let e, _), .vote(let e, _, _, _), .answer(let e), .abstain(let e), .coordinator(let e),
                 .heartbeat(let e, _), .heartbeatAck(let e, _):
                return e
            }
        }
    }

    public enum Output: Equatable, Sendable {
        case send(to: Int, Message)
        /// Make "voted in epoch E" durable before the vote that follows leaves.
        case persistVote(epoch: UInt64)
        /// Won epoch E; `votes` holds each voter's log position (for
        /// recovery); an older leader's lease may last `leaseWaitMs` more.
        case becameLeader(epoch: UInt64, votes: [Int: LogPosition], leaseWaitMs: Int64)
        case following(leader: Int, epoch: UInt64)
        /// No leader known any more (leader silent, or this leader lost its majority).
        case leaderLost
        case log(LogEvent)
    }

    public let nodeId: Int
    public let members: [Int]
    public private(set) var heartbeatIntervalMs: Int64
    public private(set) var leaderTimeoutMs: Int64
    public private(set) var electionTimeoutMs: Int64

    public private(set) var role = Role.follower
    public private(set) var standing: Standing
    public private(set) var leaderId: Int?
    /// Highest epoch of a leader this node accepted (or is).
    public private(set) var epoch: UInt64
    /// Highest epoch this node voted in (its own candidacy included).
    public private(set) var votedEpoch: UInt64
    /// This node's latest vote since it started: its epoch, for whom (its
    /// own candidacy included) and when.
    private var lastVote: (epoch: UInt64, candidate: Int, at: Int64)?
    /// This node's log position (what its votes carry), kept current
    /// through `logMoved(to:)`.
    public private(set) var position: LogPosition
    /// Peers heard from within leader_timeout_ms (the failure detector's
    /// verdict, given through `peerUp` / `peerDown`).
    public private(set) var peersUp: Set<Int> = []

    /// Test hooks (see PlantedBug); empty in production.
    #if MESHQ_TESTING
    private(set) var plantedBugs: Set<PlantedBug> = []
    /// Plants test-only bugs (see PlantedBug).
    mutating func plant(_ bugs: Set<PlantedBug>) { plantedBugs = bugs }
    @inline(__always) private func planted(_ bug: PlantedBug) -> Bool { plantedBugs.contains(bug) }
    #else
    @inline(__always) private func planted(_ bug: PlantedBug) -> Bool { false }
    #endif
    /// Highest epoch in any message seen: proposals start above it.
    private var seenEpoch: UInt64 = 0
    private var lastHeardFromLeader: Int64 = 0
    private var proposed: UInt64 = 0
    private var votes: [Int: LogPosition] = [:]
    /// Peers catching up that told this candidate they will not take part.
    private var abstained: Set<Int> = []
    /// What the votes (ours included) say of older leaders' leases: holder -> wait.
    private var voteLeases: [Int: Int64] = [:]
    /// When this node last acknowledged a leader's heartbeat, and whose.
    private var lastAcked: (leader: Int, at: Int64)?
    private var answered = false
    private var deadline: Int64 = 0
    private var nextHeartbeat: Int64 = 0
    /// Leader: per peer, the send time of the latest heartbeat it acknowledged.
    private var lastAck: [Int: Int64] = [:]
    private var electionStartedAt: Int64 = 0

    public init(nodeId: Int, members: [Int], epoch: UInt64, votedEpoch: UInt64,
                heartbeatIntervalMs: Int, leaderTimeoutMs: Int, electionTimeoutMs: Int,
                standing: Standing = .voter, position: LogPosition = .zero) {
        self.nodeId = nodeId
        self.position = position
        self.standing = standing
        self.members = members.sorted()
        self.epoch = epoch
        self.votedEpoch = max(epoch, votedEpoch)
        self.heartbeatIntervalMs = Int64(heartbeatIntervalMs)
        self.leaderTimeoutMs = Int64(leaderTimeoutMs)
        self.electionTimeoutMs = Int64(electionTimeoutMs)
    }

    public var majority: Int { members.count / 2 + 1 }
    private var peers: [Int] { members.filter { $0 != nodeId } }
    private var higherPeersUp: Bool { peersUp.contains { $0 > nodeId && !abstained.contains($0) } }

    // MARK: inputs

    /// A node starts by calling an election: if a higher node leads, it answers;
    /// if this node is the highest alive, it takes over.
    public mutating func start(now: Int64) -> [Output] {
        guard standing == .voter else {
            // Catching up (the driver says why): wait to hear a leader.
            lastHeardFromLeader = now
            return []
        }
        return startElection(now: now, reason: "start")
    }

    /// The log now holds everything a leader had when this node asked: it
    /// counts in elections again (and may bully a lower leader as usual).
    public mutating func rejoined() {
        standing = .voter
    }

    public mutating func tick(now: Int64) -> [Output] {
        switch role {
        case .follower:
            guard now - lastHeardFromLeader >= leaderTimeoutMs else { return [] }
            var out: [Output] = []
            if let l = leaderId {
                out.append(.log(LogEvent(.warn, "leader_timeout", [("node", "\(nodeId)"), ("leader", "\(l)"),
                                                                   ("epoch", "\(epoch)")])))
                leaderId = nil
                out.append(.leaderLost)
            }
            guard standing == .voter else {
                lastHeardFromLeader = now
                return out
            }
            return out + startElection(now: now, reason: "leader_timeout")
        case .candidate:
            guard now >= deadline else { return [] }
            if !answered && votes.count >= majority { return win(now: now) }
            return startElection(now: now, reason: answered ? "no_coordinator" : "no_majority")
        case .leader:
            let lost = checkQuorum(now: now)
            guard lost.isEmpty else { return lost }
            guard now >= nextHeartbeat else { return [] }
            nextHeartbeat = now + heartbeatIntervalMs
            return peers.map { .send(to: $0, .heartbeat(epoch: epoch, sentAt: now)) }
        }
    }

    /// Whether this leader heard, within leader_timeout_ms of `now`, a
    /// majority (itself included) acknowledge heartbeats it sent.
    public func quorumFresh(now: Int64) -> Bool {
        guard role == .leader else { return false }
        if planted(.leaseNeverExpires) { return true }
        var alive = 1
        for at in lastAck.values where now - at < leaderTimeoutMs { alive += 1 }
        return alive >= majority
    }

    /// A leader that has not heard from a majority for leader_timeout_ms
    /// steps down (a lone survivor, or a process waking from a pause, must
    /// not lead). Run before serving anything from local state.
    public mutating func checkQuorum(now: Int64) -> [Output] {
        guard role == .leader, !quorumFresh(now: now) else { return [] }
        role = .follower
        leaderId = nil
        lastAck.removeAll()
        lastHeardFromLeader = now
        return [.log(LogEvent(.warn, "leader_stepdown", [("node", "\(nodeId)"), ("epoch", "\(epoch)"),
                                                         ("reason", "lost_majority")])),
                .leaderLost]
    }

    /// New timings (SIGHUP): the only way they change; they apply from the next timer.
    public mutating func reload(_ settings: ClusterSettings) {
        heartbeatIntervalMs = Int64(settings.heartbeatIntervalMs)
        leaderTimeoutMs = Int64(settings.leaderTimeoutMs)
        electionTimeoutMs = Int64(settings.electionTimeoutMs)
    }

    /// The log was appended to, cut or replaced: votes carry the new position.
    public mutating func logMoved(to position: LogPosition) {
        self.position = position
    }

    /// The failure detector heard from `id` (directly or over a relay).
    public mutating func peerUp(_ id: Int) {
        peersUp.insert(id)
    }

    /// When `tick` next has something to do.
    public func nextWakeup() -> Int64 {
        switch role {
        case .follower: return lastHeardFromLeader + leaderTimeoutMs
        case .candidate: return deadline
        case .leader: return nextHeartbeat
        }
    }

    public mutating func receive(from: Int, _ msg: Message, now: Int64) -> [Output] {
        guard from != nodeId, members.contains(from) else { return [] }
        seenEpoch = max(seenEpoch, msg.epoch)
        switch msg {
        case .election(let e, _):
            if standing == .rejoining {
                return [.send(to: from, .abstain(epoch: e))]
            }
            if from < nodeId {
                // Bully: tell the lower candidate we are here, and take over.
                var out: [Output] = [.send(to: from, .answer(epoch: e))]
                if role == .leader {
                    out.append(.send(to: from, .coordinator(epoch: epoch)))
                } else if planted(.noBullyTakeover) && role == .follower && leaderId != nil {
                    // planted: leave a lower leader alone
                } else if role == .follower, leaderId == nil, let v = lastVote, v.epoch == votedEpoch, v.candidate > nodeId, v.epoch >= e {
                    // We already voted, in this epoch or a later one, for a
                    // higher candidate: it takes over from the lower one too.
                    // Running now would only raise the epoch over it and
                    // depose it the moment it won (our voters would fence it).
                    // If it fails, our leader timeout runs the election.
                } else if role == .candidate ? e >= proposed : (leaderId ?? 0) < nodeId {
                    out += startElection(now: now, reason: "bully")
                }
                return out
            }
            let ownCandidacy = role == .candidate && proposed == e && votedEpoch == e
            guard e > votedEpoch || ownCandidacy || (planted(.voteTwicePerEpoch) && e == votedEpoch) else { return [] }
            if let higher = higherNodeTakingOver(than: from, now: now) {
                // Leader stickiness (Raft's rule against disruptive servers):
                // a lower candidate cannot win while a higher node leads or
                // runs, and our vote would only fence that node out.
                return [.log(LogEvent(.debug, "vote_withheld", [("node", "\(nodeId)"), ("candidate", "\(from)"),
                                                                ("epoch", "\(e)"), ("for", "\(higher)")]))]
            }
            var out: [Output] = []
            if role == .leader { out += stepDown(now: now, reason: "higher_candidate") }
            if role == .candidate {
                role = .follower
                votes = [:]
                lastHeardFromLeader = now
            }
            votedEpoch = e
            lastVote = (e, from, now)
            out.append(.persistVote(epoch: e))
            let lease = leaseWait(for: from, now: now)
            out.append(.send(to: from, .vote(epoch: e, position: position, leaseWaitMs: lease.wait, leaseHolder: lease.holder)))
            return out
        case .vote(let e, let pos, let wait, let holder):
            guard role == .candidate, e == proposed else { return [] }
            votes[from] = pos
            if wait > 0 { voteLeases[holder] = max(voteLeases[holder] ?? 0, wait) }
            if votes.count >= majority && !answered && !higherPeersUp { return win(now: now) }
            return []
        case .abstain(let e):
            guard role == .candidate, e == proposed else { return [] }
            abstained.insert(from)
            if votes.count >= majority && !answered && !higherPeersUp { return win(now: now) }
            return []
        case .answer(let e):
            guard role == .candidate, e == proposed, from > nodeId else { return [] }
            answered = true
            deadline = now + electionTimeoutMs
            return [.log(LogEvent(.debug, "election_ok", [("node", "\(nodeId)"), ("from", "\(from)"), ("epoch", "\(e)")]))]
        case .coordinator(let e):
            return leaderSpoke(from: from, epoch: e, heartbeatSentAt: nil, now: now)
        case .heartbeat(let e, let sentAt):
            return leaderSpoke(from: from, epoch: e, heartbeatSentAt: sentAt, now: now)
        case .heartbeatAck(let e, let sentAt):
            if e > epoch { return adoptHigherEpoch(e, now: now) }
            // The lease counts from the heartbeat's send time; an echo from
            // the future (a restarted leader's clock) counts as sent now.
            if role == .leader && e == epoch { lastAck[from] = max(lastAck[from] ?? .min, min(sentAt, now)) }
            return []
        }
    }

    /// The leader gives up (it could not commit): it steps down and calls a
    /// new election at once, so the next leadership has a fresh epoch.
    public mutating func resign(now: Int64, reason: String) -> [Output] {
        guard role == .leader else { return [] }
        return stepDown(now: now, reason: reason) + startElection(now: now, reason: reason)
    }

    /// A peer's link went down: stop waiting on it.
    public mutating func peerDown(_ id: Int) {
        peersUp.remove(id)
        lastAck.removeValue(forKey: id)
    }

    // MARK: transitions

    /// A node above `candidate` that this follower heard lead within the
    /// leader timeout (over a link still up), or voted for within the
    /// election timeout: the node that will take over from `candidate`.
    private func higherNodeTakingOver(than candidate: Int, now: Int64) -> Int? {
        guard role == .follower else { return nil }
        if let l = leaderId, l > candidate, peersUp.contains(l), now - lastHeardFromLeader < leaderTimeoutMs { return l }
        if leaderId == nil, let v = lastVote, v.candidate > candidate, v.candidate != nodeId, peersUp.contains(v.candidate),
           now - v.at < electionTimeoutMs { return v.candidate }
        return nil
    }

    private mutating func leaderSpoke(from: Int, epoch e: UInt64, heartbeatSentAt: Int64?, now: Int64) -> [Output] {
        if e < epoch {
            // A stale leader: show it the current epoch so it steps down.
            return [.send(to: from, .heartbeatAck(epoch: epoch, sentAt: heartbeatSentAt ?? 0))]
        }
        if role == .leader && e == epoch && from != nodeId {
            // Cannot happen with one vote per node per epoch; never follow blindly.
            return [.log(LogEvent(.error, "two_leaders", [("node", "\(nodeId)"), ("other", "\(from)"), ("epoch", "\(e)")]))]
        }
        var out: [Output] = []
        if from < nodeId && role != .candidate && standing == .voter && !planted(.noBullyTakeover) {
            // A lower node leads while we are alive: bully it (after following,
            // so clients are served meanwhile).
            out += follow(from, epoch: e, now: now)
            if let at = heartbeatSentAt {
                lastAcked = (from, now)
                out.append(.send(to: from, .heartbeatAck(epoch: e, sentAt: at)))
            }
            return out + startElection(now: now, reason: "bully")
        }
        if role == .candidate && from < nodeId && e < proposed { return [] }
        out += follow(from, epoch: e, now: now)
        if let at = heartbeatSentAt {
            lastAcked = (from, now)
            out.append(.send(to: from, .heartbeatAck(epoch: e, sentAt: at)))
        }
        return out
    }

    private mutating func follow(_ leader: Int, epoch e: UInt64, now: Int64) -> [Output] {
        let changed = leaderId != leader || epoch != e || role != .follower
        if role == .leader { lastAck.removeAll() }
        role = .follower
        leaderId = leader
        epoch = e
        votedEpoch = max(votedEpoch, e)
        lastHeardFromLeader = now
        return changed ? [.following(leader: leader, epoch: e)] : []
    }

    /// How long a leader other than `candidate` may still count on our
    /// latest acknowledgement of its heartbeat (we stop acknowledging it once
    /// we vote, but what we sent stands for leader_timeout_ms).
    private func leaseWait(for candidate: Int, now: Int64) -> (wait: Int64, holder: Int) {
        guard let a = lastAcked, a.leader != candidate else { return (0, 0) }
        return (max(0, a.at + leaderTimeoutMs - now), a.leader)
    }

    /// The longest lease an older leader may still hold, from the votes: a
    /// holder that voted for us has stepped down, so its lease is void.
    private var leaseWaitOfVotes: Int64 {
        voteLeases.filter { votes[$0.key] == nil }.values.max() ?? 0
    }

    /// A message stamped with a newer epoch than this leader's: a newer
    /// leader was accepted somewhere, so this one steps down (fencing).
    public mutating func observe(epoch e: UInt64, now: Int64) -> [Output] {
        guard role == .leader, e > epoch else { return [] }
        return adoptHigherEpoch(e, now: now)
    }

    private mutating func adoptHigherEpoch(_ e: UInt64, now: Int64) -> [Output] {
        var out: [Output] = []
        if role == .leader { out += stepDown(now: now, reason: "higher_epoch") }
        epoch = e
        votedEpoch = max(votedEpoch, e)
        return out
    }

    private mutating func stepDown(now: Int64, reason: String) -> [Output] {
        role = .follower
        leaderId = nil
        lastAck.removeAll()
        lastHeardFromLeader = now
        return [.log(LogEvent(.warn, "leader_stepdown", [("node", "\(nodeId)"), ("epoch", "\(epoch)"), ("reason", reason)])),
                .leaderLost]
    }

    private mutating func startElection(now: Int64, reason: String) -> [Output] {
        role = .candidate
        if leaderId != nil { leaderId = nil }
        proposed = max(epoch, votedEpoch, seenEpoch) + 1
        votedEpoch = proposed
        lastVote = (proposed, nodeId, now)
        votes = [nodeId: position]
        abstained = []
        let own = leaseWait(for: nodeId, now: now)
        voteLeases = own.wait > 0 ? [own.holder: own.wait] : [:]
        answered = false
        deadline = now + electionTimeoutMs
        electionStartedAt = now
        var out: [Output] = [
            .persistVote(epoch: proposed),
            .log(LogEvent(.info, "election_start", [("node", "\(nodeId)"), ("epoch", "\(proposed)"), ("reason", reason)])),
        ]
        out += peers.map { .send(to: $0, .election(epoch: proposed, position: position)) }
        if votes.count >= majority && !higherPeersUp { out += win(now: now) }
        return out
    }

    private mutating func win(now: Int64) -> [Output] {
        role = .leader
        leaderId = nodeId
        epoch = proposed
        lastAck = [:]
        // Every peer reachable now gets a full leader timeout to acknowledge a
        // heartbeat, not only this election's voters (a late voter or a
        // follower of the coordinator message would otherwise not count, and
        // losing one voter's link would depose a leader a majority follows).
        for id in peersUp.union(votes.keys) where id != nodeId { lastAck[id] = now }
        nextHeartbeat = now + heartbeatIntervalMs
        var out: [Output] = [
            .log(LogEvent(.info, "leader_elected", [("node", "\(nodeId)"), ("epoch", "\(epoch)"),
                                                    ("took_ms", "\(now - electionStartedAt)"), ("votes", "\(votes.count)"),
                                                    ("lease_wait_ms", "\(leaseWaitOfVotes)")])),
            .becameLeader(epoch: epoch, votes: votes, leaseWaitMs: leaseWaitOfVotes),
        ]
        out += peers.map { .send(to: $0, .coordinator(epoch: epoch)) }
        return out
    }
}
