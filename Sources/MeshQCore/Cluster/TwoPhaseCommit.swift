// TwoPhaseCommit: the coordinator's side of one replication round, and the
// participant's fencing. The coordinator sends PREPARE(epoch, round, first,
// last) to the live peers (the node attaches the entries each peer lacks) and
// persists the entries itself. A participant that accepts persists them and
// acknowledges "durable and matching the leader through index i"; an
// acknowledgement counts as a yes vote for every round ending at or below i,
// so a lagging follower's catch-up can complete a round too. With a majority
// of yes votes (the coordinator's own durable copy included) the round
// commits: the coordinator answers clients and broadcasts COMMIT. Without one
// by the deadline (commit_timeout_ms), or once a majority is impossible, it
// aborts: clients get ERR NOQUORUM. A participant refuses PREPARE from an
// epoch older than the newest it has promised (fencing a deposed leader).
// Entries prepared but never decided are settled by the next leader's
// recovery, never by a local timer alone.
// A value: its owner changes it only through the mutating inputs below.

public struct TwoPhaseCommit: Sendable {
    public enum Message: Equatable, Sendable {
        case prepare(epoch: UInt64, round: UInt64, first: UInt64, last: UInt64)
        case commit(epoch: UInt64, round: UInt64, last: UInt64)
        case abort(epoch: UInt64, round: UInt64)
    }

    public enum Output: Equatable, Sendable {
        case send(to: Int, Message)
        case committed(round: UInt64, through: UInt64)
        case aborted(round: UInt64, reason: String)
        case log(LogEvent)
    }

    private struct Round {
        var id: UInt64
        var epoch: UInt64
        var first: UInt64
        var last: UInt64
        var participants: Set<Int>
        var yes: Set<Int> = []
        var no: Set<Int> = []
        var localDurable = false
        var deadline: Int64
    }

    public let nodeId: Int
    public let clusterSize: Int
    private var round: Round?
    /// Participant side: the newest epoch seen; PREPAREs below it are refused.
    public private(set) var promisedEpoch: UInt64

    public init(nodeId: Int, clusterSize: Int, promisedEpoch: UInt64 = 0) {
        self.nodeId = nodeId
        self.clusterSize = clusterSize
        self.promisedEpoch = promisedEpoch
    }

    public var majority: Int { clusterSize / 2 + 1 }
    public var inRound: Bool { round != nil }
    public var roundId: UInt64? { round?.id }
    public var deadline: Int64? { round?.deadline }

    // MARK: coordinator

    public mutating func begin(round id: UInt64, epoch: UInt64, first: UInt64, last: UInt64,
                      participants: Set<Int>, now: Int64, timeoutMs: Int) -> [Output] {
        precondition(round == nil, "a round is already running")
        let peers = participants.subtracting([nodeId])
        round = Round(id: id, epoch: epoch, first: first, last: last, participants: peers,
                      deadline: now + Int64(timeoutMs))
        return peers.sorted().map { .send(to: $0, .prepare(epoch: epoch, round: id, first: first, last: last)) }
    }

    /// The coordinator's own copy is durable through `index`.
    public mutating func localDurable(through index: UInt64) -> [Output] {
        guard var r = round, index >= r.last else { return [] }
        r.localDurable = true
        round = r
        return decide()
    }

    /// A participant of `epoch` holds the leader's log durably through `index`.
    public mutating func acknowledged(from: Int, epoch: UInt64, through index: UInt64) -> [Output] {
        guard var r = round, r.epoch == epoch, r.participants.contains(from), index >= r.last else { return [] }
        r.yes.insert(from)
        r.no.remove(from)
        round = r
        return decide()
    }

    /// A participant refused the round (it promised a newer epoch).
    public mutating func refused(from: Int, epoch: UInt64) -> [Output] {
        guard var r = round, r.participants.contains(from), !r.yes.contains(from) else { return [] }
        r.no.insert(from)
        round = r
        return decide()
    }

    /// A participant died: its vote will not come.
    public mutating func peerDown(_ id: Int) -> [Output] {
        guard var r = round, r.participants.contains(id), !r.yes.contains(id) else { return [] }
        r.no.insert(id)
        round = r
        return decide()
    }

    public mutating func tick(now: Int64) -> [Output] {
        guard let r = round, now >= r.deadline else { return [] }
        return abort(r, reason: "timeout")
    }

    /// The coordinator stopped leading: the round ends undecided (the next
    /// leader's recovery settles its entries).
    public mutating func abandon() {
        round = nil
    }

    private mutating func decide() -> [Output] {
        guard let r = round else { return [] }
        let yes = r.yes.count + (r.localDurable ? 1 : 0)
        if yes >= majority && r.localDurable {
            round = nil
            var out: [Output] = [.log(LogEvent(.debug, "repl_commit", [("node", "\(nodeId)"), ("epoch", "\(r.epoch)"),
                                                                       ("round", "\(r.id)"), ("commit", "\(r.last)"),
                                                                       ("entries", "\(r.last - r.first + 1)"),
                                                                       ("votes", "\(yes)")])),
                                 .committed(round: r.id, through: r.last)]
            out += r.participants.sorted().map { .send(to: $0, .commit(epoch: r.epoch, round: r.id, last: r.last)) }
            return out
        }
        // Even every outstanding vote could not make a majority: give up now.
        let possible = 1 + r.participants.count - r.no.count
        if possible < majority { return abort(r, reason: "refused") }
        return []
    }

    private mutating func abort(_ r: Round, reason: String) -> [Output] {
        round = nil
        var out: [Output] = [.log(LogEvent(.debug, "repl_abort", [("node", "\(nodeId)"), ("epoch", "\(r.epoch)"),
                                                                  ("round", "\(r.id)"), ("reason", reason)])),
                             .aborted(round: r.id, reason: reason)]
        out += r.participants.sorted().map { .send(to: $0, .abort(epoch: r.epoch, round: r.id)) }
        return out
    }

    // MARK: participant

    /// Whether to accept a PREPARE from a leader of `epoch` (then persist and
    /// acknowledge); a stale leader is refused, and a newer epoch is remembered.
    public mutating func acceptPrepare(epoch: UInt64) -> Bool {
        guard epoch >= promisedEpoch else { return false }
        promisedEpoch = epoch
        return true
    }

    /// A new leader was accepted: older epochs are fenced from now on.
    public mutating func promise(epoch: UInt64) {
        promisedEpoch = max(promisedEpoch, epoch)
    }
}
