// ByteWriter / ByteReader: the little-endian binary encoding shared by the log
// records, snapshots and (later) the peer wire format. A reader never traps on
// bad input: every read is bounds-checked and returns nil past the end, so a
// corrupt record or a hostile peer yields a decode error, not a crash.

public struct ByteWriter {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Appends after the bytes already in `buffer`, which it takes (leaving it
    /// empty, so the writer's array is the only reference and grows in place);
    /// `finish` hands them back. A log batch is encoded into this way, with
    /// no array per record.
    public init(continuing buffer: inout [UInt8]) {
        bytes = []
        swap(&bytes, &buffer)
    }

    /// Gives the bytes back into `buffer` (see `init(continuing:)`).
    public mutating func finish(into buffer: inout [UInt8]) {
        swap(&bytes, &buffer)
        bytes = []
    }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }

    public mutating func u32(_ v: UInt32) {
        var v = v
        for _ in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v)); v >>= 8 }
    }

    public mutating func u64(_ v: UInt64) {
        var v = v
        for _ in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v)); v >>= 8 }
    }

    public mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }

    /// Length-prefixed bytes.
    public mutating func blob(_ b: [UInt8]) {
        u32(UInt32(b.count))
        bytes.append(contentsOf: b)
    }

    /// A blob of the string's UTF-8, copied straight in (no array made).
    public mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { u in
            u32(UInt32(u.count))
            bytes.append(contentsOf: u)
        }
    }
}

public struct ByteReader {
    private let bytes: [UInt8]
    public private(set) var offset: Int
    /// Reads stop here: a record is read in place from a bigger buffer.
    private let end: Int

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
        end = bytes.count
    }

    /// Reads `range` of `bytes` only (clamped to the array).
    public init(_ bytes: [UInt8], range: Range<Int>) {
        self.bytes = bytes
        end = min(range.upperBound, bytes.count)
        offset = min(max(0, range.lowerBound), end)
    }

    public var remaining: Int { end - offset }
    public var isAtEnd: Bool { offset >= end }

    public mutating func u8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u32() -> UInt32? {
        guard remaining >= 4 else { return nil }
        var v: UInt32 = 0
        for i in (0..<4).reversed() { v = (v << 8) | UInt32(bytes[offset + i]) }
        offset += 4
        return v
    }

    public mutating func u64() -> UInt64? {
        guard remaining >= 8 else { return nil }
        var v: UInt64 = 0
        for i in (0..<8).reversed() { v = (v << 8) | UInt64(bytes[offset + i]) }
        offset += 8
        return v
    }

    public mutating func i64() -> Int64? { u64().map { Int64(bitPattern: $0) } }

    public mutating func blob(maxLength: Int = 1 << 28) -> [UInt8]? {
        guard let n = u32().map(Int.init), n <= maxLength, remaining >= n else { return nil }
        defer { offset += n }
        return Array(bytes[offset..<(offset + n)])
    }

    public mutating func string(maxLength: Int = 1 << 20) -> String? {
        guard let n = u32().map(Int.init), n <= maxLength, remaining >= n else { return nil }
        defer { offset += n }
        return String(decoding: bytes[offset..<(offset + n)], as: UTF8.self)
    }
}
