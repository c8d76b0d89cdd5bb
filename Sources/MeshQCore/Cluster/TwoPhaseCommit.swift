// TwoPhaseCommit: one replication round, coordinator and participant sides.
// The coordinator sends PREPARE(epoch, round, entries) to the live peers and
// persists the entries itself; each participant that accepts persists them and
// votes yes. With a majority of yes votes (the coordinator's own durable copy
// included) the round commits: the coordinator answers clients and broadcasts
// COMMIT. Without one by the deadline (commit_timeout_ms) it aborts: ABORT is
// broadcast and clients get ERR NOQUORUM; nothing was acknowledged, so a retry
// is safe. A participant refuses PREPARE from an epoch older than the newest
// it has seen (fencing a deposed leader). Entries prepared but never decided
// are settled by the next leader's recovery, never by a local timer alone.

public final class TwoPhaseCommit {
    public enum Message: Equatable, Sendable {
        case prepare(epoch: UInt64, round: UInt64, first: UInt64, last: UInt64)
        case vote(epoch: UInt64, round: UInt64, ok: Bool)
        case commit(epoch: UInt64, round: UInt64, last: UInt64)
        case abort(epoch: UInt64, round: UInt64)
    }

    public enum Output: Equatable, Sendable {
        case send(to: Int, Message)
        case committed(round: UInt64, through: UInt64)
        case aborted(round: UInt64)
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
    public var deadline: Int64? { round?.deadline }

    // MARK: coordinator

    public func begin(round id: UInt64, epoch: UInt64, first: UInt64, last: UInt64,
                      participants: Set<Int>, now: Int64, timeoutMs: Int) -> [Output] {
        precondition(round == nil, "a round is already running")
        let peers = participants.subtracting([nodeId])
        round = Round(id: id, epoch: epoch, first: first, last: last, participants: peers,
                      deadline: now + Int64(timeoutMs))
        return peers.sorted().map { .send(to: $0, .prepare(epoch: epoch, round: id, first: first, last: last)) }
    }

    /// The coordinator's own copy of the round's entries is durable.
    public func localDurable() -> [Output] {
        round?.localDurable = true
        return decide()
    }

    public func receive(from: Int, _ msg: Message) -> [Output] {
        guard case .vote(let e, let id, let ok) = msg, var r = round, r.id == id, r.epoch == e,
              r.participants.contains(from) else { return [] }
        if ok { r.yes.insert(from) } else { r.no.insert(from) }
        round = r
        return decide()
    }

    /// A participant died: its vote will not come.
    public func peerDown(_ id: Int) -> [Output] {
        guard var r = round, r.participants.contains(id), !r.yes.contains(id) else { return [] }
        r.no.insert(id)
        round = r
        return decide()
    }

    public func tick(now: Int64) -> [Output] {
        guard let r = round, now >= r.deadline else { return [] }
        return abort(r, reason: "timeout")
    }

    private func decide() -> [Output] {
        guard let r = round else { return [] }
        let yes = r.yes.count + (r.localDurable ? 1 : 0)
        if yes >= majority && r.localDurable {
            round = nil
            var out: [Output] = [.log(LogEvent(.debug, "repl_commit", [("node", "\(nodeId)"), ("epoch", "\(r.epoch)"),
                                                                       ("round", "\(r.id)"), ("commit", "\(r.last)")])),
                                 .committed(round: r.id, through: r.last)]
            out += r.participants.sorted().map { .send(to: $0, .commit(epoch: r.epoch, round: r.id, last: r.last)) }
            return out
        }
        // Even every outstanding vote could not make a majority: give up now.
        let possible = 1 + r.participants.count - r.no.count
        if possible < majority { return abort(r, reason: "refused") }
        return []
    }

    private func abort(_ r: Round, reason: String) -> [Output] {
        round = nil
        var out: [Output] = [.log(LogEvent(.debug, "repl_abort", [("node", "\(nodeId)"), ("epoch", "\(r.epoch)"),
                                                                  ("round", "\(r.id)"), ("reason", reason)])),
                             .aborted(round: r.id)]
        out += r.participants.sorted().map { .send(to: $0, .abort(epoch: r.epoch, round: r.id)) }
        return out
    }

    // MARK: participant

    /// Whether to accept a PREPARE from a leader of `epoch` (then persist and
    /// vote yes); a stale leader is refused, and a newer epoch is remembered.
    public func acceptPrepare(epoch: UInt64) -> Bool {
        guard epoch >= promisedEpoch else { return false }
        promisedEpoch = epoch
        return true
    }

    /// A new leader was accepted: older epochs are fenced from now on.
    public func promise(epoch: UInt64) {
        promisedEpoch = max(promisedEpoch, epoch)
    }
}
