// SteppedDictionary: a hash map that grows a few entries per write instead
// of in one step, as Redis's dict rehashes incrementally. A Swift Dictionary
// that outgrows its storage moves every entry at once: at 1.57 million tasks
// that held a node's loop for 0.5-2.5 s, long enough for its peers to take
// it for dead.
//
// Algorithm. Entries live in `main`. When an insert would make `main` grow,
// `main` becomes `draining` (left unchanged from then on, so an index into
// it stays valid) and a new `main` of twice the capacity takes its place.
// Every later write first moves up to `stepEntries` entries, from a cursor
// over `draining`, into `main`, skipping those whose old copy no longer
// counts (`superseded`: a write moved the key to `main` first, or it was
// removed from `main`, where the cursor may have moved it before). A key
// written while it is still only in `draining` is moved first. With 64
// entries moved per write and twice the capacity, `draining` is empty long
// before `main` fills: the old storage is freed then (releasing what its
// entries held, the one step left that is proportional to the table),
// `superseded` with it. Reads never move anything. Between growths a read
// or a write costs what a Dictionary's does (one probe; a write also looks
// at the capacity).
// Invariant: a key's value is `main[key]` if present, else `draining[key]`
// while growing and unless `superseded` holds the key, else absent; a key
// in both `main` and `draining` is in `superseded`; a key of `draining`
// neither superseded nor in `main` lies ahead of `cursor`, and `pendingOld`
// counts those keys.

struct SteppedDictionary<Key: Hashable, Value> {
    private var main: [Key: Value] = [:]
    private var draining: [Key: Value] = [:]
    private var cursor: Dictionary<Key, Value>.Index
    /// Keys whose copy in `draining` no longer counts (moved or removed).
    private var superseded: Set<Key> = []
    /// Whether `draining` still holds entries to move.
    private(set) var isGrowing = false
    /// Keys whose only value is in `draining` (ahead of the cursor).
    private var pendingOld = 0
    var count: Int { main.count + pendingOld }
    /// Entries moved out of `draining` per write: a few microseconds each,
    /// and few enough writes spent growing that their extra probes are rare.
    let stepEntries = 64

    init() { cursor = draining.endIndex }

    mutating func reserveCapacity(_ n: Int) {
        finishGrowing()
        main.reserveCapacity(n)
    }

    @inline(__always)
    func value(forKey key: Key) -> Value? {
        guard isGrowing else { return main[key] }
        if let v = main[key] { return v }
        guard !superseded.contains(key) else { return nil }
        return draining[key]
    }

    subscript(key: Key) -> Value? {
        @inline(__always) get { value(forKey: key) }
        _modify {
            if isGrowing {
                step()
                bringToMain(key)
            }
            if main.count >= main.capacity, main[key] == nil { grow() }
            yield &main[key]
            if isGrowing, main[key] == nil { hideOldCopy(key) }
        }
    }

    @discardableResult
    mutating func removeValue(forKey key: Key) -> Value? {
        guard isGrowing else { return main.removeValue(forKey: key) }
        step()
        bringToMain(key)
        hideOldCopy(key)
        return main.removeValue(forKey: key)
    }

    /// Every entry, in no particular order.
    func forEach(_ body: ((key: Key, value: Value)) throws -> Void) rethrows {
        try main.forEach(body)
        guard isGrowing else { return }
        var i = cursor
        while i != draining.endIndex {
            let e = draining[i]
            if superseded.isEmpty || !superseded.contains(e.key) { try body(e) }
            i = draining.index(after: i)
        }
    }

    func map<T>(_ transform: ((key: Key, value: Value)) throws -> T) rethrows -> [T] {
        var out: [T] = []
        out.reserveCapacity(count)
        try forEach { out.append(try transform($0)) }
        return out
    }

    // MARK: growing

    /// While growing: a key whose value is still only in `draining` moves
    /// to `main` before a write touches it.
    private mutating func bringToMain(_ key: Key) {
        guard main[key] == nil, !superseded.contains(key), let v = draining[key] else { return }
        superseded.insert(key)
        main[key] = v
        pendingOld -= 1
    }

    /// A key removed from `main` while growing: its old copy (the cursor
    /// may have moved it already) must not count again.
    private mutating func hideOldCopy(_ key: Key) {
        if isGrowing, draining[key] != nil { superseded.insert(key) }
    }

    /// Before a new key goes into a full `main`: it becomes the old storage.
    private mutating func grow() {
        finishGrowing()
        guard main.capacity > 0 else { return }
        let capacity = main.capacity * 2
        draining = main
        main = Dictionary(minimumCapacity: capacity)
        cursor = draining.startIndex
        pendingOld = draining.count
        isGrowing = true
    }

    /// Moves up to `stepEntries` entries of the old storage.
    private mutating func step() {
        guard isGrowing else { return }
        var n = 0
        while n < stepEntries, cursor != draining.endIndex {
            let e = draining[cursor]
            cursor = draining.index(after: cursor)
            if superseded.isEmpty || !superseded.contains(e.key) {
                main[e.key] = e.value
                pendingOld -= 1
            }
            n += 1
        }
        if cursor == draining.endIndex { dropDraining() }
    }

    private mutating func finishGrowing() {
        while isGrowing { step() }
    }

    private mutating func dropDraining() {
        draining = [:]
        cursor = draining.endIndex
        superseded = []
        pendingOld = 0
        isGrowing = false
    }
}

extension SteppedDictionary: Sendable where Key: Sendable, Value: Sendable {}
