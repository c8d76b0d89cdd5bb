// QueuedTask: a task as the replicated state holds it. The payload is opaque
// bytes, kept exactly as the producer sent them. Every field is replicated
// (log entries and snapshots carry it), so each node derives the same task
// from the same log; times are cluster time (the leader's clock, ms since
// the epoch), never a node's monotonic clock.
// A lease is in force while cluster time is before `leasedUntilMs` and the
// leadership that granted it (`leaseEpoch`) still leads: a new leader's
// first entry ends every lease of earlier leaderships (the task is ready
// again at once, its delivery count kept), as a broker restart requeues
// unacked messages.
// Invariant: `origin` is set exactly while the task sits in a dead-letter queue.

public struct QueuedTask: Equatable, Sendable {
    public static let defaultQueue = "default"
    public static let defaultPriority: UInt32 = 1024

    public var id: UInt64
    /// Lamport time of the PUT/ENQUEUE at the leader.
    public var lamport: UInt64
    /// Leader's (clock-corrected) wall time when it was put, ms since epoch.
    public var enqueuedAtMs: Int64
    public var payload: [UInt8]
    /// The queue it is in now (a dead-letter queue once buried).
    public var queue: String
    /// Lower first.
    public var priority: UInt32
    /// Not ready before this cluster time (0: ready at once): PUT delay=, NACK delay.
    public var readyAtMs: Int64
    /// The idempotency key it was put with.
    public var key: String?
    /// Its key deduplicates PUTs until this cluster time.
    public var keyUntilMs: Int64
    /// Leases granted so far (the count a JOB reply carries).
    public var deliveries: UInt32
    /// Leased until this cluster time (0: not leased).
    public var leasedUntilMs: Int64
    /// The epoch of the leadership that granted (or last touched) the lease.
    public var leaseEpoch: UInt64
    /// The queue a dead-lettered task came from (where KICK sends it back).
    public var origin: String?

    public init(id: UInt64, lamport: UInt64, enqueuedAtMs: Int64, payload: [UInt8],
                queue: String = QueuedTask.defaultQueue, priority: UInt32 = QueuedTask.defaultPriority,
                readyAtMs: Int64 = 0, key: String? = nil, keyUntilMs: Int64 = 0, deliveries: UInt32 = 0,
                leasedUntilMs: Int64 = 0, leaseEpoch: UInt64 = 0, origin: String? = nil) {
        self.id = id
        self.lamport = lamport
        self.enqueuedAtMs = enqueuedAtMs
        self.payload = payload
        self.queue = queue
        self.priority = priority
        self.readyAtMs = readyAtMs
        self.key = key
        self.keyUntilMs = keyUntilMs
        self.deliveries = deliveries
        self.leasedUntilMs = leasedUntilMs
        self.leaseEpoch = leaseEpoch
        self.origin = origin
    }

    /// A plain ENQUEUE's task: encoded in the protocol-1 form (smaller, and
    /// what logs written before protocol 2 hold).
    public var isPlain: Bool {
        queue == Self.defaultQueue && priority == Self.defaultPriority && readyAtMs == 0 && key == nil
            && deliveries == 0 && leasedUntilMs == 0 && leaseEpoch == 0 && origin == nil
    }

    /// Writes every field after the first four (the protocol-2 form).
    func encodeOptions(into w: inout ByteWriter) {
        w.string(queue)
        w.u32(priority)
        w.i64(readyAtMs)
        w.string(key ?? "")
        w.i64(keyUntilMs)
        w.u32(deliveries)
        w.i64(leasedUntilMs)
        w.u64(leaseEpoch)
        w.string(origin ?? "")
    }

    mutating func decodeOptions(_ r: inout ByteReader) -> Bool {
        guard let q = r.string(), let p = r.u32(), let ra = r.i64(), let k = r.string(), let ku = r.i64(),
              let d = r.u32(), let lu = r.i64(), let le = r.u64(), let o = r.string() else { return false }
        queue = q
        priority = p
        readyAtMs = ra
        key = k.isEmpty ? nil : k
        keyUntilMs = ku
        deliveries = d
        leasedUntilMs = lu
        leaseEpoch = le
        origin = o.isEmpty ? nil : o
        return true
    }

    /// Which fields differ from a plain task's, one bit each (the flagged form).
    private struct Present: OptionSet {
        let rawValue: UInt8
        static let queue = Present(rawValue: 1)
        static let priority = Present(rawValue: 2)
        static let readyAt = Present(rawValue: 4)
        static let key = Present(rawValue: 8)
        static let deliveries = Present(rawValue: 16)
        static let lease = Present(rawValue: 32)
        static let origin = Present(rawValue: 64)
    }

    /// Writes a flags byte, then only the fields it names (the compact
    /// protocol-2 form; the rest read back as a plain task's).
    func encodeFlaggedOptions(into w: inout ByteWriter) {
        var f: Present = []
        if queue != Self.defaultQueue { f.insert(.queue) }
        if priority != Self.defaultPriority { f.insert(.priority) }
        if readyAtMs != 0 { f.insert(.readyAt) }
        if key != nil || keyUntilMs != 0 { f.insert(.key) }
        if deliveries != 0 { f.insert(.deliveries) }
        if leasedUntilMs != 0 || leaseEpoch != 0 { f.insert(.lease) }
        if origin != nil { f.insert(.origin) }
        w.u8(f.rawValue)
        if f.contains(.queue) { w.string(queue) }
        if f.contains(.priority) { w.u32(priority) }
        if f.contains(.readyAt) { w.i64(readyAtMs) }
        if f.contains(.key) {
            w.string(key ?? "")
            w.i64(keyUntilMs)
        }
        if f.contains(.deliveries) { w.u32(deliveries) }
        if f.contains(.lease) {
            w.i64(leasedUntilMs)
            w.u64(leaseEpoch)
        }
        if f.contains(.origin) { w.string(origin ?? "") }
    }

    /// The bytes `encodeFlaggedOptions` writes.
    var flaggedOptionsSize: Int {
        var n = 1
        if queue != Self.defaultQueue { n += 4 + queue.utf8.count }
        if priority != Self.defaultPriority { n += 4 }
        if readyAtMs != 0 { n += 8 }
        if key != nil || keyUntilMs != 0 { n += 4 + (key?.utf8.count ?? 0) + 8 }
        if deliveries != 0 { n += 4 }
        if leasedUntilMs != 0 || leaseEpoch != 0 { n += 16 }
        if let origin { n += 4 + origin.utf8.count }
        return n
    }

    mutating func decodeFlaggedOptions(_ r: inout ByteReader) -> Bool {
        guard let raw = r.u8() else { return false }
        let f = Present(rawValue: raw)
        guard raw & 0x80 == 0 else { return false }
        if f.contains(.queue) {
            guard let q = r.string() else { return false }
            queue = q
        }
        if f.contains(.priority) {
            guard let p = r.u32() else { return false }
            priority = p
        }
        if f.contains(.readyAt) {
            guard let v = r.i64() else { return false }
            readyAtMs = v
        }
        if f.contains(.key) {
            guard let k = r.string(), let u = r.i64() else { return false }
            key = k.isEmpty ? nil : k
            keyUntilMs = u
        }
        if f.contains(.deliveries) {
            guard let d = r.u32() else { return false }
            deliveries = d
        }
        if f.contains(.lease) {
            guard let u = r.i64(), let e = r.u64() else { return false }
            leasedUntilMs = u
            leaseEpoch = e
        }
        if f.contains(.origin) {
            guard let o = r.string() else { return false }
            origin = o.isEmpty ? nil : o
        }
        return true
    }
}
