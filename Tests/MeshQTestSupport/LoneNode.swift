// LoneNode: a NodeCore of a three-node cluster driven by hand, one message at
// a time, for tests that look at a single node's answer to a single input.
// Invariant: it is started and its start-up effects are taken, so a test's
// `takeEffects()` holds only what its own inputs caused.
import MeshQCore

public enum LoneNode {
    /// Node `id` of members 1-3, from an empty disk, started at time 0.
    public static func start(_ id: Int, votedEpoch: UInt64 = 0, promisedEpoch: UInt64 = 0, relayIdBase: UInt64 = 1,
                             rejoining: Bool = false) -> NodeCore {
        let n = NodeCore(nodeId: id, memberIds: [1, 2, 3], settings: ClusterSettings(), snapshot: nil, records: [],
                         votedEpoch: votedEpoch, promisedEpoch: promisedEpoch, relayIdBase: relayIdBase,
                         rejoining: rejoining)
        n.start(now: 0)
        _ = n.takeEffects()
        return n
    }
}

extension NodeCore {
    /// A leader of `epoch` sends `entries` after an empty prefix (round 1, commit 0).
    public func receiveFirstEntries(_ entries: [LogEntry], from leader: Int, epoch: UInt64, now: Int64) {
        peerMessage(PeerEnvelope(from: leader, to: nodeId, lamport: 1, epoch: epoch,
                                 body: .replicate(.init(round: 1, prevIndex: 0, prevEpoch: 0, commit: 0, entries: entries))),
                    now: now, wallMs: now)
    }
}
