// Mailbox: ENQUEUEs and PUTs (with their queue and options, the key
// included) a node accepted while no leader was reachable. Each is
// durable here before the client hears `QUEUED <node>-<seq>`, and leaves only
// once a leader has committed it. Delivery may be retried (a lost message, a
// crash of either side); the replicated state remembers the highest sequence
// applied from each node and skips anything at or below it, and a node
// delivers its entries in sequence order, so each is applied exactly once.
// Sequence numbers never repeat: the counter survives compaction.
import DequeModule

public struct MailboxEntry: Equatable, Sendable {
    public var seq: UInt64
    public var payload: [UInt8]
    public var enqueuedAtMs: Int64
    public var queue: String
    public var options: PutOptions

    public init(seq: UInt64, payload: [UInt8], enqueuedAtMs: Int64, queue: String = QueuedTask.defaultQueue,
                options: PutOptions = PutOptions()) {
        self.seq = seq
        self.payload = payload
        self.enqueuedAtMs = enqueuedAtMs
        self.queue = queue
        self.options = options
    }

    /// An ENQUEUE's entry (the protocol-1 encoding).
    var isPlain: Bool { queue == QueuedTask.defaultQueue && options == PutOptions() }

    /// Queue and options, after the protocol-1 fields.
    func encodeOptions(into w: inout ByteWriter) {
        w.string(queue)
        w.u32(options.priority)
        w.i64(Int64(options.delayMs))
        w.string(options.key ?? "")
    }

    mutating func decodeOptions(_ r: inout ByteReader) -> Bool {
        guard let q = r.string(maxLength: LineParser.maxQueueNameBytes), LineParser.isValidQueueName(q),
              let pri = r.u32(), let d = r.i64(), d >= 0, d <= Int64(LineParser.maxDelayMs),
              let k = r.string(maxLength: LineParser.maxKeyBytes) else { return false }
        queue = q
        options = PutOptions(priority: pri, delayMs: Int(d), key: k.isEmpty ? nil : k)
        return true
    }
}

/// One record of the mailbox's own durable log.
public enum MailboxRecord: Equatable, Sendable {
    case park(MailboxEntry)
    /// Entries up to this sequence were committed by a leader.
    case delivered(through: UInt64)

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 32)
        switch self {
        case .park(let e):
            // 1: an ENQUEUE; 3: a PUT, with its queue and options.
            w.u8(e.isPlain ? 1 : 3)
            w.u64(e.seq)
            w.i64(e.enqueuedAtMs)
            w.blob(e.payload)
            if !e.isPlain { e.encodeOptions(into: &w) }
        case .delivered(let t):
            w.u8(2)
            w.u64(t)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) -> MailboxRecord? {
        var r = ByteReader(bytes)
        let out: MailboxRecord
        switch r.u8() {
        case let k where k == 1 || k == 3:
            guard let seq = r.u64(), let at = r.i64(), let p = r.blob() else { return nil }
            var e = MailboxEntry(seq: seq, payload: p, enqueuedAtMs: at)
            if k == 3, !e.decodeOptions(&r) { return nil }
            out = .park(e)
        case 2:
            guard let t = r.u64() else { return nil }
            out = .delivered(through: t)
        default:
            return nil
        }
        return r.isAtEnd ? out : nil
    }
}

public struct Mailbox: Sendable {
    public private(set) var pending = Deque<MailboxEntry>()
    /// The next sequence to hand out (kept in the mailbox snapshot on compaction).
    public private(set) var nextSeq: UInt64

    /// Rebuilds from the compacted counter and the records after it.
    public init(nextSeq: UInt64 = 1, records: [MailboxRecord] = []) {
        self.nextSeq = max(1, nextSeq)
        for r in records {
            switch r {
            case .park(let e):
                pending.append(e)
                self.nextSeq = max(self.nextSeq, e.seq + 1)
            case .delivered(let t):
                while let f = pending.first, f.seq <= t { pending.removeFirst() }
                self.nextSeq = max(self.nextSeq, t + 1)
            }
        }
    }

    /// Sequences at or below `seq` are taken (the replicated state applied
    /// them from this node): the next one handed out is above it.
    public mutating func continueAbove(_ seq: UInt64) {
        nextSeq = max(nextSeq, seq &+ 1)
    }

    public var count: Int { pending.count }
    public var isEmpty: Bool { pending.isEmpty }

    public mutating func park(payload: [UInt8], at: Int64, queue: String = QueuedTask.defaultQueue,
                              options: PutOptions = PutOptions()) -> MailboxEntry {
        let e = MailboxEntry(seq: nextSeq, payload: payload, enqueuedAtMs: at, queue: queue, options: options)
        nextSeq += 1
        pending.append(e)
        return e
    }

    /// A leader committed everything up to `seq`: returns how many left.
    public mutating func delivered(through seq: UInt64) -> Int {
        var n = 0
        while let f = pending.first, f.seq <= seq {
            pending.removeFirst()
            n += 1
        }
        return n
    }

    /// The mailbox's compacted form: just the counter.
    public static func encodeSnapshot(nextSeq: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: 8)
        w.u64(nextSeq)
        return w.bytes
    }

    public static func decodeSnapshot(_ bytes: [UInt8]) -> UInt64? {
        var r = ByteReader(bytes)
        guard let n = r.u64(), r.isAtEnd else { return nil }
        return n
    }
}
