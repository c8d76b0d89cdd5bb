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
// A node that starts with an empty log in a cluster (a new data_dir, or a
// wiped one: it cannot tell) starts this way too, since a wiped node may have
// acknowledged entries it no longer holds. It may also find the cluster new:
// it asks every peer (`logProbe`) for its log's last index, its latest vote
// and the epoch it promised. A peer that holds no entry and never voted or
// accepted a leader took part in no election and no commit. When such peers
// and this node make a majority, every election and every commit before this
// node started needed this node (two majorities meet); if this node was new,
// there were none, and if it was wiped, it cannot tell. So: a peer with an
// entry or a promise proves the cluster ran, and settles it for this
// incarnation (catch up from the leader); a peer that only voted proves
// nothing either way (a new cluster's first election starts while others
// still ask, and settling on it could leave every node waiting for a leader
// none will elect); and a majority of blank peers with this node makes the
// cluster new: it votes at once. What is left is a cluster that ran while
// one node never voted once, then lost another's disk while the third was
// down: with three nodes, two faults at once.
// Invariant: `reached` is true only for a target answered to this
// incarnation's probe by the leader of the epoch our log is known to match;
// `provesNewCluster` only while no peer reported entries or a promise and
// the blank peers, with this node, are a majority.

struct Rejoin {
    /// Tells this incarnation's probe from any earlier one still in flight.
    let probeId: UInt64
    /// The leader's answer: its epoch, and its last index then.
    private(set) var target: (epoch: UInt64, index: UInt64)?
    /// When to ask (again): answers and probes can be lost.
    private var nextAsk: Int64 = 0

    /// This node's log was empty when it started, and it had never
    /// promised an epoch: it may find the cluster new.
    let startedEmpty: Bool
    /// Peers that reported to this incarnation that they hold no entry and
    /// never voted or accepted a leader.
    private(set) var blankPeers: Set<Int> = []
    /// A peer holds entries, or accepted a leader once: the cluster ran.
    private(set) var clusterRan = false
    private var nextLogProbe: Int64 = 0

    init(probeId: UInt64, startedEmpty: Bool = false) {
        self.probeId = probeId
        self.startedEmpty = startedEmpty
    }

    /// Whether peers' logs may still prove the cluster new (ask them).
    var mayFindNewCluster: Bool { startedEmpty && !clusterRan }

    /// Whether to ask the peers' log lengths now.
    mutating func shouldProbeLogs(now: Int64, retryMs: Int64) -> Bool {
        guard mayFindNewCluster, now >= nextLogProbe else { return false }
        nextLogProbe = now + retryMs
        return true
    }

    var nextLogProbeAt: Int64? { mayFindNewCluster ? nextLogProbe : nil }

    /// Peer `id` holds entries through `lastIndex`, last voted in
    /// `votedEpoch` and promised `promisedEpoch`.
    mutating func reported(by id: Int, lastIndex: UInt64, votedEpoch: UInt64, promisedEpoch: UInt64) {
        if lastIndex > 0 || promisedEpoch > 0 {
            clusterRan = true
        } else if votedEpoch == 0 {
            blankPeers.insert(id)
        }
    }

    /// Peers that hold nothing and never voted or accepted a leader, with
    /// this node, are a majority of a cluster of `size`.
    func provesNewCluster(size: Int) -> Bool {
        mayFindNewCluster && blankPeers.count + 1 >= size / 2 + 1
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
