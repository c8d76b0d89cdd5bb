// TaskStore's idempotency keys: for each (queue, key) put within its dedup
// window, the first task's id and Lamport time. A PUT entry carries the
// cluster time until which its key counts (the leader stamps put time +
// dedup_window_ms), so applying an entry never reads a node's clock or its
// config: a key counts for a later PUT when its window ends after that PUT's
// own put time, and keys whose window ended before it are dropped then.
// Cost: one dictionary entry (two strings and 24 bytes) plus one indexed
// heap slot (the key again, a deadline, two handles) per live key.
// Invariant: a key is in `keys` exactly when it is in `keyExpiry`, with
// its `untilMs` as the deadline.

public struct DedupKey: Hashable, Comparable, Sendable {
    public var queue: String
    public var key: String

    public init(queue: String, key: String) {
        self.queue = queue
        self.key = key
    }

    public static func < (a: DedupKey, b: DedupKey) -> Bool {
        a.queue != b.queue ? a.queue < b.queue : a.key < b.key
    }
}

public struct KeyRecord: Equatable, Sendable {
    public var taskId: UInt64
    public var lamport: UInt64
    public var untilMs: Int64

    public init(taskId: UInt64, lamport: UInt64, untilMs: Int64) {
        self.taskId = taskId
        self.lamport = lamport
        self.untilMs = untilMs
    }
}

extension TaskStore {
    /// The first task put with `key` in `queue`, if its window is still open at `atMs`.
    public func firstPut(queue: String, key: String, atMs: Int64) -> KeyRecord? {
        guard let r = keys[DedupKey(queue: queue, key: key)], r.untilMs > atMs else { return nil }
        return r
    }

    /// Every live key, ordered (snapshots).
    public func keyRecords() -> [(DedupKey, KeyRecord)] {
        keys.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Every live key in no particular order, for a caller that sorts them
    /// off the event loop (a million keys take a second to sort).
    public func keyRecordsInAnyOrder() -> [(DedupKey, KeyRecord)] {
        keys.map { ($0.key, $0.value) }
    }

    /// Records a key (a PUT applied, or a snapshot's).
    mutating func recordKey(_ k: DedupKey, _ r: KeyRecord) {
        keys[k] = r
        keyExpiry.schedule(k, at: r.untilMs)
    }

    /// Drops the keys whose window ended at or before `atMs`.
    mutating func dropKeys(endedBy atMs: Int64) {
        for k in keyExpiry.popExpired(now: atMs) { keys[k] = nil }
    }
}
