// EpochFence: the participant's side of replication fencing. A node
// remembers the newest epoch it has promised: by voting for a candidate of
// that epoch, by accepting that epoch's leader, or by leading it. Entries,
// snapshots and aborts from a leader of an older epoch are refused, and that
// leader's heartbeats are answered with the newer epoch, so a deposed leader
// learns it was deposed and cannot commit through a node that may already
// help a newer leader. The coordinator's side, which counts votes, is
// TwoPhaseCommit; the fence lives for the node's lifetime, whatever its role.
// Invariant: `promised` never decreases, and nothing below it is accepted.
// (NodeCore writes the promise to the vote file before acknowledging what
// it accepted: see `persistPromiseIfRaised`.)

public struct EpochFence: Sendable, Equatable {
    /// The newest epoch promised; messages of older leaders are refused.
    public private(set) var promised: UInt64

    public init(promised: UInt64 = 0) { self.promised = promised }

    /// Whether to accept a leader's message of `epoch` (entries, a snapshot,
    /// a chunk); accepting a newer epoch promises it.
    public mutating func accept(epoch: UInt64) -> Bool {
        guard epoch >= promised else { return false }
        promised = epoch
        return true
    }

    /// A vote, a followed leader or our own leadership: older epochs are
    /// fenced from now on.
    public mutating func promise(epoch: UInt64) {
        promised = max(promised, epoch)
    }
}
