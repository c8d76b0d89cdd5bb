// TaskStore's idempotency keys: for each (queue, key) put within its dedup
// window, the first task's id and Lamport time. A PUT entry carries the
// cluster time until which its key counts (the leader stamps put time +
// dedup_window_ms), so applying an entry never reads a node's clock or its
// config: a key counts for a later PUT when its window ends after that PUT's
// own put time, and keys whose window ended before it are dropped then.
// Expiry is a plain min-heap of (window end, key) with no index: a key is
// recorded only when no live record of it is left (a PUT first drops the
// keys that ended by its put time), so nothing in the heap is ever moved or
// removed by name, and a popped entry whose record has since changed is
// skipped. A DedupKey hashes its strings once, when it is made: growing the
// table rehashes a stored integer, not every key's bytes (a million keys
// rehashed from their bytes held the event loop for a third of a second).
// Cost per live key: one dictionary slot (the key's two strings and cached
// hash, and 24 bytes of record) and one heap slot (the key again, shared
// string storage, and a deadline).
// Invariant: every key in `keys` has a heap entry with its `untilMs`.

import HeapModule

public struct DedupKey: Hashable, Comparable, Sendable {
    public let queue: String
    public let key: String
    /// Hash of both strings, computed once (per process: never stored).
    private let digest: Int

    public init(queue: String, key: String) {
        self.queue = queue
        self.key = key
        var h = Hasher()
        h.combine(queue)
        h.combine(key)
        digest = h.finalize()
    }

    public static func == (a: DedupKey, b: DedupKey) -> Bool {
        a.digest == b.digest && a.key == b.key && a.queue == b.queue
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(digest) }

    /// What a table hashes with: the stored digest mixed with the table's
    /// seed, so growing a table of a million keys runs no hash function.
    /// The digest itself came from the process's randomly seeded Hasher,
    /// so a client still cannot choose keys that collide.
    public func _rawHashValue(seed: Int) -> Int { digest ^ seed }

    /// A total order that compares the digests first (cheap), then the
    /// strings: for the expiry heap, where only some order is needed.
    static func quickLess(_ a: DedupKey, _ b: DedupKey) -> Bool {
        if a.digest != b.digest { return a.digest < b.digest }
        return a < b
    }

    public static func < (a: DedupKey, b: DedupKey) -> Bool {
        a.queue != b.queue ? a.queue < b.queue : a.key < b.key
    }
}

/// A key's window end, in the expiry heap: earliest first.
struct KeyDeadline: Comparable, Sendable {
    var untilMs: Int64
    var key: DedupKey

    static func < (a: KeyDeadline, b: KeyDeadline) -> Bool {
        a.untilMs != b.untilMs ? a.untilMs < b.untilMs : DedupKey.quickLess(a.key, b.key)
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
        keyExpiry.insert(KeyDeadline(untilMs: r.untilMs, key: k))
    }

    /// Drops the keys whose window ended at or before `atMs`.
    mutating func dropKeys(endedBy atMs: Int64) {
        while let first = keyExpiry.min, first.untilMs <= atMs {
            keyExpiry.removeMin()
            if keys[first.key]?.untilMs == first.untilMs { keys[first.key] = nil }
        }
    }
}
