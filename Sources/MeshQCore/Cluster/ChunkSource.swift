// ChunkSource: the bytes a chunked transfer sends, produced in order as its
// window moves. A recovery reply is a ready blob; a snapshot is encoded task
// by task (exactly `QueueSnapshot.encoded()`, without ever holding the whole
// encoding), so a leader streaming a snapshot of GiBs to a follower spends a
// moment listing its tasks, not seconds encoding them, and keeps serving.
// Invariant: the bytes from `kept` to `produced` are held, `kept` never
// passes the start of the last chunk (a probe resends it) nor an offset the
// sender may still go back to (the last acknowledged one).

public struct ChunkSource: Sendable {
    enum Storage: Sendable {
        case blob([UInt8])
        case snapshot(QueueSnapshot)
    }

    private let storage: Storage
    /// The encoding's size in bytes.
    public let count: Int
    /// Held bytes: `held[0]` is at offset `kept`.
    private var held: [UInt8] = []
    private var kept = 0
    /// Snapshot encoding: what is produced so far (the next task to encode).
    private var produced = 0
    private var nextTask = 0

    public static func blob(_ b: [UInt8]) -> ChunkSource { ChunkSource(storage: .blob(b), count: b.count) }

    public static func snapshot(_ s: QueueSnapshot) -> ChunkSource {
        ChunkSource(storage: .snapshot(s), count: encodedSize(s))
    }

    private init(storage: Storage, count: Int) {
        self.storage = storage
        self.count = count
    }

    /// The size of `QueueSnapshot.encoded()`, computed without encoding.
    public static func encodedSize(_ s: QueueSnapshot) -> Int { s.encodedSize }

    /// The same bytes from the start (a receiver that lost what it held).
    func restarted() -> ChunkSource { ChunkSource(storage: storage, count: count) }

    /// The whole blob when it is one (a recovery reply reused for a new request).
    var wholeBlob: [UInt8]? {
        if case .blob(let b) = storage { return b }
        return nil
    }

    /// Bytes `from..<to` (to <= count; from at or past what was released).
    public mutating func bytes(_ from: Int, _ to: Int) -> [UInt8] {
        precondition(from >= kept && from <= to && to <= count)
        switch storage {
        case .blob(let b):
            return Array(b[from..<to])
        case .snapshot(let s):
            while produced < to { produce(s) }
            return Array(held[(from - kept)..<(to - kept)])
        }
    }

    /// Bytes before `offset` will not be asked for again.
    public mutating func release(before offset: Int) {
        guard case .snapshot = storage, offset > kept else { return }
        let n = min(offset, produced) - kept
        guard n > 0 else { return }
        held.removeFirst(n)
        kept += n
    }

    /// Encodes the next piece of the snapshot (the header, one task, or the
    /// trailer) onto `held`.
    private mutating func produce(_ s: QueueSnapshot) {
        var w = ByteWriter(capacity: 64)
        if produced == 0 {
            s.encodeHeader(into: &w)
        } else if nextTask < s.tasks.count {
            QueueSnapshot.encode(s.tasks[nextTask], into: &w)
            nextTask += 1
        } else {
            s.encodeTrailer(into: &w)
        }
        held.append(contentsOf: w.bytes)
        produced += w.bytes.count
    }
}
