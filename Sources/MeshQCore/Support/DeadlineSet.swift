// DeadlineSet: keys, each with one deadline, earliest first, found by key.
// A HandleHeap (the indexed binary min-heap, O(log n) moves and removals)
// plus a key -> handle dictionary, for callers that have nowhere of their
// own to keep a key's handle. The dictionary is touched only when a key
// arrives or leaves; a sift rewrites plain array slots.
//
// Order: (deadline, key), ties to the smaller key (HandleHeap's).
//
// Invariant: HandleHeap's, and `handles[k] == h` exactly when the heap holds
// key k under handle h.

public struct DeadlineSet<Key: Hashable & Comparable> {
    public typealias Entry = HandleHeap<Key>.Entry

    private var heap = HandleHeap<Key>()
    private var handles: [Key: HandleHeap<Key>.Handle] = [:]

    public init() {}

    public var count: Int { heap.count }
    public var isEmpty: Bool { heap.isEmpty }

    /// The earliest (deadline, key), left in place.
    public var first: Entry? { heap.first }

    public func contains(_ key: Key) -> Bool { handles[key] != nil }

    public func deadline(of key: Key) -> Int64? { handles[key].map { heap.deadline(of: $0) } }

    /// Gives `key` this deadline: adds it, or moves it if it is already here.
    public mutating func schedule(_ key: Key, at deadline: Int64) {
        if let h = handles[key] {
            heap.move(h, to: deadline)
        } else {
            handles[key] = heap.insert(key, at: deadline)
        }
    }

    /// Takes `key` out; returns its deadline, nil when it was not here.
    @discardableResult
    public mutating func remove(_ key: Key) -> Int64? {
        guard let h = handles.removeValue(forKey: key) else { return nil }
        return heap.remove(h).deadline
    }

    /// Takes out and returns the earliest entry.
    public mutating func popFirst() -> Entry? {
        guard let top = heap.first else { return nil }
        remove(top.key)
        return top
    }

    /// Takes out the keys whose deadline is at or before `now`, earliest first.
    public mutating func popExpired(now: Int64) -> [Key] {
        let out = heap.popExpired(now: now)
        for k in out { handles[k] = nil }
        return out
    }

    public mutating func removeAll() {
        heap.removeAll()
        handles.removeAll()
    }

    /// Calls `body` with every entry, in no particular order (O(n), no sort).
    public func forEach(_ body: (Entry) -> Void) { heap.forEach(body) }

    /// Every entry, earliest first (for tests and reports; O(n log n)).
    public var sorted: [Entry] { heap.sorted }

    /// The first broken invariant, or nil (for tests; O(n)).
    func invariantViolation() -> String? {
        if let v = heap.invariantViolation() { return v }
        guard heap.count == handles.count else { return "heap holds \(heap.count), index \(handles.count)" }
        var wrong: String?
        heap.forEachHandle { h, k in
            if wrong == nil, handles[k] != h {
                wrong = "key \(k) has handle \(h), index says \(String(describing: handles[k]))"
            }
        }
        return wrong
    }
}

extension DeadlineSet: Sendable where Key: Sendable {}
