// LeaderMatch: a follower's knowledge of the leader it replicates: that
// leader's epoch, how far our log is known to match its log, and the newest
// round seen from it. A leader's commit point applies here only up to
// `through` (beyond, our entries may still be another leader's), and an
// ABORT counts only for that leader's latest round.
// Invariant: `through` never passes what this node appended or kept after
// checking against that leader (prevIndex/prevEpoch matched, or its
// snapshot installed); it starts at our commit point when a new leader is
// followed, and shrinks when our log is cut.

struct LeaderMatch {
    /// The epoch whose leader we replicate.
    private(set) var epoch: UInt64 = 0
    /// Our log matches that leader's through this index.
    private(set) var through: UInt64 = 0
    /// The newest replication round seen from that leader (an ABORT of an
    /// older round is stale).
    private(set) var round: UInt64 = 0

    /// A message from the leader of `e`: true when it is a leader not
    /// followed until now (known to match only through our commit point).
    mutating func follow(epoch e: UInt64, commitIndex: UInt64) -> Bool {
        guard epoch != e else { return false }
        epoch = e
        through = commitIndex
        round = 0
        return true
    }

    mutating func saw(round r: UInt64) {
        round = max(round, r)
    }

    /// Our log now matches the leader's through `index`.
    mutating func matched(through index: UInt64) {
        through = max(through, index)
    }

    /// Our log was cut after `index`.
    mutating func cut(after index: UInt64) {
        through = min(through, index)
    }
}
