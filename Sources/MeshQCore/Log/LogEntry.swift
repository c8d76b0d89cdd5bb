// LogEntry: one change to the replicated state, at a log index, stamped with
// the epoch of the leader that proposed it and its Lamport time. The log is
// the single source of truth: the queue is what applying it yields, so every
// change that got OK is an entry on disk first.
// Encoding: a kind byte, index, epoch, Lamport time, then the operation's
// fields. A plain task (queue `default`, no options) keeps the protocol-1
// kinds 2 and 4, so logs written before protocol 2 read the same. A task
// with options is written as kind 13 or 14: a flags byte says which of the
// fields past the first four differ from a plain task's, and only those
// follow (a keyed PUT's entry is 45 bytes smaller than with every field).
// Kinds 5 and 6, which carry every field, are still read.

public struct LogEntry: Equatable, Sendable {
    public enum Operation: Equatable, Sendable {
        /// A new leader's first entry: makes its epoch durable.
        case noop
        /// PUT / ENQUEUE.
        case enqueue(QueuedTask)
        case ack(taskId: UInt64)
        /// A task parked in node `from`'s mailbox as `<from>-<seq>`: applied
        /// only if no entry of `from` at or above `seq` was applied before.
        case enqueueParked(QueuedTask, from: Int, seq: UInt64)
        /// TAKE / DEQUEUE: leased until this cluster time, its delivery count now.
        case lease(taskId: UInt64, until: Int64, deliveries: UInt32)
        /// TOUCH: the lease now ends at this cluster time.
        case touch(taskId: UInt64, until: Int64)
        /// NACK: the lease ends; ready at this cluster time (0: at once).
        case release(taskId: UInt64, readyAt: Int64)
        /// BURY, or a task past max_deliveries: into this dead-letter queue.
        case bury(taskId: UInt64, deadLetter: String)
        /// KICK: these dead-lettered tasks go back to the queue each came from.
        case kick(taskIds: [UInt64])
        /// PAUSE: the queue leases nothing until this cluster time (0: resumes).
        case pause(queue: String, until: Int64)

        /// The task the operation changes, if it changes one that exists.
        public var taskId: UInt64? {
            switch self {
            case .ack(let id), .lease(let id, _, _), .touch(let id, _), .release(let id, _), .bury(let id, _):
                return id
            default:
                return nil
            }
        }
    }

    public var index: UInt64
    public var epoch: UInt64
    public var lamport: UInt64
    public var op: Operation

    public init(index: UInt64, epoch: UInt64, lamport: UInt64, op: Operation) {
        self.index = index
        self.epoch = epoch
        self.lamport = lamport
        self.op = op
    }

    private enum Kind: UInt8 {
        case noop = 1, enqueue = 2, ack = 3, enqueueParked = 4, put = 5, putParked = 6
        case lease = 7, touch = 8, release = 9, bury = 10, kick = 11, pause = 12
        case putFlagged = 13, putParkedFlagged = 14
    }

    private var kind: Kind {
        switch op {
        case .noop: return .noop
        case .enqueue(let t): return t.isPlain ? .enqueue : .putFlagged
        case .ack: return .ack
        case .enqueueParked(let t, _, _): return t.isPlain ? .enqueueParked : .putParkedFlagged
        case .lease: return .lease
        case .touch: return .touch
        case .release: return .release
        case .bury: return .bury
        case .kick: return .kick
        case .pause: return .pause
        }
    }

    public func encode(into w: inout ByteWriter) {
        let k = kind
        w.u8(k.rawValue)
        w.u64(index)
        w.u64(epoch)
        w.u64(lamport)
        switch op {
        case .noop: break
        case .enqueue(let t):
            Self.encodeTask(t, options: k == .putFlagged, into: &w)
        case .ack(let id):
            w.u64(id)
        case .enqueueParked(let t, let from, let seq):
            Self.encodeTask(t, options: k == .putParkedFlagged, into: &w)
            w.u32(UInt32(truncatingIfNeeded: from))
            w.u64(seq)
        case .lease(let id, let until, let deliveries):
            w.u64(id)
            w.i64(until)
            w.u32(deliveries)
        case .touch(let id, let until):
            w.u64(id)
            w.i64(until)
        case .release(let id, let readyAt):
            w.u64(id)
            w.i64(readyAt)
        case .bury(let id, let deadLetter):
            w.u64(id)
            w.string(deadLetter)
        case .kick(let ids):
            w.u32(UInt32(ids.count))
            for id in ids { w.u64(id) }
        case .pause(let queue, let until):
            w.string(queue)
            w.i64(until)
        }
    }

    private static func encodeTask(_ t: QueuedTask, options: Bool, into w: inout ByteWriter) {
        w.u64(t.id)
        w.u64(t.lamport)
        w.i64(t.enqueuedAtMs)
        w.blob(t.payload)
        if options { t.encodeFlaggedOptions(into: &w) }
    }

    private enum Options { case none, every, flagged }

    private static func decodeTask(_ options: Options, _ r: inout ByteReader) -> QueuedTask? {
        guard let id = r.u64(), let tl = r.u64(), let at = r.i64(), let payload = r.blob() else { return nil }
        var t = QueuedTask(id: id, lamport: tl, enqueuedAtMs: at, payload: payload)
        switch options {
        case .none: break
        case .every: if !t.decodeOptions(&r) { return nil }
        case .flagged: if !t.decodeFlaggedOptions(&r) { return nil }
        }
        return t
    }

    private static func options(of k: Kind) -> Options {
        switch k {
        case .put, .putParked: return .every
        case .putFlagged, .putParkedFlagged: return .flagged
        default: return .none
        }
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 48 + payloadSize)
        encode(into: &w)
        return w.bytes
    }

    var payloadSize: Int {
        switch op {
        case .enqueue(let t), .enqueueParked(let t, _, _): return t.payload.count + (t.isPlain ? 0 : 64)
        case .kick(let ids): return 8 * ids.count
        default: return 16
        }
    }

    public static func decode(_ r: inout ByteReader) -> LogEntry? {
        guard let k = r.u8().flatMap(Kind.init(rawValue:)),
              let index = r.u64(), let epoch = r.u64(), let lamport = r.u64() else { return nil }
        let op: Operation
        switch k {
        case .noop:
            op = .noop
        case .enqueue, .put, .putFlagged:
            guard let t = decodeTask(options(of: k), &r) else { return nil }
            op = .enqueue(t)
        case .ack:
            guard let id = r.u64() else { return nil }
            op = .ack(taskId: id)
        case .enqueueParked, .putParked, .putParkedFlagged:
            guard let t = decodeTask(options(of: k), &r), let from = r.u32(), let seq = r.u64() else { return nil }
            op = .enqueueParked(t, from: Int(from), seq: seq)
        case .lease:
            guard let id = r.u64(), let until = r.i64(), let d = r.u32() else { return nil }
            op = .lease(taskId: id, until: until, deliveries: d)
        case .touch:
            guard let id = r.u64(), let until = r.i64() else { return nil }
            op = .touch(taskId: id, until: until)
        case .release:
            guard let id = r.u64(), let at = r.i64() else { return nil }
            op = .release(taskId: id, readyAt: at)
        case .bury:
            guard let id = r.u64(), let q = r.string() else { return nil }
            op = .bury(taskId: id, deadLetter: q)
        case .kick:
            guard let n = r.u32(), Int(n) * 8 <= r.remaining else { return nil }
            var ids: [UInt64] = []
            ids.reserveCapacity(Int(n))
            for _ in 0..<n {
                guard let id = r.u64() else { return nil }
                ids.append(id)
            }
            op = .kick(taskIds: ids)
        case .pause:
            guard let q = r.string(), let until = r.i64() else { return nil }
            op = .pause(queue: q, until: until)
        }
        return LogEntry(index: index, epoch: epoch, lamport: lamport, op: op)
    }

    public static func decode(_ bytes: [UInt8]) -> LogEntry? {
        var r = ByteReader(bytes)
        guard let e = decode(&r), r.isAtEnd else { return nil }
        return e
    }
}
