// ReplicatedLog: this node's view of the replicated log, in memory. It holds
// a base (the snapshot position: everything at or below it is committed and
// folded into the queue) and the entries above it, some committed, the tail
// perhaps not. Indices are dense: entry i sits right after entry i-1.
//
// Log matching, the property replication rests on: two logs that hold an
// entry with the same index and epoch hold the same entries up to it. It holds
// because a leader writes each index once per epoch, and a follower appends
// only after checking that its entry before the new ones matches the leader's
// (`matches`), cutting a conflicting uncommitted tail first (`truncate`).
// Committed entries are never cut: that is the caller's invariant.
//
// Old committed entries are dropped from memory (`trim`): a follower that
// lags further than the window is sent a snapshot instead.
import DequeModule

public struct ReplicatedLog: Sendable {
    public private(set) var baseIndex: UInt64
    public private(set) var baseEpoch: UInt64
    private var entries = Deque<LogEntry>()
    public private(set) var commitIndex: UInt64
    /// The most entries held since `entries` was last allocated: a Deque
    /// never gives capacity back, so once a trim leaves far fewer (after a
    /// restart replayed a long log, or a long round), it is rebuilt to fit.
    private var highWater = 0

    public init(baseIndex: UInt64 = 0, baseEpoch: UInt64 = 0) {
        self.baseIndex = baseIndex
        self.baseEpoch = baseEpoch
        self.commitIndex = baseIndex
    }

    public var lastIndex: UInt64 { entries.last?.index ?? baseIndex }
    public var lastEpoch: UInt64 { entries.last?.epoch ?? baseEpoch }
    public var position: LogPosition { LogPosition(epoch: lastEpoch, index: lastIndex) }
    /// The oldest index still held in memory.
    public var firstIndex: UInt64 { baseIndex + 1 }
    public var count: Int { entries.count }

    public func entry(at index: UInt64) -> LogEntry? {
        guard index > baseIndex, index <= lastIndex else { return nil }
        return entries[Int(index - baseIndex - 1)]
    }

    /// The epoch of the entry at `index`: the base's for the base, nil when
    /// the index is beyond the log or trimmed away below the base.
    public func epoch(at index: UInt64) -> UInt64? {
        if index == baseIndex { return baseEpoch }
        return entry(at: index)?.epoch
    }

    /// Whether this log holds the leader's entry (index, epoch). Below the
    /// base everything is committed, and committed entries are everyone's.
    public func matches(index: UInt64, epoch: UInt64) -> Bool {
        if index < baseIndex { return true }
        return self.epoch(at: index) == epoch
    }

    public mutating func append(_ e: LogEntry) {
        precondition(e.index == lastIndex + 1, "log gap: \(e.index) after \(lastIndex)")
        entries.append(e)
        highWater = max(highWater, entries.count)
    }

    /// Room for `n` more entries (a replay at start knows how many it reads).
    public mutating func reserveCapacity(_ n: Int) {
        entries.reserveCapacity(entries.count + n)
    }

    /// Drops every entry after `index`; never a committed one.
    public mutating func truncate(after index: UInt64) {
        precondition(index >= commitIndex, "truncating committed entries after \(index), commit \(commitIndex)")
        while let last = entries.last, last.index > index { entries.removeLast() }
    }

    /// Entries in `from...through`, stopping early past `maxBytes` of payload
    /// (at least one entry when any is in range).
    public func entries(from: UInt64, through: UInt64, maxBytes: Int = .max) -> [LogEntry] {
        guard from > baseIndex, from <= through, through <= lastIndex else { return [] }
        var out: [LogEntry] = []
        var bytes = 0
        for i in from...through {
            let e = entries[Int(i - baseIndex - 1)]
            bytes += 48 + e.payloadSize
            if !out.isEmpty && bytes > maxBytes { break }
            out.append(e)
        }
        return out
    }

    /// Committed entries up to `index` (callers apply them in order).
    public mutating func commit(through index: UInt64) -> [LogEntry] {
        let to = min(index, lastIndex)
        guard to > commitIndex else { return [] }
        let from = commitIndex
        commitIndex = to
        return Array(entries[Int(from - baseIndex)..<Int(to - baseIndex)])
    }

    /// Moves the base to a snapshot's position. When this log holds the
    /// snapshot's last entry (same index and epoch), the entries after it
    /// are the leader's too (log matching) and stay, as in Raft; otherwise
    /// everything goes. Returns the entries kept.
    public mutating func rebase(toSnapshotAt index: UInt64, epoch: UInt64) -> [LogEntry] {
        guard index > baseIndex, index < lastIndex, self.epoch(at: index) == epoch else {
            reset(toSnapshotAt: index, epoch: epoch)
            return []
        }
        while let first = entries.first, first.index <= index { entries.removeFirst() }
        baseIndex = index
        baseEpoch = epoch
        commitIndex = index
        return Array(entries)
    }

    /// Replaces everything with a snapshot's position (catch-up by snapshot).
    public mutating func reset(toSnapshotAt index: UInt64, epoch: UInt64) {
        entries.removeAll()
        baseIndex = index
        baseEpoch = epoch
        commitIndex = index
    }

    /// Forgets committed entries older than the newest `keep` of them.
    public mutating func trim(keep: Int) {
        // Entries with index <= commitIndex - keep go: the first `drop` of them.
        guard let first = entries.first, commitIndex >= first.index, Int(commitIndex - first.index) >= keep else { return }
        let drop = Int(commitIndex - first.index) - keep + 1
        let last = entries[drop - 1]
        baseIndex = last.index
        baseEpoch = last.epoch
        if highWater > 65_536 && (entries.count - drop) * 4 < highWater {
            // Far fewer left than the storage holds: copy out just those
            // (never the whole, even when the storage is shared).
            entries = Deque(entries[drop...])
            highWater = entries.count
        } else {
            entries.removeFirst(drop)
        }
    }

    /// Moves the commit point to `index` (at most the last entry) without
    /// copying the entries out: a replay at start applies them in place.
    public mutating func markCommitted(through index: UInt64) {
        commitIndex = max(commitIndex, min(index, lastIndex))
    }
}
