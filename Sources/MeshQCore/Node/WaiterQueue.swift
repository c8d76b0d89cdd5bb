// WaiterQueue: DEQUEUE calls blocked until a task is ready or their wait ends.
// Served first-come first-served; deadlines in a min-heap so a tick costs
// nothing when no wait has ended. A waiter that is served, or whose connection
// closed, leaves a stale heap entry that is skipped.
import DequeModule
import HeapModule

public struct WaiterQueue: Sendable {
    public struct Waiter: Sendable, Equatable {
        public var ref: ClientRef
        public var owner: String
        public var deadline: Int64
    }

    private struct Deadline: Comparable, Sendable {
        var at: Int64
        var ref: ClientRef
        static func < (a: Deadline, b: Deadline) -> Bool {
            (a.at, a.ref.session, a.ref.seq) < (b.at, b.ref.session, b.ref.seq)
        }
    }

    private var order = Deque<ClientRef>()
    private var waiting: [ClientRef: Waiter] = [:]
    private var deadlines = Heap<Deadline>()

    public init() {}

    public var count: Int { waiting.count }

    public mutating func add(_ w: Waiter) {
        waiting[w.ref] = w
        order.append(w.ref)
        deadlines.insert(Deadline(at: w.deadline, ref: w.ref))
    }

    /// The longest-waiting live waiter, removed.
    public mutating func popFirst() -> Waiter? {
        while let ref = order.popFirst() {
            if let w = waiting.removeValue(forKey: ref) { return w }
        }
        return nil
    }

    /// Waiters whose wait ended at or before `now`, removed.
    public mutating func expire(now: Int64) -> [Waiter] {
        var out: [Waiter] = []
        while let top = deadlines.min, top.at <= now {
            deadlines.removeMin()
            if let w = waiting.removeValue(forKey: top.ref) { out.append(w) }
        }
        return out
    }

    public mutating func nextDeadline() -> Int64? {
        while let top = deadlines.min {
            if waiting[top.ref] != nil { return top.at }
            deadlines.removeMin()
        }
        return nil
    }

    /// A connection closed: its waiters go without a reply.
    public mutating func remove(session: UInt64) {
        for ref in waiting.keys where ref.session == session { waiting.removeValue(forKey: ref) }
        if waiting.isEmpty {
            order.removeAll()
            deadlines = Heap()
        }
    }

    /// Every waiter, removed (a leader stepping down answers them).
    public mutating func removeAll() -> [Waiter] {
        var out: [Waiter] = []
        while let w = popFirst() { out.append(w) }
        deadlines = Heap()
        return out
    }
}
