// LeaseTable: which tasks are leased, and until when. Deadlines sit in a
// min-heap, so finding what expired costs O(log n) per expiry and nothing per
// tick: a lease that ends early (ACK, NACK) leaves a stale heap entry that is
// skipped when it surfaces (its generation no longer matches).
import HeapModule

public struct LeaseTable: Sendable {
    public struct Lease: Equatable, Sendable {
        public var deadline: Int64
        public var owner: String
        fileprivate var generation: UInt64
    }

    private struct Pending: Comparable, Sendable {
        var deadline: Int64
        var taskId: UInt64
        var generation: UInt64
        static func < (a: Pending, b: Pending) -> Bool {
            (a.deadline, a.taskId) < (b.deadline, b.taskId)
        }
    }

    private var leases: [UInt64: Lease] = [:]
    private var heap = Heap<Pending>()
    private var nextGeneration: UInt64 = 1

    public init() {}

    public var count: Int { leases.count }

    public func lease(of taskId: UInt64) -> Lease? { leases[taskId] }

    public func isLeased(_ taskId: UInt64) -> Bool { leases[taskId] != nil }

    public mutating func grant(_ taskId: UInt64, owner: String, deadline: Int64) {
        let g = nextGeneration
        nextGeneration += 1
        leases[taskId] = Lease(deadline: deadline, owner: owner, generation: g)
        heap.insert(Pending(deadline: deadline, taskId: taskId, generation: g))
    }

    /// Ends a lease (ACK or NACK); returns whether there was one.
    @discardableResult
    public mutating func release(_ taskId: UInt64) -> Bool {
        leases.removeValue(forKey: taskId) != nil
    }

    /// Removes and returns the tasks whose lease ended at or before `now`, oldest first.
    public mutating func expire(now: Int64) -> [UInt64] {
        var out: [UInt64] = []
        while let top = heap.min, top.deadline <= now {
            heap.removeMin()
            if let l = leases[top.taskId], l.generation == top.generation {
                leases.removeValue(forKey: top.taskId)
                out.append(top.taskId)
            }
        }
        compactIfStale()
        return out
    }

    /// The earliest live deadline, for the node's single wake-up timer.
    public mutating func nextDeadline() -> Int64? {
        while let top = heap.min {
            if let l = leases[top.taskId], l.generation == top.generation { return top.deadline }
            heap.removeMin()
        }
        return nil
    }

    /// Drops every lease (a leader stepping down: leases are leader-local).
    public mutating func removeAll() {
        leases.removeAll()
        heap = Heap()
    }

    // Acked leases leave entries behind; rebuild when they outnumber live ones
    // so memory stays proportional to what is leased.
    private mutating func compactIfStale() {
        guard heap.count > 1024, heap.count > 4 * leases.count else { return }
        heap = Heap(leases.map { Pending(deadline: $0.value.deadline, taskId: $0.key, generation: $0.value.generation) })
    }
}
