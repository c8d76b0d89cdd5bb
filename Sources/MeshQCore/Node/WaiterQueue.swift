// WaiterQueue: DEQUEUE/TAKE calls on one list of queues blocked until a task
// is ready or their wait ends (TakeWaiters keeps one per list).
// Served first-come first-served: each waiter gets an arrival number and the
// next one served is the smallest, whatever its deadline; deadlines only end
// waits. Both orders are DeadlineSets (indexed min-heaps), so serving,
// expiring, and dropping a closed connection's waiters (through the
// per-session index) cost O(log n) each, a tick costs nothing when no wait
// has ended, and nothing stale stays behind.
// Invariant: a target is in `waiting`, `arrivals` and `deadlines` (and, when
// it is a local client's, in `bySession[session]`) all together or in none.
// Waits that end together expire in (deadline, target) order.

public struct WaiterQueue: Sendable {
    public struct Waiter: Sendable, Equatable {
        public var target: ReplyTarget
        public var owner: String
        public var deadline: Int64
        /// Answered with JOB (TAKE) rather than TASK (DEQUEUE).
        public var job: Bool

        public init(target: ReplyTarget, owner: String, deadline: Int64, job: Bool = false) {
            self.target = target
            self.owner = owner
            self.deadline = deadline
            self.job = job
        }
    }

    private var waiting: [ReplyTarget: Waiter] = [:]
    /// Arrival order: the "deadline" is an arrival number.
    private var arrivals = DeadlineSet<ReplyTarget>()
    private var deadlines = DeadlineSet<ReplyTarget>()
    private var bySession: [UInt64: Set<UInt64>] = [:]
    private var nextArrival: Int64 = 0

    public init() {}

    public var count: Int { waiting.count }

    /// Joins the back of the line (a waiter added again keeps its place).
    public mutating func add(_ w: Waiter) {
        waiting[w.target] = w
        if !arrivals.contains(w.target) {
            arrivals.schedule(w.target, at: nextArrival)
            nextArrival += 1
        }
        deadlines.schedule(w.target, at: w.deadline)
        if case .session(let r) = w.target { bySession[r.session, default: []].insert(r.seq) }
    }

    /// The longest-waiting waiter, removed.
    public mutating func popFirst() -> Waiter? {
        guard let first = arrivals.first else { return nil }
        return take(first.key)
    }

    /// Waiters whose wait ended at or before `now`, removed.
    public mutating func expire(now: Int64) -> [Waiter] {
        deadlines.popExpired(now: now).compactMap { take($0) }
    }

    public mutating func nextDeadline() -> Int64? { deadlines.first?.deadline }

    /// A connection closed: its waiters go without a reply.
    public mutating func remove(session: UInt64) {
        guard let seqs = bySession[session] else { return }
        for seq in seqs { _ = take(.session(ClientRef(session: session, seq: seq))) }
    }

    /// Every waiter, removed, longest-waiting first (a leader stepping down answers them).
    public mutating func removeAll() -> [Waiter] {
        let out = arrivals.sorted.compactMap { waiting[$0.key] }
        waiting.removeAll()
        arrivals.removeAll()
        deadlines.removeAll()
        bySession.removeAll()
        return out
    }

    /// Entries held by the indexes, for tests: equals `count` (nothing stale).
    var indexedEntries: Int { arrivals.count + deadlines.count + bySession.values.reduce(0) { $0 + $1.count } }

    private mutating func take(_ target: ReplyTarget) -> Waiter? {
        guard let w = waiting.removeValue(forKey: target) else { return nil }
        arrivals.remove(target)
        deadlines.remove(target)
        if case .session(let r) = target, var seqs = bySession.removeValue(forKey: r.session) {
            seqs.remove(r.seq)
            if !seqs.isEmpty { bySession[r.session] = seqs }
        }
        return w
    }
}
