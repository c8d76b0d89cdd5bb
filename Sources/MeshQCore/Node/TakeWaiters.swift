// TakeWaiters: blocked DEQUEUE and TAKE calls, one WaiterQueue per list of
// queues asked for (a DEQUEUE waits on ["default"]). Within a list waiters
// are served first come, first served; a list is served only when one of its
// queues has a ready task, so a waiter on an empty queue never holds up one
// on a busy queue.
// Invariant: no list's WaiterQueue is kept empty; a target waits in at most
// one list.

public struct TakeWaiters: Sendable {
    private var lists: [[String]: WaiterQueue] = [:]

    public init() {}

    public var count: Int { lists.values.reduce(0) { $0 + $1.count } }

    /// The lists of queues someone waits on.
    public var queueLists: [[String]] { Array(lists.keys) }

    public mutating func add(_ w: WaiterQueue.Waiter, queues: [String]) {
        lists[queues, default: WaiterQueue()].add(w)
    }

    /// The longest-waiting waiter on this list, removed.
    public mutating func popFirst(queues: [String]) -> WaiterQueue.Waiter? {
        guard let w = lists[queues]?.popFirst() else { return nil }
        if lists[queues]?.count == 0 { lists[queues] = nil }
        return w
    }

    /// Puts a waiter back at its list (it could not be served after all).
    public mutating func putBack(_ w: WaiterQueue.Waiter, queues: [String]) {
        add(w, queues: queues)
    }

    public mutating func expire(now: Int64) -> [WaiterQueue.Waiter] {
        var out: [WaiterQueue.Waiter] = []
        for key in Array(lists.keys) {
            out += lists[key]!.expire(now: now)
            if lists[key]!.count == 0 { lists[key] = nil }
        }
        return out.sorted { ($0.deadline, $0.target) < ($1.deadline, $1.target) }
    }

    public mutating func nextDeadline() -> Int64? {
        var best: Int64?
        for key in Array(lists.keys) {
            if let d = lists[key]!.nextDeadline() { best = min(best ?? d, d) }
        }
        return best
    }

    public mutating func remove(session: UInt64) {
        for key in Array(lists.keys) {
            lists[key]!.remove(session: session)
            if lists[key]!.count == 0 { lists[key] = nil }
        }
    }

    public mutating func removeAll() -> [WaiterQueue.Waiter] {
        defer { lists.removeAll() }
        return lists.keys.sorted { $0.joined(separator: ",") < $1.joined(separator: ",") }.flatMap { lists[$0]!.removeAll() }
    }
}
