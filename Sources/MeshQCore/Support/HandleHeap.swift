// HandleHeap: keys, each with one deadline, earliest first, in a binary
// min-heap that hands out a handle for every key it takes. The caller keeps
// the handle where it keeps the key's other data (beanstalkd stores each
// job's heap index in the job), so moving or removing a key is one sift from
// its slot, O(log n), with no key -> slot dictionary to hash into or grow.
// `slotOf[handle]` is the key's slot in `heap`; handles of removed keys are
// reused, so memory follows the most keys ever held at once.
//
// Order: (deadline, key). Ties go to the smaller key, so the order is total
// and independent of the history of inserts and removals: the same set
// always expires in the same order (the simulator replays identically).
//
// Invariant: for every slot i, heap[i] <= its children heap[2i+1], heap[2i+2];
// slotOf[heap[i].handle] == i; every other handle is in `freeHandles` with
// slotOf == -1.

public struct HandleHeap<Key: Comparable> {
    public typealias Handle = Int32

    public struct Entry: Equatable {
        public let deadline: Int64
        public let key: Key
    }

    fileprivate struct Item {
        var deadline: Int64
        var key: Key
        var handle: Handle
    }

    private var heap: [Item] = []
    private var slotOf: [Int32] = []
    private var freeHandles: [Handle] = []

    public init() {}

    public var count: Int { heap.count }
    public var isEmpty: Bool { heap.isEmpty }

    /// The earliest (deadline, key), left in place.
    public var first: Entry? { heap.first.map { Entry(deadline: $0.deadline, key: $0.key) } }

    /// Whether `h` stands for a key here now.
    public func holds(_ h: Handle) -> Bool { Int(h) >= 0 && Int(h) < slotOf.count && slotOf[Int(h)] >= 0 }

    public func deadline(of h: Handle) -> Int64 { heap[Int(slotOf[Int(h)])].deadline }

    public func key(of h: Handle) -> Key { heap[Int(slotOf[Int(h)])].key }

    /// Adds `key`; returns its handle (valid until it leaves).
    public mutating func insert(_ key: Key, at deadline: Int64) -> Handle {
        let h: Handle
        if let reused = freeHandles.popLast() {
            h = reused
        } else {
            h = Handle(slotOf.count)
            slotOf.append(-1)
        }
        heap.append(Item(deadline: deadline, key: key, handle: h))
        slotOf[Int(h)] = Int32(heap.count - 1)
        siftUp(heap.count - 1)
        return h
    }

    /// Gives the key of handle `h` a new deadline.
    public mutating func move(_ h: Handle, to deadline: Int64) {
        let i = Int(slotOf[Int(h)])
        let earlier = deadline < heap[i].deadline
        heap[i].deadline = deadline
        if earlier { siftUp(i) } else { siftDown(i) }
    }

    /// Takes the key of handle `h` out; returns its entry.
    @discardableResult
    public mutating func remove(_ h: Handle) -> Entry {
        let i = Int(slotOf[Int(h)])
        slotOf[Int(h)] = -1
        freeHandles.append(h)
        let removed = heap[i]
        let last = heap.removeLast()
        if i < heap.count {
            // The last entry fills the hole and moves whichever way it must.
            store(last, at: i)
            if Self.less(last, removed) { siftUp(i) } else { siftDown(i) }
        }
        return Entry(deadline: removed.deadline, key: removed.key)
    }

    /// Takes out and returns the earliest entry.
    public mutating func popFirst() -> Entry? {
        guard let top = heap.first else { return nil }
        return remove(top.handle)
    }

    /// Takes out the keys whose deadline is at or before `now`, earliest first.
    public mutating func popExpired(now: Int64) -> [Key] {
        var out: [Key] = []
        while let top = heap.first, top.deadline <= now {
            remove(top.handle)
            out.append(top.key)
        }
        return out
    }

    public mutating func removeAll() {
        heap.removeAll()
        slotOf.removeAll()
        freeHandles.removeAll()
    }

    /// Room for `n` keys in all.
    public mutating func reserveCapacity(_ n: Int) {
        heap.reserveCapacity(n)
        slotOf.reserveCapacity(n)
    }

    /// Calls `body` with every entry, in no particular order (O(n), no sort).
    public func forEach(_ body: (Entry) -> Void) {
        for item in heap { body(Entry(deadline: item.deadline, key: item.key)) }
    }

    /// Calls `body` with every (handle, key), in no particular order.
    public func forEachHandle(_ body: (Handle, Key) -> Void) {
        for item in heap { body(item.handle, item.key) }
    }

    /// Every entry, earliest first (for tests and reports; O(n log n)).
    public var sorted: [Entry] {
        heap.sorted { Self.less($0, $1) }.map { Entry(deadline: $0.deadline, key: $0.key) }
    }

    /// The first broken invariant, or nil (for tests; O(n)).
    func invariantViolation() -> String? {
        guard heap.count + freeHandles.count == slotOf.count else {
            return "\(heap.count) live + \(freeHandles.count) free handles, \(slotOf.count) allocated"
        }
        for (i, e) in heap.enumerated() {
            if slotOf[Int(e.handle)] != Int32(i) { return "key \(e.key) at slot \(i) recorded at \(slotOf[Int(e.handle)])" }
            if i > 0, Self.less(e, heap[(i - 1) / 2]) { return "slot \(i) sorts before its parent" }
        }
        for h in freeHandles where slotOf[Int(h)] != -1 { return "free handle \(h) still has slot \(slotOf[Int(h)])" }
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
            store(heap[parent], at: i)
            i = parent
        }
        if i != start { store(e, at: i) }
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
            store(heap[child], at: i)
            i = child
        }
        if i != start { store(e, at: i) }
    }

    /// Puts `item` in slot `i` and records the slot under its handle.
    private mutating func store(_ item: Item, at i: Int) {
        heap[i] = item
        slotOf[Int(item.handle)] = Int32(i)
    }
}

extension HandleHeap: Sendable where Key: Sendable {}
extension HandleHeap.Entry: Sendable where Key: Sendable {}
extension HandleHeap.Item: Sendable where Key: Sendable {}
