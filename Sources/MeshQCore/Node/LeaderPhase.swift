// LeaderPhase: where a leadership stands, from winning the election to
// serving clients. A new leader first adopts the log of the voter with the
// best (last epoch, last index) when that log is ahead of its own
// (`recovering`), then commits a first entry of its own epoch, which commits
// everything adopted before it (`committingFirst`), and serves once that
// entry committed and no older leader's lease can still be in force
// (`serving`; LeaderState keeps the lease end, `servingNotBefore`, which is
// known from the election before any phase starts).
// Invariant: a phase exists only inside a LeaderState (a node that does not
// lead has none); only `serving` lets it answer clients from its state, and
// no replication round starts while `recovering`.

enum LeaderPhase {
    case recovering(Recovery)
    /// The epoch's first entry is at `readyIndex`.
    case committingFirst(readyIndex: UInt64)
    case serving
}

/// Recovering from the best voter: ask again at `nextAsk` (a lost request
/// or reply), give the leadership up at `deadline`. `request` names the
/// latest ask (a reply must echo it and this epoch), `position` is where
/// the voter said its log ends (a reply ending before it is refused).
struct Recovery {
    var from: Int
    var deadline: Int64
    var nextAsk: Int64
    var request: UInt64
    var position: LogPosition
}
