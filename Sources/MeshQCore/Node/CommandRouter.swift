// CommandRouter: where a client command waits while it is not served here.
// Held: commands that arrived while no leader was reachable, in arrival
// order, each with a deadline (at which NodeCore parks an ENQUEUE in the
// mailbox or answers NOLEADER). Forwards: commands relayed to the leader, by
// relay id, each with a deadline by which the leader's answer must come
// (a message or its reply lost with a link); relay ids never repeat across
// restarts (the driver picks a random base). Seen relays: on the leader, the
// relays already taken (the last 100,000), so a duplicated message is not
// applied twice.
// Invariant: every held command and every forward is answered exactly once:
// dispatched, expired, or failed when its leader is lost. The router only
// keeps the state; NodeCore decides and answers.
import DequeModule

struct CommandRouter {
    /// A command waiting for a leader to be reachable.
    struct Held {
        var command: ClientCommand
        var target: ReplyTarget
        var owner: String
        var wallMs: Int64
        var deadline: Int64
    }

    /// A command relayed to `leader` for `target`.
    struct Forward {
        var target: ReplyTarget
        var leader: Int
    }

    private struct RelayKey: Hashable { var from: Int; var id: UInt64 }

    private(set) var held = Deque<Held>()
    private var forwards: [UInt64: Forward] = [:]
    /// Each forward's deadline, by relay id (removed as it is settled).
    private var forwardDeadlines = DeadlineSet<UInt64>()
    private var seenRelays: Set<RelayKey> = []
    private var seenRelayOrder = Deque<RelayKey>()
    private var nextForwardId: UInt64

    init(relayIdBase: UInt64) {
        nextForwardId = relayIdBase
    }

    var forwardCount: Int { forwards.count }

    /// The earliest hold or forward deadline.
    var nextDeadline: Int64? {
        [held.first?.deadline, forwardDeadlines.first?.deadline].compactMap { $0 }.min()
    }

    // MARK: held commands

    mutating func hold(_ h: Held) {
        held.append(h)
    }

    /// The oldest held command was dispatched.
    mutating func removeFirstHeld() {
        held.removeFirst()
    }

    /// Held commands whose deadline has come, oldest first.
    mutating func expireHeld(now: Int64) -> [Held] {
        var out: [Held] = []
        while let h = held.first, h.deadline <= now { out.append(held.removeFirst()) }
        return out
    }

    /// This node stopped leading: the commands other nodes relayed to it
    /// and that it held (while recovering) go back unapplied. Held past
    /// this leadership, they could apply under a later one after their
    /// relaying node had already answered its client.
    mutating func takeHeldForwarded() -> [Held] {
        let out = Array(held.filter { $0.target.isForwarded })
        held.removeAll { $0.target.isForwarded }
        return out
    }

    /// A client connection closed: its held commands go.
    /// Every held command (the node halts).
    mutating func takeAllHeld() -> [Held] {
        defer { held.removeAll() }
        return Array(held)
    }

    mutating func dropHeld(session: UInt64) {
        held.removeAll { $0.target.session == session }
    }

    // MARK: forwards

    /// Records a command relayed to `leader`; returns its relay id.
    mutating func forward(_ target: ReplyTarget, to leader: Int, deadline: Int64) -> UInt64 {
        let id = nextForwardId
        nextForwardId &+= 1
        forwards[id] = Forward(target: target, leader: leader)
        forwardDeadlines.schedule(id, at: deadline)
        return id
    }

    /// The answer to relay `id` came from `from`: the client to answer, if it
    /// is the leader the command went to (the relay is settled either way).
    mutating func answered(_ id: UInt64, from: Int) -> ReplyTarget? {
        guard let f = forwards.removeValue(forKey: id) else { return nil }
        forwardDeadlines.remove(id)
        return f.leader == from ? f.target : nil
    }

    /// Forwards whose answer did not come in time, by deadline.
    mutating func expireForwards(now: Int64) -> [Forward] {
        forwardDeadlines.popExpired(now: now).compactMap { forwards.removeValue(forKey: $0) }
    }

    /// Forwards to leaders that went away, by relay id.
    mutating func failForwards(where lost: (Int) -> Bool) -> [Forward] {
        var out: [Forward] = []
        for (id, f) in forwards.sorted(by: { $0.key < $1.key }) where lost(f.leader) {
            forwards.removeValue(forKey: id)
            forwardDeadlines.remove(id)
            out.append(f)
        }
        return out
    }

    // MARK: relays taken (leader side)

    /// True the first time relay `id` from `from` is seen.
    mutating func firstSight(relay id: UInt64, from: Int) -> Bool {
        let key = RelayKey(from: from, id: id)
        guard seenRelays.insert(key).inserted else { return false }
        seenRelayOrder.append(key)
        if seenRelayOrder.count > 100_000 { seenRelays.remove(seenRelayOrder.removeFirst()) }
        return true
    }
}
