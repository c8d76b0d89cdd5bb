// DeadlineSet: keys, each with one deadline, earliest first. An indexed binary
// min-heap, as beanstalkd keeps each job's heap index: every key has a
// handle, `slotOf[handle]` is its slot in `heap`, so moving or removing a key
// by name is one sift from that slot, O(log n), and nothing stale is ever
// left behind (no lazy deletion, no compaction pass: memory follows the most
// keys ever held at once). The key -> handle dictionary is touched only when a
// key arrives or leaves; a sift rewrites plain array slots, so the heap costs
// about what a lazy-deletion heap does.
//
// Order: (deadline, key). Ties go to the smaller key, so the order is total
// and independent of the history of inserts and removals: the same set
// always expires in the same order (the simulator replays identically).
//
// Invariant: for every slot i, heap[i] <= its children heap[2i+1], heap[2i+2];
// slotOf[heap[i].handle] == i and handles[heap[i].key] == heap[i].handle;
// every other handle is in `freeHandles` with slotOf == -1.

public struct DeadlineSet<Key: Hashable & Comparable> {
    public struct Entry: Equatable {
        public let deadline: Int64
        public let key: Key
    }

    fileprivate struct Item {
        var deadline: Int64
        var key: Key
        var handle: Int
    }

    private var heap: [Item] = []
    private var slotOf: [Int] = []
    private var freeHandles: [Int] = []
    private var handles: [Key: Int] = [:]

    public init() {}

    public var count: Int { heap.count }
    public var isEmpty: Bool { heap.isEmpty }

    /// The earliest (deadline, key), left in place.
    public var first: Entry? { heap.first.map { Entry(deadline: $0.deadline, key: $0.key) } }

    public func contains(_ key: Key) -> Bool { handles[key] != nil }

    public func deadline(of key: Key) -> Int64? { handles[key].map { heap[slotOf[$0]].deadline } }

    /// Gives `key` this deadline: adds it, or moves it if it is already here.
    public mutating func schedule(_ key: Key, at deadline: Int64) {
        if let h = handles[key] {
            let i = slotOf[h]
            let earlier = deadline < heap[i].deadline
            heap[i].deadline = deadline
            if earlier { siftUp(i) } else { siftDown(i) }
            return
        }
        let h: Int
        if let reused = freeHandles.popLast() {
            h = reused
        } else {
            h = slotOf.count
            slotOf.append(-1)
        }
        handles[key] = h
        heap.append(Item(deadline: deadline, key: key, handle: h))
        slotOf[h] = heap.count - 1
        siftUp(heap.count - 1)
    }

    /// Takes `key` out; returns its deadline, nil when it was not here.
    @discardableResult
    public mutating func remove(_ key: Key) -> Int64? {
        guard let h = handles.removeValue(forKey: key) else { return nil }
        let i = slotOf[h]
        slotOf[h] = -1
        freeHandles.append(h)
        let removed = heap[i]
        let last = heap.removeLast()
        if i < heap.count {
            // The last entry fills the hole and moves whichever way it must.
            heap[i] = last
            slotOf[last.handle] = i
            if Self.less(last, removed) { siftUp(i) } else { siftDown(i) }
        }
        return removed.deadline
    }

    /// Takes out and returns the earliest entry.
    public mutating func popFirst() -> Entry? {
        guard let top = heap.first else { return nil }
        remove(top.key)
        return Entry(deadline: top.deadline, key: top.key)
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
        slotOf.removeAll()
        freeHandles.removeAll()
        handles.removeAll()
    }

    /// Calls `body` with every entry, in no particular order (O(n), no sort).
    public func forEach(_ body: (Entry) -> Void) {
        for item in heap { body(Entry(deadline: item.deadline, key: item.key)) }
    }

    /// Every entry, earliest first (for tests and reports; O(n log n)).
    public var sorted: [Entry] {
        heap.sorted { Self.less($0, $1) }.map { Entry(deadline: $0.deadline, key: $0.key) }
    }

    /// The first broken invariant, or nil (for tests; O(n)).
    func invariantViolation() -> String? {
        guard heap.count == handles.count else { return "heap holds \(heap.count), index \(handles.count)" }
        guard heap.count + freeHandles.count == slotOf.count else {
            return "\(heap.count) live + \(freeHandles.count) free handles, \(slotOf.count) allocated"
        }
        for (i, e) in heap.enumerated() {
            if slotOf[e.handle] != i { return "key \(e.key) at slot \(i) recorded at \(slotOf[e.handle])" }
            if handles[e.key] != e.handle { return "key \(e.key) has handle \(e.handle), index says \(String(describing: handles[e.key]))" }
            if i > 0, Self.less(e, heap[(i - 1) / 2]) { return "slot \(i) sorts before its parent" }
        }
        for h in freeHandles where slotOf[h] != -1 { return "free handle \(h) still has slot \(slotOf[h])" }
        return nil
    }

    private static func less(_ a: Item, _ b: Item) -> Bool {
        a.deadline != b.deadline ? a.deadline < b.deadline : a.key < b.key
    }

    // Sifts move a hole rather than swapping: each displaced entry is written
    // once, with its new slot, and the moving entry lands at the end.
    private mutating func siftUp(_ start: Int) {
        let e = heap[start]
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.less(e, heap[parent]) else { break }
            heap[i] = heap[parent]
            slotOf[heap[i].handle] = i
            i = parent
        }
        if i != start {
            heap[i] = e
            slotOf[e.handle] = i
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
            slotOf[heap[i].handle] = i
            i = child
        }
        if i != start {
            heap[i] = e
            slotOf[e.handle] = i
        }
    }
}

extension DeadlineSet: Sendable where Key: Sendable {}
extension DeadlineSet.Entry: Sendable where Key: Sendable {}
extension DeadlineSet.Item: Sendable where Key: Sendable {}
