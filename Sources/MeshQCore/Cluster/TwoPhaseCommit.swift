// TwoPhaseCommit: the coordinator's side of the replication rounds (the
// participant's fence against older epochs is EpochFence). The coordinator
// sends PREPARE(epoch, round, first, last) to the live peers (the node
// attaches the entries each peer lacks) and persists the entries itself. A
// participant that accepts persists them and acknowledges "durable and
// matching the leader through index i"; that holds for every round ending
// at or below i, so one acknowledgement (a lagging follower's catch-up too)
// can decide several rounds. Several rounds may be in flight: round k+1 is
// prepared while round k waits for its votes. A round commits once a
// majority holds it durably, the coordinator's own copy included, and every
// earlier round committed: rounds commit strictly in log order, and the
// coordinator then answers clients and broadcasts COMMIT through the last
// round decided. Without a majority for the oldest round by its deadline
// (commit_timeout_ms), or once a majority is impossible, every round in
// flight aborts: clients get ERR NOQUORUM. Entries prepared but never
// decided are settled by the next leader's recovery, never by a local timer.
// Invariant: `rounds` are consecutive in the log, oldest first, all of one
// epoch; a round leaves only committed (with all before it) or aborted
// (with all after it).
// A value: its owner changes it only through the mutating inputs below.

public struct TwoPhaseCommit: Sendable {
    public enum Message: Equatable, Sendable {
        case prepare(epoch: UInt64, round: UInt64, first: UInt64, last: UInt64)
        case commit(epoch: UInt64, round: UInt64, last: UInt64)
        case abort(epoch: UInt64, round: UInt64)
    }

    public enum Output: Equatable, Sendable {
        case send(to: Int, Message)
        /// Rounds through `round` committed: the log is committed through `through`.
        case committed(round: UInt64, through: UInt64)
        /// Every round in flight aborted; `round` is the latest of them.
        case aborted(round: UInt64, reason: String)
        case log(LogEvent)
    }

    private struct Round {
        var id: UInt64
        var epoch: UInt64
        var first: UInt64
        var last: UInt64
        var participants: Set<Int>
        var deadline: Int64
    }

    public let nodeId: Int
    /// Every member, this node included: whose acknowledgements count.
    public let members: Set<Int>
    /// In flight, oldest first.
    private var rounds: [Round] = []
    /// Coordinator: per peer, how far it acknowledged holding the log of
    /// `ackEpoch` durably (raft's match index).
    private var durable: [Int: UInt64] = [:]
    private var ackEpoch: UInt64 = 0
    /// Coordinator: how far its own copy is durable.
    private var localThrough: UInt64 = 0
    /// Peers that refused or went down since they last acknowledged.
    private var refusing: Set<Int> = []
    /// Whether to return debug-level `.log` outputs (a commit per round).
    public var debugEvents = true
    public init(nodeId: Int, members: [Int]) {
        self.nodeId = nodeId
        self.members = Set(members).union([nodeId])
    }

    public var majority: Int { members.count / 2 + 1 }
    public var inRound: Bool { !rounds.isEmpty }
    public var roundsInFlight: Int { rounds.count }
    /// When the oldest round in flight times out.
    public var deadline: Int64? { rounds.first?.deadline }

    // MARK: coordinator

    public mutating func begin(round id: UInt64, epoch: UInt64, first: UInt64, last: UInt64,
                      participants: Set<Int>, now: Int64, timeoutMs: Int) -> [Output] {
        precondition(rounds.last.map { $0.epoch == epoch && $0.last + 1 == first } ?? true,
                     "rounds in flight are consecutive and of one epoch")
        if epoch != ackEpoch {
            ackEpoch = epoch
            durable.removeAll()
            refusing.removeAll()
            localThrough = 0
        }
        let peers = participants.subtracting([nodeId])
        // Asked now, so live now: a vote may come again.
        refusing.subtract(peers)
        rounds.append(Round(id: id, epoch: epoch, first: first, last: last, participants: peers,
                            deadline: now + Int64(timeoutMs)))
        return peers.sorted().map { .send(to: $0, .prepare(epoch: epoch, round: id, first: first, last: last)) }
    }

    /// The coordinator's own copy is durable through `index`.
    public mutating func localDurable(through index: UInt64) -> [Output] {
        guard !rounds.isEmpty else { return [] }
        localThrough = max(localThrough, index)
        return decide()
    }

    /// A peer holds the log of `epoch` durably through `index` (a yes for
    /// every round of that epoch ending at or below it, whoever was asked).
    public mutating func acknowledged(from: Int, epoch: UInt64, through index: UInt64) -> [Output] {
        guard from != nodeId, members.contains(from), epoch == ackEpoch, !rounds.isEmpty else { return [] }
        durable[from] = max(durable[from] ?? 0, index)
        refusing.remove(from)
        return decide()
    }

    /// A participant refused the rounds (it promised a newer epoch).
    public mutating func refused(from: Int, epoch: UInt64) -> [Output] {
        guard !rounds.isEmpty else { return [] }
        refusing.insert(from)
        return decide()
    }

    /// A participant died: its votes will not come.
    public mutating func peerDown(_ id: Int) -> [Output] {
        guard !rounds.isEmpty else { return [] }
        refusing.insert(id)
        return decide()
    }

    public mutating func tick(now: Int64) -> [Output] {
        guard let r = rounds.first, now >= r.deadline else { return [] }
        return abort(reason: "timeout")
    }

    /// The coordinator stopped leading: the rounds end undecided (the next
    /// leader's recovery settles their entries).
    public mutating func abandon() {
        rounds.removeAll()
    }

    /// Peers other than this node holding the log durably through `index`.
    private func yes(through index: UInt64) -> Int {
        var n = 0
        for (id, d) in durable where id != nodeId && d >= index { n += 1 }
        return n
    }

    private mutating func decide() -> [Output] {
        var decided = 0
        while decided < rounds.count, localThrough >= rounds[decided].last,
              1 + yes(through: rounds[decided].last) >= majority {
            decided += 1
        }
        var out: [Output] = []
        if decided > 0 {
            let done = rounds[..<decided]
            let last = done.last!
            var told = Set<Int>()
            for r in done { told.formUnion(r.participants) }
            told.formUnion(durable.keys)
            if debugEvents {
                out.append(.log(LogEvent(.debug, "repl_commit", [("node", "\(nodeId)"), ("epoch", "\(last.epoch)"),
                                                                 ("round", "\(last.id)"), ("commit", "\(last.last)"),
                                                                 ("entries", "\(last.last - done.first!.first + 1)"),
                                                                 ("votes", "\(1 + yes(through: last.last))")])))
            }
            out.append(.committed(round: last.id, through: last.last))
            out += told.subtracting([nodeId]).sorted().map {
                .send(to: $0, .commit(epoch: last.epoch, round: last.id, last: last.last))
            }
            rounds.removeFirst(decided)
        }
        // Even every outstanding vote could not make a majority for the
        // oldest round: give them all up now.
        if let r = rounds.first {
            let voters = r.participants.union(durable.keys).subtracting([nodeId])
            let possible = 1 + voters.subtracting(refusing).count
            if possible < majority { out += abort(reason: "refused") }
        }
        return out
    }

    private mutating func abort(reason: String) -> [Output] {
        guard let latest = rounds.last else { return [] }
        var told = Set<Int>()
        for r in rounds { told.formUnion(r.participants) }
        rounds.removeAll()
        var out: [Output] = [.log(LogEvent(.debug, "repl_abort", [("node", "\(nodeId)"), ("epoch", "\(latest.epoch)"),
                                                                  ("round", "\(latest.id)"), ("reason", reason)])),
                             .aborted(round: latest.id, reason: reason)]
        out += told.sorted().map { .send(to: $0, .abort(epoch: latest.epoch, round: latest.id)) }
        return out
    }
}
