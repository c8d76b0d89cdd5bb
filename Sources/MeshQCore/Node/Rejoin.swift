// Rejoin: a node that may have lost entries it acknowledged (its log was
// found corrupt and cut before the damage) takes no part in elections until
// it holds everything a leader had after this node came back.
//
// It asks the leader it follows for a target (`rejoinProbe` with an id of
// this incarnation); the leader answers with its log's last index when the
// probe arrived. Everything this node acknowledged before it lost its log was
// acknowledged to a leader of an epoch it had promised, and the vote file
// keeps that promise, so only leaders at least that new are followed.
// Such a leader's log holds every entry committed before it was elected,
// and everything this node acknowledged to that leader itself was in that
// leader's log before the probe. So once our log matches the leader's through the target,
// durably, nothing this node acknowledged is missing, and it counts in
// majorities again. A new leader voids the target: ask again.
// Invariant: `reached` is true only for a target answered to this
// incarnation's probe by the leader of the epoch our log is known to match.

struct Rejoin {
    /// Tells this incarnation's probe from any earlier one still in flight.
    let probeId: UInt64
    /// The leader's answer: its epoch, and its last index then.
    private(set) var target: (epoch: UInt64, index: UInt64)?
    /// When to ask (again): answers and probes can be lost.
    private var nextAsk: Int64 = 0

    init(probeId: UInt64) {
        self.probeId = probeId
    }

    /// Whether to send a probe to the leader of `epoch` now.
    mutating func shouldAsk(leaderEpoch epoch: UInt64, now: Int64, retryMs: Int64) -> Bool {
        if let t = target, t.epoch == epoch { return false }
        guard now >= nextAsk else { return false }
        nextAsk = now + retryMs
        return true
    }

    var nextWakeup: Int64? { target == nil ? nextAsk : nil }

    /// The leader of `epoch` answered probe `id`.
    mutating func answered(epoch: UInt64, id: UInt64, index: UInt64, followingEpoch: UInt64) {
        guard id == probeId, epoch == followingEpoch else { return }
        target = (epoch, index)
    }

    /// We follow a leader of another epoch: its answer is still to come.
    mutating func leaderChanged(epoch: UInt64) {
        if let t = target, t.epoch != epoch {
            target = nil
            nextAsk = 0
        }
    }

    /// Whether a durable log that matches the leader of `matchedEpoch`
    /// through `matchedThrough` holds the target.
    func reached(matchedEpoch: UInt64, matchedThrough: UInt64) -> Bool {
        guard let t = target else { return false }
        return t.epoch == matchedEpoch && matchedThrough >= t.index
    }
}
