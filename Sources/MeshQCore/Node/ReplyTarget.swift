// ReplyTarget: whom the answer to a command goes to. A client connected here
// is answered through the driver (`Effect.reply`); a command another node
// relayed is answered over the bus; a parked mailbox delivery is confirmed
// only by its commit. Waits, holds, forwards and awaiting commits all key on
// a ReplyTarget, so the three kinds share one key type and one order.
// Invariant: the order is total and fixed: every session target before every
// parked one before every forwarded one, then by (session, seq), (from, seq)
// or (from, id). Waits that end at the same instant expire in this order, so
// a run replays the same way on every build.

public enum ReplyTarget: Hashable, Comparable, Sendable {
    /// A client connected to this node: command `seq` on connection `session`.
    case session(ClientRef)
    /// A command relayed by follower `from` as relay `id`: answered over the bus.
    case forwarded(from: Int, id: UInt64)
    /// Node `from`'s parked entry `seq`: only a commit confirms it.
    case parked(from: Int, seq: UInt64)

    /// The connection this target answers on, when it is a local client.
    public var session: UInt64? {
        if case .session(let r) = self { return r.session }
        return nil
    }

    public var isForwarded: Bool {
        if case .forwarded = self { return true }
        return false
    }

    private var sortKey: (rank: Int, a: UInt64, b: UInt64) {
        switch self {
        case .session(let r): (0, r.session, r.seq)
        case .parked(let from, let seq): (1, UInt64(from), seq)
        case .forwarded(let from, let id): (2, UInt64(from), id)
        }
    }

    public static func < (x: ReplyTarget, y: ReplyTarget) -> Bool { x.sortKey < y.sortKey }
}
