// DeadlineSet: keys, each with one deadline, earliest first. An indexed binary
// min-heap, as beanstalkd keeps each job's heap index: `position` maps every
// key to its slot in `heap`, so moving or removing a key by name is one sift
// from that slot, O(log n), and nothing stale is ever left behind (no lazy
// deletion, no compaction pass: memory follows the live keys).
//
// Order: (deadline, key). Ties go to the smaller key, so the order is total
// and independent of the history of inserts and removals: the same set
// always expires in the same order (the simulator replays identically).
//
// Invariant: for every slot i, heap[i] <= its children heap[2i+1], heap[2i+2];
// position[heap[i].key] == i; heap and position hold the same keys.

public struct DeadlineSet<Key: Hashable & Comparable> {
    public struct Entry: Equatable {
        public let deadline: Int64
        public let key: Key
    }

    private var heap: [Entry] = []
    private var position: [Key: Int] = [:]

    public init() {}

    public var count: Int { heap.count }
    public var isEmpty: Bool { heap.isEmpty }

    /// The earliest (deadline, key), left in place.
    public var first: Entry? { heap.first }

    public func contains(_ key: Key) -> Bool { position[key] != nil }

    public func deadline(of key: Key) -> Int64? { position[key].map { heap[$0].deadline } }

    /// Gives `key` this deadline: adds it, or moves it if it is already here.
    public mutating func schedule(_ key: Key, at deadline: Int64) {
        let e = Entry(deadline: deadline, key: key)
        if let i = position[key] {
            let earlier = Self.less(e, heap[i])
            heap[i] = e
            if earlier { siftUp(i) } else { siftDown(i) }
        } else {
            heap.append(e)
            position[key] = heap.count - 1
            siftUp(heap.count - 1)
        }
    }

    /// Takes `key` out; returns its deadline, nil when it was not here.
    @discardableResult
    public mutating func remove(_ key: Key) -> Int64? {
        guard let i = position.removeValue(forKey: key) else { return nil }
        let removed = heap[i]
        let last = heap.removeLast()
        if i < heap.count {
            // The last entry fills the hole and moves whichever way it must.
            heap[i] = last
            position[last.key] = i
            if Self.less(last, removed) { siftUp(i) } else { siftDown(i) }
        }
        return removed.deadline
    }

    /// Takes out and returns the earliest entry.
    public mutating func popFirst() -> Entry? {
        guard let top = heap.first else { return nil }
        remove(top.key)
        return top
    }

    /// Takes out the keys whose deadline is at or before `now`, earliest first.
    public mutating func popExpired(now: Int64) -> [Key] {
        var out: [Key] = []
        while let top = heap.first, top.deadline <= now {
            remove(top.key)
            out.append(top.key)
        }
        return out
    }

    public mutating func removeAll() {
        heap.removeAll()
        position.removeAll()
    }

    /// Every entry, earliest first (for tests and reports; O(n log n)).
    public var sorted: [Entry] { heap.sorted { Self.less($0, $1) } }

    /// The first broken invariant, or nil (for tests; O(n)).
    func invariantViolation() -> String? {
        guard heap.count == position.count else { return "heap holds \(heap.count), index \(position.count)" }
        for (i, e) in heap.enumerated() {
            if position[e.key] != i { return "key \(e.key) at slot \(i) indexed at \(String(describing: position[e.key]))" }
            if i > 0, Self.less(e, heap[(i - 1) / 2]) { return "slot \(i) sorts before its parent" }
        }
        return nil
    }

    private static func less(_ a: Entry, _ b: Entry) -> Bool {
        a.deadline != b.deadline ? a.deadline < b.deadline : a.key < b.key
    }

    // Sifts move a hole rather than swapping: each displaced entry is written
    // once, with its new position, and the moving entry lands at the end.
    private mutating func siftUp(_ start: Int) {
        let e = heap[start]
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.less(e, heap[parent]) else { break }
            heap[i] = heap[parent]
            position[heap[i].key] = i
            i = parent
        }
        if i != start {
            heap[i] = e
            position[e.key] = i
        }
    }

    private mutating func siftDown(_ start: Int) {
        let e = heap[start]
        let n = heap.count
        var i = start
        while true {
            let left = 2 * i + 1
            guard left < n else { break }
            let right = left + 1
            let child = right < n && Self.less(heap[right], heap[left]) ? right : left
            guard Self.less(heap[child], e) else { break }
            heap[i] = heap[child]
            position[heap[i].key] = i
            i = child
        }
        if i != start {
            heap[i] = e
            position[e.key] = i
        }
    }
}

extension DeadlineSet: Sendable where Key: Sendable {}
extension DeadlineSet.Entry: Sendable where Key: Sendable {}
