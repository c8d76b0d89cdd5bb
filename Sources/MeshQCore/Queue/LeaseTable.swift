// LeaseTable: which tasks are leased, to whom, and until when. Deadlines sit in
// a DeadlineSet (an indexed min-heap), so finding what expired costs O(log n)
// per expiry and nothing per tick, and a lease that ends early (ACK, NACK)
// leaves the heap at once, in O(log n): memory follows the live leases.
// Invariant: a task is in `leases` exactly when it is in `deadlines`, with the
// same deadline. Expiry order is (deadline, task id).

public struct LeaseTable: Sendable {
    public struct Lease: Equatable, Sendable {
        public var deadline: Int64
        public var owner: String
    }

    private var leases: [UInt64: Lease] = [:]
    private var deadlines = DeadlineSet<UInt64>()

    public init() {}

    public var count: Int { leases.count }

    public func lease(of taskId: UInt64) -> Lease? { leases[taskId] }

    public func isLeased(_ taskId: UInt64) -> Bool { leases[taskId] != nil }

    /// Leases `taskId` (again: a new grant replaces an earlier deadline).
    public mutating func grant(_ taskId: UInt64, owner: String, deadline: Int64) {
        leases[taskId] = Lease(deadline: deadline, owner: owner)
        deadlines.schedule(taskId, at: deadline)
    }

    /// Ends a lease (ACK or NACK); returns whether there was one.
    @discardableResult
    public mutating func release(_ taskId: UInt64) -> Bool {
        guard leases.removeValue(forKey: taskId) != nil else { return false }
        deadlines.remove(taskId)
        return true
    }

    /// Removes and returns the tasks whose lease ended at or before `now`, oldest first.
    public mutating func expire(now: Int64) -> [UInt64] {
        let out = deadlines.popExpired(now: now)
        for id in out { leases.removeValue(forKey: id) }
        return out
    }

    /// The earliest deadline, for the node's single wake-up timer. (Mutating
    /// only for the callers written against the lazy heap it replaced.)
    public mutating func nextDeadline() -> Int64? { deadlines.first?.deadline }

    /// Drops every lease (a leader stepping down: leases are leader-local).
    public mutating func removeAll() {
        leases.removeAll()
        deadlines.removeAll()
    }
}
