// QueueSnapshot: the whole replicated state at one log index, so the log
// before it can be dropped (compaction) and a lagging node can be sent one
// thing instead of a long history. Recovery replays only entries after
// `lastIndex`, so a snapshot and a log that overlap never apply twice.

public struct QueueSnapshot: Equatable, Sendable {
    public var lastIndex: UInt64
    public var lastEpoch: UInt64
    public var lamport: UInt64
    public var highestTaskId: UInt64
    public var tasks: [QueuedTask]
    /// For each node, the highest mailbox sequence applied (exactly-once delivery).
    public var parkedApplied: [Int: UInt64]

    public init(lastIndex: UInt64, lastEpoch: UInt64, lamport: UInt64, highestTaskId: UInt64, tasks: [QueuedTask],
                parkedApplied: [Int: UInt64] = [:]) {
        self.lastIndex = lastIndex
        self.lastEpoch = lastEpoch
        self.lamport = lamport
        self.highestTaskId = highestTaskId
        self.tasks = tasks
        self.parkedApplied = parkedApplied
    }

    // Version 2 adds parkedApplied; version 1 snapshots still read.
    private static let version: UInt8 = 2

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + tasks.reduce(0) { $0 + 32 + $1.payload.count })
        w.u8(Self.version)
        w.u64(lastIndex)
        w.u64(lastEpoch)
        w.u64(lamport)
        w.u64(highestTaskId)
        w.u64(UInt64(tasks.count))
        for t in tasks {
            w.u64(t.id)
            w.u64(t.lamport)
            w.i64(t.enqueuedAtMs)
            w.blob(t.payload)
        }
        w.u32(UInt32(parkedApplied.count))
        for (node, seq) in parkedApplied.sorted(by: { $0.key < $1.key }) {
            w.u32(UInt32(truncatingIfNeeded: node))
            w.u64(seq)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) -> QueueSnapshot? {
        var r = ByteReader(bytes)
        guard let v = r.u8(), v == 1 || v == version, let li = r.u64(), let le = r.u64(), let lam = r.u64(),
              let hi = r.u64(), let n = r.u64(), n <= UInt64(r.remaining) else { return nil }
        var tasks: [QueuedTask] = []
        tasks.reserveCapacity(Int(n))
        for _ in 0..<n {
            guard let id = r.u64(), let tl = r.u64(), let at = r.i64(), let p = r.blob() else { return nil }
            tasks.append(QueuedTask(id: id, lamport: tl, enqueuedAtMs: at, payload: p))
        }
        var parked: [Int: UInt64] = [:]
        if v >= 2 {
            guard let m = r.u32(), Int(m) <= r.remaining else { return nil }
            for _ in 0..<m {
                guard let node = r.u32(), let seq = r.u64() else { return nil }
                parked[Int(node)] = seq
            }
        }
        guard r.isAtEnd else { return nil }
        return QueueSnapshot(lastIndex: li, lastEpoch: le, lamport: lam, highestTaskId: hi, tasks: tasks,
                             parkedApplied: parked)
    }
}
