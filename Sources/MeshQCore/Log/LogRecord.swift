// LogRecord: one record of a node's durable log. Besides the entries, a node
// of a cluster writes where it knows the commit point to be (so a restart
// applies only committed entries to the queue and keeps the rest as the
// uncommitted tail), and a truncation when a round it led was aborted.
//
// Replay rule: an entry at an index the log already holds replaces that entry
// and everything after it. That is how a follower's conflicting uncommitted
// tail gives way to the leader's entries without rewriting the file.

public enum LogRecord: Equatable, Sendable {
    case entry(LogEntry)
    /// Entries up to this index are committed.
    case commit(UInt64)
    /// Entries after this index are void.
    case truncate(after: UInt64)

    // Entry records start with LogEntry's kind byte (1...3); these two are
    // far from it, so a log written before they existed reads unchanged.
    private static let commitKind: UInt8 = 0xC1
    private static let truncateKind: UInt8 = 0xC2

    public func encoded() -> [UInt8] {
        if case .entry(let e) = self { return e.encoded() }
        var w = ByteWriter(capacity: 9)
        encode(into: &w)
        return w.bytes
    }

    public func encode(into w: inout ByteWriter) {
        switch self {
        case .entry(let e):
            e.encode(into: &w)
        case .commit(let i):
            w.u8(Self.commitKind)
            w.u64(i)
        case .truncate(let i):
            w.u8(Self.truncateKind)
            w.u64(i)
        }
    }

    public static func decode(_ bytes: [UInt8]) -> LogRecord? {
        decode(bytes, range: 0..<bytes.count)
    }

    /// The record whose bytes are `range` of `bytes` (read in place).
    public static func decode(_ bytes: [UInt8], range: Range<Int>) -> LogRecord? {
        var r = ByteReader(bytes, range: range)
        guard let kind = r.u8() else { return nil }
        switch kind {
        case commitKind, truncateKind:
            guard let i = r.u64(), r.isAtEnd else { return nil }
            return kind == commitKind ? .commit(i) : .truncate(after: i)
        default:
            r = ByteReader(bytes, range: range)
            guard let e = LogEntry.decode(&r), r.isAtEnd else { return nil }
            return .entry(e)
        }
    }
}
