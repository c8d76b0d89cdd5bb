// TaskStore: the replicated queue state — every committed, un-acked task of
// every named queue — and the views derived from it by the cluster clock.
//
// Each task's fields (QueuedTask) change only through committed log entries
// (TaskStore+Apply), so every node holds the same fields at the same index.
// Where a task stands is derived from those fields and the cluster time
// `now` (the last `advance`):
//   ready    due (readyAtMs <= now) and not leased: in its queue's ready
//            order, a HandleHeap of ids with the priority as the
//            "deadline", so the head is the smallest (priority, id);
//   delayed  readyAtMs > now, and leased: leasedUntilMs > now under the
//            leadership that granted it (leaseEpoch == epoch): both wait in
//            one HandleHeap of task timers (by the time they are ready
//            again), as beanstalkd keeps its delay and TTR heaps;
//   busy     (leader only) a change to it is being replicated, so it is
//            handed out to nobody meanwhile.
// A task is in at most one heap at a time and its StoredTask keeps its
// handle there (beanstalkd's stored heap index), so insert and remove are
// O(log n) with no id -> slot dictionary beside the task table.
// Pauses and the idempotency keys (TaskStore+Keys) are replicated too.
// Invariant: every task is in exactly one place, and each queue's counts
// equal what its places hold.

import HeapModule

public struct TaskStore: Sendable {
    public enum Place: Sendable, Equatable { case ready, delayed, leased, busy }

    /// One named queue's derived view.
    public struct Line: Sendable {
        var ready = HandleHeap<UInt64>()
        /// Ready tasks per priority: with one priority, the head is the oldest.
        var readyByPriority: [UInt32: Int] = [:]
        public internal(set) var delayed = 0
        public internal(set) var leased = 0
        public internal(set) var busy = 0
        public var readyCount: Int { ready.count }
        public var total: Int { ready.count + delayed + leased + busy }
    }

    /// Every task by id (StoredTask: the compact form). It grows a few
    /// entries per write: a table of millions moved in one step held the
    /// loop past the peers' timeout.
    var tasks = SteppedDictionary<UInt64, StoredTask>()
    /// Every queue name a task was in (since this node started), numbered.
    var names = QueueNames()
    /// Each queue's line, by its number in `names` (no task: an empty Line,
    /// storage released). Numbered, so placing a task hashes no string.
    private var lineById: [Line] = []
    var timers = HandleHeap<UInt64>()
    /// Queue name -> cluster time its pause ends (replicated).
    public internal(set) var pauses: [String: Int64] = [:]
    var keys: [DedupKey: KeyRecord] = [:]
    var keyExpiry = Heap<KeyDeadline>()
    /// The cluster time of the last `advance`.
    public private(set) var now: Int64 = 0
    /// The epoch of the latest entry applied: the leadership whose leases
    /// are in force (a new leader's first entry raises it).
    public internal(set) var epoch: UInt64 = 0
    /// The tasks placed as leased (a new leadership places them again).
    var leasedIds: Set<UInt64> = []
    /// The tasks with a busy mark (a leadership's end clears them).
    var busyIds: Set<UInt64> = []
    public private(set) var readyCount = 0
    public private(set) var leasedCount = 0
    /// Payload bytes held, for max_memory_mb.
    public internal(set) var payloadBytes = 0
    /// Highest task id ever applied: ids are never reused.
    public internal(set) var highestTaskId: UInt64 = 0

    public init() {}

    public var count: Int { tasks.count }
    public var keyCount: Int { keys.count }
    /// Every queue a task was in (since this node started).
    public var knownQueues: Set<String> { names.all }

    public func task(_ id: UInt64) -> QueuedTask? { tasks[id].map { $0.materialized(id: id, names: names) } }
    public func place(of id: UInt64) -> Place? { tasks[id]?.place }

    /// Every task, in id order (snapshots).
    public func allTasks() -> [QueuedTask] {
        tasksInAnyOrder().sorted { $0.id < $1.id }
    }

    /// Every task, unordered: O(n) with no sort (a compaction sorts off the loop).
    public func tasksInAnyOrder() -> [QueuedTask] {
        tasks.map { $0.value.materialized(id: $0.key, names: names) }
    }

    /// Recovery from a snapshot: ids at or below this were used before.
    public mutating func observeTaskId(_ id: UInt64) {
        highestTaskId = max(highestTaskId, id)
    }

    /// Room for `n` tasks in all (a restart knows how many it will apply).
    public mutating func reserveCapacity(_ n: Int) {
        tasks.reserveCapacity(n)
    }

    /// Adds a task (a PUT that committed, or a snapshot's); false when its id is here.
    @discardableResult
    mutating func insert(_ t: QueuedTask) -> Bool {
        let q = names.id(t.queue)
        guard Self.insertIfAbsent(&tasks[t.id], StoredTask(t, queue: q)) else { return false }
        highestTaskId = max(highestTaskId, t.id)
        payloadBytes += t.payload.count
        place(t.id)
        return true
    }

    private static func insertIfAbsent(_ slot: inout StoredTask?, _ e: StoredTask) -> Bool {
        guard slot == nil else { return false }
        slot = e
        return true
    }

    /// Removes a task for good (ACK); returns whether it existed.
    @discardableResult
    mutating func remove(_ id: UInt64) -> QueuedTask? {
        guard tasks[id] != nil else { return nil }
        unplace(id)
        guard let e = tasks.removeValue(forKey: id) else { return nil }
        busyIds.remove(id)
        payloadBytes -= e.payload.count
        releaseIfEmpty(e.queue)
        return e.materialized(id: id, names: names)
    }

    /// Changes a task's fields (never its payload) and places it again.
    mutating func update(_ id: UInt64, _ change: (inout QueuedTask) -> Void) -> QueuedTask? {
        guard let before = tasks[id] else { return nil }
        unplace(id)
        var t = before.materialized(id: id, names: names)
        let old = t.queue
        change(&t)
        let q = t.queue == old ? before.queue : names.id(t.queue)
        tasks[id]!.assign(t, queue: q)
        if q != before.queue { releaseIfEmpty(before.queue) }
        place(id)
        return t
    }

    /// Loads a snapshot's state into an empty store.
    public mutating func load(_ s: QueueSnapshot) {
        epoch = s.lastEpoch
        for t in s.tasks { insert(t) }
        observeTaskId(s.highestTaskId)
        pauses = s.pauses
        for (k, r) in s.keys { recordKey(k, r) }
    }

    // MARK: time

    /// Cluster time moves on to `clusterNow` (never back): delays that came
    /// due and leases that ran out make their tasks ready. Returns the tasks
    /// whose lease ran out.
    public mutating func advance(to clusterNow: Int64) -> [UInt64] {
        guard clusterNow > now else { return [] }
        now = clusterNow
        var expired: [UInt64] = []
        for id in timers.popExpired(now: now) {
            guard let e = tasks[id] else { continue }
            if e.place == .leased { expired.append(id) }
            unplace(id, timerGone: true)
            place(id)
        }
        for (q, until) in pauses where until <= now { pauses[q] = nil }
        return expired
    }

    /// The earliest cluster time at which `advance` changes something.
    public func nextDue() -> Int64? {
        [timers.first?.deadline, pauses.values.min()].compactMap { $0 }.min()
    }

    // MARK: leader-local: changes being replicated

    /// A change to this task is being replicated: hand it to nobody until
    /// every such change has committed or failed.
    public mutating func markBusy(_ id: UInt64) {
        guard tasks[id] != nil else { return }
        unplace(id)
        tasks[id]!.busy += 1
        busyIds.insert(id)
        place(id)
    }

    public func isBusy(_ id: UInt64) -> Bool { (tasks[id]?.busy ?? 0) > 0 }

    /// One change committed or failed: once none is left, the task stands
    /// where its fields say.
    public mutating func clearBusy(_ id: UInt64) {
        guard let e = tasks[id], e.busy > 0 else { return }
        unplace(id)
        tasks[id]!.busy -= 1
        if tasks[id]!.busy == 0 { busyIds.remove(id) }
        place(id)
    }

    /// Every busy mark (a leadership ends): O(busy tasks).
    public mutating func clearAllBusy() {
        let ids = busyIds
        busyIds.removeAll()
        for id in ids where tasks[id] != nil {
            unplace(id)
            tasks[id]!.busy = 0
            place(id)
        }
    }

    // MARK: reading

    public func isPaused(_ queue: String) -> Bool { (pauses[queue] ?? 0) > now }

    /// Whether the task's lease is in force (by cluster time, under this leadership).
    public func leaseInForce(_ t: QueuedTask) -> Bool { t.leaseEpoch == epoch && t.leasedUntilMs > now }

    /// A new leadership: leases granted under earlier ones end.
    mutating func enterEpoch(_ e: UInt64) {
        guard e > epoch else { return }
        epoch = e
        for id in leasedIds {
            unplace(id)
            place(id)
        }
    }

    /// The task TAKE would lease next from `queues`: the smallest (priority,
    /// id) ready task of the first listed queue that has one and is not paused.
    public func nextReady(in queues: [String]) -> QueuedTask? {
        for q in queues where !isPaused(q) {
            if let id = line(q)?.ready.first?.key { return task(id) }
        }
        return nil
    }

    /// The ready task of `queue` TAKE would lease next, pauses aside (PEEK).
    public func head(of queue: String) -> QueuedTask? {
        line(queue)?.ready.first.flatMap { task($0.key) }
    }

    /// Up to `limit` ready tasks of `queue`, in the order TAKE hands them
    /// out (KICK: O(ready log ready)).
    public func readyTasks(in queue: String, limit: Int) -> [QueuedTask] {
        guard let line = line(queue) else { return [] }
        return line.ready.sorted.prefix(limit).compactMap { task($0.key) }
    }

    /// The oldest ready task's put time in `queue`, for STATS and /metrics:
    /// the head's when its ready tasks share one priority (ids grow with put
    /// time), else one pass over them (O(ready), no sort).
    public func oldestReadyAtMs(in queue: String) -> Int64? {
        guard let line = line(queue), !line.ready.isEmpty else { return nil }
        if line.readyByPriority.count == 1, let id = line.ready.first?.key { return tasks[id]?.enqueuedAtMs }
        var oldest = Int64.max
        line.ready.forEach { e in
            if let at = tasks[e.key]?.enqueuedAtMs, at < oldest { oldest = at }
        }
        return oldest == .max ? nil : oldest
    }

    // MARK: placing

    private mutating func place(_ id: UInt64) {
        guard let t = tasks[id] else { return }
        let leasedUntil = t.leaseEpoch == epoch ? t.leasedUntilMs : 0
        let until = max(t.readyAtMs, leasedUntil)
        let p: Place
        var handle: HandleHeap<UInt64>.Handle = -1
        if t.busy > 0 {
            p = .busy
        } else if until > now {
            p = leasedUntil > now ? .leased : .delayed
            handle = timers.insert(id, at: until)
            if p == .leased {
                leasedCount += 1
                leasedIds.insert(id)
            }
        } else {
            p = .ready
            readyCount += 1
        }
        // One lookup of the queue's line for whatever changes in it.
        withLine(t.queue) { line in
            switch p {
            case .busy: line.busy += 1
            case .leased: line.leased += 1
            case .delayed: line.delayed += 1
            case .ready:
                handle = line.ready.insert(id, at: Int64(t.priority))
                line.readyByPriority[t.priority, default: 0] += 1
            }
        }
        tasks[id]!.stand(p, handle: handle)
    }

    private mutating func unplace(_ id: UInt64, timerGone: Bool = false) {
        guard let e = tasks[id] else { return }
        switch e.place {
        case .busy:
            withLine(e.queue) { $0.busy -= 1 }
        case .leased:
            if !timerGone { timers.remove(e.handle) }
            withLine(e.queue) { $0.leased -= 1 }
            leasedCount -= 1
            leasedIds.remove(id)
        case .delayed:
            if !timerGone { timers.remove(e.handle) }
            withLine(e.queue) { $0.delayed -= 1 }
        case .ready:
            withLine(e.queue) { line in
                line.ready.remove(e.handle)
                let p = e.priority
                if let n = line.readyByPriority[p] { line.readyByPriority[p] = n > 1 ? n - 1 : nil }
            }
            readyCount -= 1
        }
    }

    // MARK: lines by queue number

    /// The queues that hold a task, each with its line (STATUS, STATS: O(queues)).
    public var lines: [String: Line] {
        var out: [String: Line] = [:]
        for (i, line) in lineById.enumerated() where line.total > 0 { out[names[QueueNames.ID(i)]] = line }
        return out
    }

    /// How many queues hold a task.
    public var queueCount: Int { lineById.reduce(0) { $0 + ($1.total > 0 ? 1 : 0) } }

    /// `queue`'s line, nil when it holds no task.
    public func line(_ queue: String) -> Line? {
        guard let id = names.existingId(queue), Int(id) < lineById.count, lineById[Int(id)].total > 0 else { return nil }
        return lineById[Int(id)]
    }

    private mutating func withLine<R>(_ id: QueueNames.ID, _ body: (inout Line) -> R) -> R {
        let i = Int(id)
        while lineById.count <= i { lineById.append(Line()) }
        return body(&lineById[i])
    }

    /// A line left with no task gives its storage back.
    private mutating func releaseIfEmpty(_ id: QueueNames.ID) {
        let i = Int(id)
        if i < lineById.count, lineById[i].total == 0 { lineById[i] = Line() }
    }
}
