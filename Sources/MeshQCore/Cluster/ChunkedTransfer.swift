// ChunkedTransfer: a large blob (an encoded snapshot, a recovery reply) sent
// as byte ranges of at most `chunkBytes` each, with cumulative
// acknowledgements and a small window in flight (go-back-N, in the spirit of
// etcd raft's Progress/inflights): the sender keeps at most `window` chunks
// unacknowledged and sends the next as acknowledgements arrive; the receiver
// takes only the chunk at the offset it expects next and answers every chunk
// with how many bytes of the transfer it holds, in order. A duplicate or an
// out-of-order chunk changes nothing (its answer lets the sender go back);
// a chunk of another transfer (sender, kind, epoch, id, index or size)
// replaces a partial one when it starts at offset 0 or belongs to a newer
// epoch, and is otherwise answered with 0 ("start over").
// Invariant: the receiver's bytes are exactly the first `received` bytes of
// one transfer, and it hands the whole blob out once, when complete.

/// One numbered piece of a transfer (`index`: the snapshot's last index, or
/// the `after` of the recovery request it answers).
public struct Chunk: Equatable, Sendable {
    public enum Kind: UInt8, Sendable { case snapshot = 1, recovery = 2 }

    public var kind: Kind
    public var epoch: UInt64
    public var transfer: UInt64
    public var index: UInt64
    public var total: UInt64
    public var offset: UInt64
    public var bytes: [UInt8]

    public init(kind: Kind, epoch: UInt64, transfer: UInt64, index: UInt64, total: UInt64, offset: UInt64,
                bytes: [UInt8]) {
        self.kind = kind
        self.epoch = epoch
        self.transfer = transfer
        self.index = index
        self.total = total
        self.offset = offset
        self.bytes = bytes
    }
}

public enum ChunkLimits {
    /// 1 MiB a frame: large enough that per-frame costs (a header, one event
    /// loop turn on each side) vanish against the copy, small enough that a
    /// chunk interleaves with client traffic within a millisecond or two.
    public static let chunkBytes = 1 << 20
    /// Chunks in flight: 4 MiB covers loopback and LAN round trips at
    /// hundreds of MB/s, and bounds what one transfer queues in the transport.
    public static let window = 4
}

/// The sending side of one transfer.
public struct ChunkSender: Sendable {
    public let kind: Chunk.Kind
    public let epoch: UInt64
    public let transfer: UInt64
    public let index: UInt64
    public private(set) var source: ChunkSource
    public let chunkBytes: Int
    public let window: Int
    /// The receiver holds this many bytes, in order.
    public private(set) var acked = 0
    /// Bytes handed out for sending so far.
    public private(set) var sent = 0

    public init(kind: Chunk.Kind, epoch: UInt64, transfer: UInt64, index: UInt64, source: ChunkSource,
                chunkBytes: Int = ChunkLimits.chunkBytes, window: Int = ChunkLimits.window) {
        precondition(source.count > 0 && chunkBytes > 0 && window > 0)
        self.kind = kind
        self.epoch = epoch
        self.transfer = transfer
        self.index = index
        self.source = source
        self.chunkBytes = chunkBytes
        self.window = window
    }

    public init(kind: Chunk.Kind, epoch: UInt64, transfer: UInt64, index: UInt64, blob: [UInt8],
                chunkBytes: Int = ChunkLimits.chunkBytes, window: Int = ChunkLimits.window) {
        self.init(kind: kind, epoch: epoch, transfer: transfer, index: index, source: .blob(blob),
                  chunkBytes: chunkBytes, window: window)
    }

    public var total: Int { source.count }
    public var done: Bool { acked == total }
    private var lastStart: Int { (total - 1) / chunkBytes * chunkBytes }

    /// The chunks that fit the window now (marked sent).
    public mutating func next() -> [Chunk] {
        var out: [Chunk] = []
        while sent < total && sent < acked + window * chunkBytes {
            let end = min(total, sent + chunkBytes)
            out.append(chunk(sent, end))
            sent = end
        }
        return out
    }

    /// The receiver holds `received` bytes. Less than before means it lost
    /// them (it restarted, or took another transfer): go back to there,
    /// from the start when those bytes are no longer held.
    public mutating func acknowledged(received: UInt64) {
        guard received <= UInt64(total) else { return }
        if Int(received) < acked {
            acked = 0
            sent = 0
            source = source.restarted()
            return
        }
        acked = Int(received)
        if sent < acked { sent = acked }
        source.release(before: min(acked, lastStart))
    }

    /// Nothing was heard for a while: what is in flight is deemed lost.
    public mutating func rewind() {
        sent = acked
    }

    /// The last chunk again (a probe: its answer tells where the receiver is).
    public mutating func lastChunk() -> Chunk {
        chunk(lastStart, total)
    }

    private mutating func chunk(_ from: Int, _ to: Int) -> Chunk {
        Chunk(kind: kind, epoch: epoch, transfer: transfer, index: index, total: UInt64(total),
              offset: UInt64(from), bytes: source.bytes(from, to))
    }
}

/// The receiving side: assembles one transfer at a time.
public struct ChunkAssembler: Sendable {
    struct Key: Equatable, Sendable {
        var from: Int
        var kind: Chunk.Kind
        var epoch: UInt64
        var transfer: UInt64
        var index: UInt64
        var total: UInt64
    }

    /// The largest transfer accepted (garbage protection, not a real bound).
    public static let maxTotal: UInt64 = 1 << 40
    /// The most reserved at a transfer's first chunk (a snapshot's length is a u32).
    static let reserveLimit = UInt64(UInt32.max)

    private(set) var key: Key?
    public private(set) var bytes: [UInt8] = []
    /// The last transfer completed, so its late duplicates are recognised.
    private var completed: Key?

    public init() {}

    /// What a chunk led to: the answer to send (bytes held in order), the
    /// whole blob once complete, and whether this chunk was a duplicate of a
    /// transfer already complete. Nil: malformed, ignore it.
    public struct Outcome: Equatable, Sendable {
        public var received: UInt64
        public var blob: [UInt8]?
        public var alreadyComplete = false
    }

    public mutating func accept(_ c: Chunk, from: Int) -> Outcome? {
        let n = UInt64(c.bytes.count)
        guard c.total > 0, c.total <= Self.maxTotal, c.offset < c.total, n > 0, n <= c.total - c.offset else {
            return nil
        }
        let k = Key(from: from, kind: c.kind, epoch: c.epoch, transfer: c.transfer, index: c.index, total: c.total)
        if k == completed { return Outcome(received: c.total, blob: nil, alreadyComplete: true) }
        if k != key {
            let newer = key.map { c.epoch > $0.epoch } ?? true
            guard c.offset == 0 || newer else { return Outcome(received: 0, blob: nil) }
            key = k
            bytes = []
            guard c.offset == 0 else { return Outcome(received: 0, blob: nil) }
            // Room for the whole blob (up to the 4 GiB a stored snapshot can
            // be): growing by doubling copied a 1 GiB snapshot five times,
            // into fresh pages each time. Pages never written cost nothing.
            bytes.reserveCapacity(Int(min(c.total, Self.reserveLimit)))
        }
        if c.offset == UInt64(bytes.count) { bytes.append(contentsOf: c.bytes) }
        guard UInt64(bytes.count) == c.total else { return Outcome(received: UInt64(bytes.count), blob: nil) }
        completed = key
        key = nil
        defer { bytes = [] }
        return Outcome(received: c.total, blob: bytes)
    }

    /// Drops a partial transfer (and the memory it holds).
    public mutating func discard() {
        key = nil
        bytes = []
    }

    public var partialBytes: Int { bytes.count }
}
