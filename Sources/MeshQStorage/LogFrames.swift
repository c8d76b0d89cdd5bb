// LogFrames: the byte layout of a log file, and how recovery tells a torn
// tail from corruption.
//
// Record frame: [length u32 LE][crc32c u32 LE][body]. Batch marker:
// [0xFFFFFFFF][crc32c of the next 8 bytes][batch length u64 LE], written at
// the start of every `sync` (one write, one fdatasync), giving the number of
// frame bytes that follow it in that write. Logs written before markers
// existed are plain frames and still read.
//
// A bad frame (short, zero or absurd length, checksum mismatch) at offset X:
// - is a torn tail when it lies in the last write: a crash before that write's
//   fdatasync returned may leave any of its pages unwritten (zeros) or the file
//   short, even with later frames of the same write intact. None of it was
//   acknowledged, so recovery drops that whole write (cuts the file at its
//   marker): a write is all or nothing, and the file always ends where the
//   last marker said, so the next write's marker can never sit inside an
//   earlier write's declared extent. A file that ends before its last
//   marker's extent, even at a frame boundary, is torn the same way.
// - is corruption when a later write follows: a valid batch marker at or after
//   the end the damaged batch declared (or, for a log without markers, any
//   valid frame after X). Those later writes were made after the damaged one
//   was durable, so something changed acknowledged data on disk. Recovery must
//   then never cut silently: the caller refuses to start (or repairs on request).
// A bit flip inside the final write cannot be told from a torn write; that is
// the one case where damage loses records without a refusal.

import MeshQCore

public enum LogFrames {
    static let markerTag: UInt32 = 0xFFFF_FFFF
    static let markerBytes = 16

    public enum Damage: Equatable, Sendable {
        /// Nothing valid follows the bad bytes: a crash mid-write.
        case tornTail
        /// Valid writes follow the bad frame at `offset`; the write holding
        /// it starts at `writeStart` (its marker; `offset` itself in a log
        /// without markers). Repair cuts there, so the damaged write goes
        /// whole, like a torn one, and the file still ends at a write boundary.
        case corrupt(offset: Int, writeStart: Int)
    }

    public struct Parsed {
        /// Where the bodies of the records before the damage (before the
        /// damaged write, if any) lie in the parsed bytes: ranges, not copies,
        /// so a big log is decoded in place (no per-record allocation).
        public var ranges: [Range<Int>]
        /// Where those end: the file's size, or where a cut would leave it.
        public var end: Int
        public var damage: Damage?
    }

    /// Every intact frame from the start, the end of the intact prefix, and
    /// what kind of damage (if any) stops it.
    public static func parse(_ bytes: [UInt8], from start: Int = 0) -> Parsed {
        var records: [Range<Int>] = []
        var offset = start
        var batchStart = start
        var batchEnd: Int?
        var recordsBeforeBatch = 0
        var sawMarker = false
        while offset < bytes.count {
            if let n = markerLength(bytes, at: offset) {
                sawMarker = true
                batchStart = offset
                recordsBeforeBatch = records.count
                batchEnd = offset + markerBytes + n
                offset += markerBytes
                continue
            }
            guard let end = frameEnd(bytes, at: offset), end <= batchEnd ?? Int.max else { break }
            records.append((offset + 8)..<end)
            offset = end
        }
        let insideBatch = batchEnd.map { offset < $0 } ?? false
        if offset == bytes.count && !insideBatch { return Parsed(ranges: records, end: offset, damage: nil) }
        var damage = Damage.tornTail
        if offset < bytes.count {
            // Where the next write would have started, were the damaged one not the last.
            let from = max(offset + 1, batchEnd ?? 0)
            let later = sawMarker ? nextMarker(bytes, from: from) : nextFrameOrMarker(bytes, from: from)
            if later != nil { damage = .corrupt(offset: offset, writeStart: insideBatch ? batchStart : offset) }
        }
        // Inside a write, the whole write goes.
        if insideBatch {
            records.removeLast(records.count - recordsBeforeBatch)
            offset = batchStart
        }
        return Parsed(ranges: records, end: offset, damage: damage)
    }

    /// The batch length a valid marker at `offset` declares.
    static func markerLength(_ bytes: [UInt8], at offset: Int) -> Int? {
        guard bytes.count - offset >= markerBytes, le32(bytes, offset) == markerTag else { return nil }
        let body = bytes[(offset + 8)..<(offset + 16)]
        guard CRC32C.checksum(body) == le32(bytes, offset + 4) else { return nil }
        var n: UInt64 = 0
        for i in (0..<8).reversed() { n = n << 8 | UInt64(bytes[offset + 8 + i]) }
        return n <= UInt64(Int32.max) ? Int(n) : nil
    }

    static func nextMarker(_ bytes: [UInt8], from: Int) -> Int? {
        var o = from
        while o + markerBytes <= bytes.count {
            if markerLength(bytes, at: o) != nil { return o }
            o += 1
        }
        return nil
    }

    static func nextFrameOrMarker(_ bytes: [UInt8], from: Int) -> Int? {
        var o = from
        while o + 8 < bytes.count {
            if markerLength(bytes, at: o) != nil || frameEnd(bytes, at: o) != nil { return o }
            o += 1
        }
        return nil
    }

    /// The end of the frame starting at `offset`, if it is complete and its
    /// checksum holds. A zero length is refused: it is what a zero-filled tail
    /// (a file extended but never written) looks like.
    static func frameEnd(_ bytes: [UInt8], at offset: Int = 0, limit: Int = DurableLog.maxRecordBytes) -> Int? {
        guard bytes.count - offset >= 8 else { return nil }
        let len = Int(le32(bytes, offset))
        guard len > 0, len <= limit, bytes.count - offset - 8 >= len else { return nil }
        let end = offset + 8 + len
        guard CRC32C.checksum(bytes[(offset + 8)..<end]) == le32(bytes, offset + 4) else { return nil }
        return end
    }

    static func le32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }

    static func put32(_ v: UInt32, into out: inout [UInt8]) {
        for k in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * k))) }
    }

    static func frame(_ body: [UInt8], into out: inout [UInt8], limit: Int = DurableLog.maxRecordBytes) {
        precondition(!body.isEmpty && body.count <= limit, "log frame of \(body.count) bytes (limit \(limit))")
        put32(UInt32(body.count), into: &out)
        put32(CRC32C.checksum(body), into: &out)
        out.append(contentsOf: body)
    }

    /// Frames a body encoded straight into `out` (no array of its own): the
    /// header is reserved, `encode` appends the body after it, then the
    /// header gets the body's length and checksum. Same bytes as `frame`.
    static func frame(into out: inout [UInt8], limit: Int = DurableLog.maxRecordBytes,
                      encode: (inout ByteWriter) -> Void) {
        let start = out.count
        var w = ByteWriter(continuing: &out)
        w.u32(0)
        w.u32(0)
        encode(&w)
        w.finish(into: &out)
        let n = out.count - start - 8
        precondition(n > 0 && n <= limit, "log frame of \(n) bytes (limit \(limit))")
        let crc = CRC32C.checksum(out[(start + 8)...])
        for k in 0..<4 {
            out[start + k] = UInt8(truncatingIfNeeded: UInt32(n) >> (8 * k))
            out[start + 4 + k] = UInt8(truncatingIfNeeded: crc >> (8 * k))
        }
    }

    /// Sixteen bytes to reserve at the start of a batch, filled in by `sealBatch`.
    static let markerPlaceholder = [UInt8](repeating: 0, count: markerBytes)

    /// Fills in the marker at the start of `batch` with the length of the frames after it.
    static func sealBatch(_ batch: inout [UInt8]) {
        let n = UInt64(batch.count - markerBytes)
        var body: [UInt8] = []
        for k in 0..<8 { body.append(UInt8(truncatingIfNeeded: n >> (8 * k))) }
        var head: [UInt8] = []
        put32(markerTag, into: &head)
        put32(CRC32C.checksum(body), into: &head)
        batch.replaceSubrange(0..<markerBytes, with: head + body)
    }
}
