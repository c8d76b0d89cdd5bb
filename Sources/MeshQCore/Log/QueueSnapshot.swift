// QueueSnapshot: the whole replicated state at one log index, so the log
// before it can be dropped (compaction) and a lagging node can be sent one
// thing instead of a long history. Recovery replays only entries after
// `lastIndex`, so a snapshot and a log that overlap never apply twice.
// Version 3 carries every task field (queues, priorities, due times,
// leases, delivery counts, dead letters), the pauses and the live
// idempotency keys; version 4 writes a task's options in the flagged form
// (only the fields that differ from a plain task's, as log entries do).
// Versions 1 to 3 still read (1 and 2 hold plain tasks of the queue `default`).

public struct QueueSnapshot: Equatable, Sendable {
    public var lastIndex: UInt64
    public var lastEpoch: UInt64
    public var lamport: UInt64
    public var highestTaskId: UInt64
    public var tasks: [QueuedTask]
    /// For each node, the highest mailbox sequence applied (exactly-once delivery).
    public var parkedApplied: [Int: UInt64]
    /// Queue name -> cluster time its pause ends.
    public var pauses: [String: Int64]
    /// Live idempotency keys, ordered.
    public var keys: [(DedupKey, KeyRecord)]

    public static func == (a: QueueSnapshot, b: QueueSnapshot) -> Bool {
        a.lastIndex == b.lastIndex && a.lastEpoch == b.lastEpoch && a.lamport == b.lamport
            && a.highestTaskId == b.highestTaskId && a.tasks == b.tasks && a.parkedApplied == b.parkedApplied
            && a.pauses == b.pauses && a.keys.map(\.0) == b.keys.map(\.0) && a.keys.map(\.1) == b.keys.map(\.1)
    }

    public init(lastIndex: UInt64, lastEpoch: UInt64, lamport: UInt64, highestTaskId: UInt64, tasks: [QueuedTask],
                parkedApplied: [Int: UInt64] = [:], pauses: [String: Int64] = [:],
                keys: [(DedupKey, KeyRecord)] = []) {
        self.pauses = pauses
        self.keys = keys
        self.lastIndex = lastIndex
        self.lastEpoch = lastEpoch
        self.lamport = lamport
        self.highestTaskId = highestTaskId
        self.tasks = tasks
        self.parkedApplied = parkedApplied
    }

    // Version 2 added parkedApplied, version 3 the protocol-2 state,
    // version 4 the flagged options.
    private static let version: UInt8 = 4

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + tasks.reduce(0) { $0 + Self.encodedSize(of: $1) })
        encodeHeader(into: &w)
        for t in tasks { Self.encode(t, into: &w) }
        encodeTrailer(into: &w)
        return w.bytes
    }

    /// The encoding's size, computed without encoding.
    public var encodedSize: Int {
        var n = 41 + 4 + 12 * parkedApplied.count + 4 + 8
        for t in tasks { n += Self.encodedSize(of: t) }
        for (q, _) in pauses { n += 4 + q.utf8.count + 8 }
        for (k, _) in keys { n += 8 + k.queue.utf8.count + k.key.utf8.count + 24 }
        return n
    }

    // The pieces, in order: a chunked transfer streams them one at a time.

    public func encodeHeader(into w: inout ByteWriter) {
        w.u8(Self.version)
        w.u64(lastIndex)
        w.u64(lastEpoch)
        w.u64(lamport)
        w.u64(highestTaskId)
        w.u64(UInt64(tasks.count))
    }

    public static func encode(_ t: QueuedTask, into w: inout ByteWriter) {
        w.u64(t.id)
        w.u64(t.lamport)
        w.i64(t.enqueuedAtMs)
        w.blob(t.payload)
        // 0 for a plain task, else 2 and its flagged options (1 and every
        // option field: version 3).
        if t.isPlain { w.u8(0) } else { w.u8(2); t.encodeFlaggedOptions(into: &w) }
    }

    public static func encodedSize(of t: QueuedTask) -> Int {
        29 + t.payload.count + (t.isPlain ? 0 : t.flaggedOptionsSize)
    }

    public func encodeTrailer(into w: inout ByteWriter) {
        w.u32(UInt32(parkedApplied.count))
        for (node, seq) in parkedApplied.sorted(by: { $0.key < $1.key }) {
            w.u32(UInt32(truncatingIfNeeded: node))
            w.u64(seq)
        }
        w.u32(UInt32(pauses.count))
        for (q, until) in pauses.sorted(by: { $0.key < $1.key }) {
            w.string(q)
            w.i64(until)
        }
        w.u64(UInt64(keys.count))
        for (k, r) in keys {
            w.string(k.queue)
            w.string(k.key)
            w.u64(r.taskId)
            w.u64(r.lamport)
            w.i64(r.untilMs)
        }
    }

    public static func decode(_ bytes: [UInt8]) -> QueueSnapshot? {
        var r = ByteReader(bytes)
        guard let v = r.u8(), v >= 1 && v <= version, let li = r.u64(), let le = r.u64(), let lam = r.u64(),
              let hi = r.u64(), let n = r.u64(), n <= UInt64(r.remaining) else { return nil }
        var tasks: [QueuedTask] = []
        tasks.reserveCapacity(Int(n))
        for _ in 0..<n {
            guard let id = r.u64(), let tl = r.u64(), let at = r.i64(), let p = r.blob() else { return nil }
            var t = QueuedTask(id: id, lamport: tl, enqueuedAtMs: at, payload: p)
            if v >= 3 {
                guard let flag = r.u8(), flag <= (v >= 4 ? 2 : 1) else { return nil }
                if flag == 1, !t.decodeOptions(&r) { return nil }
                if flag == 2, !t.decodeFlaggedOptions(&r) { return nil }
            }
            tasks.append(t)
        }
        var parked: [Int: UInt64] = [:]
        if v >= 2 {
            guard let m = r.u32(), Int(m) <= r.remaining else { return nil }
            for _ in 0..<m {
                guard let node = r.u32(), let seq = r.u64() else { return nil }
                parked[Int(node)] = seq
            }
        }
        var pauses: [String: Int64] = [:]
        var keys: [(DedupKey, KeyRecord)] = []
        if v >= 3 {
            guard let m = r.u32(), Int(m) <= r.remaining else { return nil }
            for _ in 0..<m {
                guard let q = r.string(), let until = r.i64() else { return nil }
                pauses[q] = until
            }
            guard let nk = r.u64(), nk <= UInt64(r.remaining) else { return nil }
            keys.reserveCapacity(Int(nk))
            for _ in 0..<nk {
                guard let q = r.string(), let k = r.string(), let id = r.u64(), let l = r.u64(), let u = r.i64() else {
                    return nil
                }
                keys.append((DedupKey(queue: q, key: k), KeyRecord(taskId: id, lamport: l, untilMs: u)))
            }
        }
        guard r.isAtEnd else { return nil }
        return QueueSnapshot(lastIndex: li, lastEpoch: le, lamport: lam, highestTaskId: hi, tasks: tasks,
                             parkedApplied: parked, pauses: pauses, keys: keys)
    }
}
