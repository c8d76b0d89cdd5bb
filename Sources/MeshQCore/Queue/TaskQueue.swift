// TaskQueue: the replicated queue state (every committed, un-acked task) plus
// the leader-local lease overlay. Ready tasks come out in task-id order: fresh
// tasks arrive in increasing id order and wait in a deque; a task whose lease
// ended goes into a min-heap, and the next ready task is the smaller head of
// the two, so a returned task is served ahead of younger ones.
// Invariant: every task is in exactly one state (ready, leased, acking), and a
// ready task is in exactly one of the two orderings.
import DequeModule
import HeapModule

public struct TaskQueue: Sendable {
    public enum State: Sendable { case ready, leased, acking }

    struct Entry: Sendable {
        var task: QueuedTask
        var state: State
        var queued: Bool
    }

    private var tasks: [UInt64: Entry] = [:]
    private var fresh = Deque<UInt64>()
    private var returned = Heap<UInt64>()
    public private(set) var leases = LeaseTable()
    public private(set) var readyCount = 0
    /// Payload bytes held, for max_memory_mb.
    public private(set) var payloadBytes = 0
    /// Highest task id ever applied: ids are never reused.
    public private(set) var highestTaskId: UInt64 = 0

    public init() {}

    public var count: Int { tasks.count }
    public var leasedCount: Int { leases.count }

    public func task(_ id: UInt64) -> QueuedTask? { tasks[id]?.task }
    public func state(of id: UInt64) -> State? { tasks[id]?.state }

    /// Every task, in id order (snapshots).
    public func allTasks() -> [QueuedTask] {
        tasks.values.map(\.task).sorted { $0.id < $1.id }
    }

    /// Every task, unordered: O(n) with no sort (a compaction sorts off the loop).
    public func tasksInAnyOrder() -> [QueuedTask] {
        tasks.values.map(\.task)
    }

    /// Recovery from a snapshot: ids at or below this were used before.
    public mutating func observeTaskId(_ id: UInt64) {
        highestTaskId = max(highestTaskId, id)
    }

    // MARK: replicated changes (applied from committed log entries)

    public mutating func apply(enqueue t: QueuedTask) {
        // One hash lookup (a restart applies a million of these in a row).
        guard Self.insertIfAbsent(&tasks[t.id], Entry(task: t, state: .ready, queued: true)) else { return }
        highestTaskId = max(highestTaskId, t.id)
        payloadBytes += t.payload.count
        readyCount += 1
        enterReadyOrder(t.id)
    }

    private static func insertIfAbsent(_ slot: inout Entry?, _ e: Entry) -> Bool {
        guard slot == nil else { return false }
        slot = e
        return true
    }

    /// Room for `n` tasks in all (a restart knows how many it will apply).
    public mutating func reserveCapacity(_ n: Int) {
        tasks.reserveCapacity(n)
        fresh.reserveCapacity(n)
    }

    /// Removes a task for good; returns whether it existed.
    @discardableResult
    public mutating func apply(ack id: UInt64) -> Bool {
        guard let e = tasks.removeValue(forKey: id) else { return false }
        payloadBytes -= e.task.payload.count
        switch e.state {
        case .ready: readyCount -= 1
        case .leased: leases.release(id)
        case .acking: break
        }
        return true
    }

    // MARK: leader-local changes

    /// Leases the oldest ready task.
    public mutating func leaseNext(owner: String, deadline: Int64) -> QueuedTask? {
        while let id = popReadyCandidate() {
            guard var e = tasks[id] else { continue }
            e.queued = false
            guard e.state == .ready else {
                tasks[id] = e
                continue
            }
            e.state = .leased
            tasks[id] = e
            readyCount -= 1
            leases.grant(id, owner: owner, deadline: deadline)
            return e.task
        }
        return nil
    }

    /// NACK: a leased task is ready again at once.
    public mutating func release(_ id: UInt64) -> Bool {
        guard let e = tasks[id], e.state == .leased else { return false }
        leases.release(id)
        makeReady(id)
        return true
    }

    /// Leases that ran out; their tasks are ready again.
    public mutating func expireLeases(now: Int64) -> [UInt64] {
        let ids = leases.expire(now: now)
        for id in ids where tasks[id]?.state == .leased { makeReady(id) }
        return ids
    }

    public mutating func nextLeaseDeadline() -> Int64? { leases.nextDeadline() }

    /// An ACK is being replicated: the task must not be handed out meanwhile.
    public mutating func markAcking(_ id: UInt64) -> Bool {
        guard var e = tasks[id], e.state != .acking else { return false }
        if e.state == .ready { readyCount -= 1 }
        if e.state == .leased { leases.release(id) }
        e.state = .acking
        tasks[id] = e
        return true
    }

    /// The ACK did not commit: the task is ready again.
    public mutating func unmarkAcking(_ id: UInt64) {
        guard let e = tasks[id], e.state == .acking else { return }
        makeReady(id)
    }

    /// Leases are leader-local: a new leadership starts with every task ready.
    public mutating func releaseAllLeases() {
        for (id, e) in tasks where e.state == .leased { makeReady(id) }
        leases.removeAll()
    }

    private mutating func makeReady(_ id: UInt64) {
        guard var e = tasks[id] else { return }
        e.state = .ready
        tasks[id] = e
        readyCount += 1
        pushReady(id)
    }

    private mutating func pushReady(_ id: UInt64) {
        guard var e = tasks[id], !e.queued else { return }
        e.queued = true
        tasks[id] = e
        enterReadyOrder(id)
    }

    /// A fresh id goes to the back of the deque; an older one into the heap.
    private mutating func enterReadyOrder(_ id: UInt64) {
        if let last = fresh.last, id < last {
            returned.insert(id)
        } else {
            fresh.append(id)
        }
    }

    private mutating func popReadyCandidate() -> UInt64? {
        switch (fresh.first, returned.min) {
        case (nil, nil): return nil
        case (let f?, nil): _ = f; return fresh.removeFirst()
        case (nil, _?): return returned.removeMin()
        case (let f?, let r?): return r < f ? returned.removeMin() : fresh.removeFirst()
        }
    }
}
