// RoleState and LeaderState: what NodeCore does now, and what only a leader
// holds. The election decides the role (BullyElection is the source of
// truth: NodeCore moves `roleState` only when it applies the election's
// outputs, or when storage halts it); the role's case carries what that
// role needs. A leadership's state is born when the election is won and
// dropped whole when it ends, so nothing of one leadership (a batch, a
// round, a client waiting for a commit, a lease being replicated) can leak
// into the next, or into a follower.
// LeaderState is a class: NodeCore's handlers are reentrant (a commit
// answers clients, which may start the next round), so the leader's state
// is changed in place through the one reference the role holds, never
// copied out of the enum and written back.
// Invariant: `roleState` is `.leader` exactly while the election says this
// node leads (a cluster of one always leads once started), and `.halted`
// is final.
import DequeModule

enum RoleState {
    case follower
    case candidate
    case leader(LeaderState)
    /// Storage refused a write: the core answers errors until replaced.
    case halted(reason: String)
}

final class LeaderState {
    /// Where this leadership stands: recovering, committing its first
    /// entry, or serving.
    var phase: LeaderPhase
    /// It serves from its state only once an older leader's lease (renewed
    /// by a voter before it voted) has run out.
    let servingNotBefore: Int64
    /// The latest recovery request (a reply must echo it).
    var recoveryRequests: UInt64 = 0
    /// The section, the batch being built, the rounds in flight.
    var rounds: LeaderRounds
    /// Each follower's log as this leader knows it.
    var replication = LeaderReplication()
    /// Clients waiting for their entry (in the log, uncommitted) to commit.
    var awaiting = Deque<(index: UInt64, target: ReplyTarget, answer: Proposal.Answer)>()
    /// Tasks whose ACK is being replicated (a second ACK gets NOTFOUND).
    var acking: Set<UInt64> = []
    /// Tasks whose lease is being replicated: a NACK, TOUCH or BURY sent
    /// after the DEQUEUE/TAKE on the same connection finds them leased (its
    /// entry follows the lease's in the log).
    var leasing: Set<UInt64> = []
    /// Payload bytes of ENQUEUEs proposed and not yet committed (max_memory_mb).
    var pendingPayloadBytes = 0
    /// The cluster clock's offset from this node's wall clock: its last
    /// Cristian estimate of the previous leader's clock, so cluster time
    /// goes on from that leader's instead of jumping to ours.
    let clockOffsetMs: Int64

    init(rounds: LeaderRounds, servingNotBefore: Int64, clockOffsetMs: Int64) {
        self.phase = .committingFirst(readyIndex: .max)
        self.rounds = rounds
        self.servingNotBefore = servingNotBefore
        self.clockOffsetMs = clockOffsetMs
    }

    var serving: Bool {
        if case .serving = phase { return true }
        return false
    }

    var recovering: Recovery? {
        if case .recovering(let r) = phase { return r }
        return nil
    }
}
