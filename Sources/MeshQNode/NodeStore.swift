// NodeStore: the node's log entries on top of the byte-record DurableLog.
// One record per entry; a batch is appended and synced with a single write and
// fdatasync (group commit). The log is compacted into a snapshot when it has
// grown well past the live state, so disk use follows the queue, not history.
import Foundation
import MeshQCore
import MeshQStorage

public final class NodeStore {
    public struct Recovered {
        public var snapshot: QueueSnapshot?
        public var records: [LogRecord]
        public var droppedTailBytes: Int
        /// A corrupt newest snapshot set aside (nothing was lost by it).
        public var discardedSnapshot: String?
    }

    public struct CorruptData: Error, CustomStringConvertible {
        public let description: String
    }

    private let log: DurableLog
    private let vote: VoteFile
    /// The mailbox keeps its own small log (data_dir/mailbox): compacting or
    /// replacing the replicated log never touches a parked task.
    private let mailboxLog: DurableLog
    public let directory: String
    /// Compact once the log is at least this big...
    public var compactMinBytes = 64 << 20
    /// ...and this many times the size of the live state.
    public var compactRatio = 2

    public init(directory: String, fsync: Bool) throws {
        self.directory = directory
        log = try DurableLog(directory: directory, fsync: fsync)
        vote = VoteFile(directory: directory)
        let mdir = directory + "/mailbox"
        do {
            try FileManager.default.createDirectory(atPath: mdir, withIntermediateDirectories: true)
        } catch {
            throw CorruptData(description: "\(mdir): cannot create the mailbox directory: \(error)")
        }
        mailboxLog = try DurableLog(directory: mdir, fsync: fsync)
    }

    /// The parked ENQUEUEs not yet delivered, and the sequence counter.
    public func recoverMailbox() throws -> Mailbox {
        let r = try mailboxLog.recover()
        var next: UInt64 = 1
        if let s = r.snapshot {
            guard let n = Mailbox.decodeSnapshot(s) else {
                throw CorruptData(description: "\(directory)/mailbox: the snapshot cannot be decoded")
            }
            next = n
        }
        var records: [MailboxRecord] = []
        for (i, rec) in r.records.enumerated() {
            guard let m = MailboxRecord.decode(rec) else {
                throw CorruptData(description: "\(directory)/mailbox: record \(i + 1) passed its checksum but cannot be decoded")
            }
            records.append(m)
        }
        return Mailbox(nextSeq: next, records: records)
    }

    public func persistMailbox(_ records: [MailboxRecord]) throws {
        for r in records { mailboxLog.append(r.encoded()) }
        try mailboxLog.sync()
    }

    /// Once everything parked is delivered, the mailbox log shrinks to its counter.
    public func compactMailboxIfEmpty(_ m: Mailbox) throws {
        guard m.isEmpty, mailboxLog.logBytes > 1 << 20 else { return }
        try mailboxLog.compact(snapshot: Mailbox.encodeSnapshot(nextSeq: m.nextSeq))
    }

    /// The highest epoch this node voted in, and promised to another node.
    public func loadVote() throws -> VoteFile.Vote { try vote.load() }

    public func persistVote(voted: UInt64, promised: UInt64) throws {
        try vote.store(VoteFile.Vote(voted: voted, promised: promised))
    }

    public func recover() throws -> Recovered {
        let r = try log.recover()
        var snapshot: QueueSnapshot?
        if let bytes = r.snapshot {
            guard let s = QueueSnapshot.decode(bytes) else {
                throw CorruptData(description: "\(directory): the snapshot passed its checksum but cannot be decoded (written by a newer meshqd?)")
            }
            snapshot = s
        }
        var records: [LogRecord] = []
        records.reserveCapacity(r.records.count)
        for (i, rec) in r.records.enumerated() {
            guard let e = LogRecord.decode(rec) else {
                throw CorruptData(description: "\(directory): log record \(i + 1) passed its checksum but cannot be decoded (written by a newer meshqd?)")
            }
            records.append(e)
        }
        return Recovered(snapshot: snapshot, records: records, droppedTailBytes: r.droppedTailBytes,
                         discardedSnapshot: r.discardedSnapshot)
    }

    /// Appends and makes durable (per the fsync setting) a batch of records.
    public func persist(_ records: [LogRecord]) throws {
        for r in records { log.append(r.encoded()) }
        try log.sync()
    }

    public var logBytes: Int { log.logBytes }

    public func shouldCompact(liveBytes: Int) -> Bool {
        log.logBytes >= compactMinBytes && log.logBytes > compactRatio * liveBytes
    }

    public func compact(_ snapshot: QueueSnapshot) throws {
        try log.compact(snapshot: snapshot.encoded())
    }

    public func close() {
        log.close()
        mailboxLog.close()
    }
}
