// LogEntry: one change to the replicated state, at a log index, stamped with
// the epoch of the leader that proposed it and its Lamport time. The log is
// the single source of truth: the queue is what applying it yields, so every
// change that got OK is an entry on disk first.

public struct LogEntry: Equatable, Sendable {
    public enum Operation: Equatable, Sendable {
        /// A new leader's first entry: makes its epoch durable.
        case noop
        case enqueue(QueuedTask)
        case ack(taskId: UInt64)
        /// A task parked in node `from`'s mailbox as `<from>-<seq>`: applied
        /// only if no entry of `from` at or above `seq` was applied before.
        case enqueueParked(QueuedTask, from: Int, seq: UInt64)
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

    private enum Kind: UInt8 { case noop = 1, enqueue = 2, ack = 3, enqueueParked = 4 }

    public func encode(into w: inout ByteWriter) {
        switch op {
        case .noop: w.u8(Kind.noop.rawValue)
        case .enqueue: w.u8(Kind.enqueue.rawValue)
        case .ack: w.u8(Kind.ack.rawValue)
        case .enqueueParked: w.u8(Kind.enqueueParked.rawValue)
        }
        w.u64(index)
        w.u64(epoch)
        w.u64(lamport)
        switch op {
        case .noop: break
        case .enqueue(let t):
            w.u64(t.id)
            w.u64(t.lamport)
            w.i64(t.enqueuedAtMs)
            w.blob(t.payload)
        case .ack(let id):
            w.u64(id)
        case .enqueueParked(let t, let from, let seq):
            w.u64(t.id)
            w.u64(t.lamport)
            w.i64(t.enqueuedAtMs)
            w.blob(t.payload)
            w.u32(UInt32(truncatingIfNeeded: from))
            w.u64(seq)
        }
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 48 + payloadSize)
        encode(into: &w)
        return w.bytes
    }

    var payloadSize: Int {
        switch op {
        case .enqueue(let t), .enqueueParked(let t, _, _): return t.payload.count
        default: return 0
        }
    }

    public static func decode(_ r: inout ByteReader) -> LogEntry? {
        guard let k = r.u8().flatMap(Kind.init(rawValue:)),
              let index = r.u64(), let epoch = r.u64(), let lamport = r.u64() else { return nil }
        switch k {
        case .noop:
            return LogEntry(index: index, epoch: epoch, lamport: lamport, op: .noop)
        case .enqueue:
            guard let id = r.u64(), let tl = r.u64(), let at = r.i64(), let payload = r.blob() else { return nil }
            let t = QueuedTask(id: id, lamport: tl, enqueuedAtMs: at, payload: payload)
            return LogEntry(index: index, epoch: epoch, lamport: lamport, op: .enqueue(t))
        case .ack:
            guard let id = r.u64() else { return nil }
            return LogEntry(index: index, epoch: epoch, lamport: lamport, op: .ack(taskId: id))
        case .enqueueParked:
            guard let id = r.u64(), let tl = r.u64(), let at = r.i64(), let payload = r.blob(),
                  let from = r.u32(), let seq = r.u64() else { return nil }
            let t = QueuedTask(id: id, lamport: tl, enqueuedAtMs: at, payload: payload)
            return LogEntry(index: index, epoch: epoch, lamport: lamport, op: .enqueueParked(t, from: Int(from), seq: seq))
        }
    }

    public static func decode(_ bytes: [UInt8]) -> LogEntry? {
        var r = ByteReader(bytes)
        guard let e = decode(&r), r.isAtEnd else { return nil }
        return e
    }
}
