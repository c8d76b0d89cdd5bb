// NodeStore: the node's log entries on top of the byte-record DurableLog.
// One record per entry; a batch is appended and synced with a single write and
// fdatasync (group commit). The log is compacted into a snapshot when it has
// grown well past the live state, so disk use follows the queue, not history.
//
// Every write path (log, mailbox, vote, Lamport floor, compaction) reports a
// failure to `onDiskError` before throwing it, so the daemon logs one
// `disk_full` or `disk_error` line naming the call and errno whichever path
// hit it. Recovery reports corruption (valid writes after a bad record) in
// `Recovered.corruption` / `RecoveredMailbox.corruption` and leaves the file
// as found; `repairLog()` / `repairMailbox()` set the damaged bytes aside.
import Foundation
import MeshQCore
import MeshQStorage

public final class NodeStore {
    public struct Recovered {
        public var snapshot: QueueSnapshot?
        /// With `corruption`, only the records before the damage.
        public var records: [LogRecord]
        public var droppedTailBytes: Int
        /// A corrupt newest snapshot set aside (nothing was lost by it).
        public var discardedSnapshot: String?
        /// The log is damaged with valid writes after the damage: records
        /// this node wrote (and may have acknowledged) cannot be read. The log
        /// is not open for appending until `repairLog()`.
        public var corruption: DurableLog.Corruption?
    }

    public struct RecoveredMailbox {
        public var mailbox: Mailbox
        /// As for the log: parked tasks after this point cannot be read.
        public var corruption: DurableLog.Corruption?
    }

    public struct CorruptData: Error, CustomStringConvertible {
        public let description: String
    }

    private let log: DurableLog
    private let vote: VoteFile
    private var floor: LamportFloorFile
    private let rejoinMarker: RejoinMarkerFile
    /// The mailbox keeps its own small log (data_dir/mailbox): compacting or
    /// replacing the replicated log never touches a parked task.
    private let mailboxLog: DurableLog
    public let directory: String
    /// Compact once the log is at least this big...
    public var compactMinBytes = 64 << 20 {
        didSet { reserveAhead() }
    }
    /// ...and this many times the size of the live state.
    public var compactRatio = 2
    /// A live state this big is compacted on a thread of its own
    /// (`startCompaction`); a smaller one at once (`compact`, milliseconds).
    public var backgroundCompactionBytes = 16 << 20
    /// Told of every failed write before it is thrown.
    public var onDiskError: ((StorageError) -> Void)?
    /// Injected disk failures (MESHQ_TEST_DISK_FAULT), shared by both logs.
    public var faults: DiskFaults? {
        didSet {
            log.faults = faults
            mailboxLog.faults = faults
        }
    }

    public init(directory: String, fsync: Bool) throws {
        self.directory = directory
        log = try DurableLog(directory: directory, fsync: fsync)
        vote = VoteFile(directory: directory)
        floor = LamportFloorFile(directory: directory)
        rejoinMarker = RejoinMarkerFile(directory: directory)
        let mdir = directory + "/mailbox"
        do {
            try FileManager.default.createDirectory(atPath: mdir, withIntermediateDirectories: true)
        } catch {
            throw CorruptData(description: "\(mdir): cannot create the mailbox directory: \(error)")
        }
        mailboxLog = try DurableLog(directory: mdir, fsync: fsync)
        mailboxLog.preallocateBytes = 0
        #if MESHQ_TESTING
        // Test-only, compiled only with -D MESHQ_TESTING (`make test`): a
        // smaller segment, so a debug build's few thousand commands a second
        // still write many of them (the bounded-growth integration test).
        if let v = ProcessInfo.processInfo.environment["MESHQ_TEST_COMPACT_MIN_BYTES"].flatMap(Int.init), v > 0 {
            compactMinBytes = v
        }
        #endif
        reserveAhead()
    }

    /// The log file reserves space ahead of its writes (DurableLog): a
    /// sixteenth of a segment at a time (at most 4 MiB), never past the
    /// segment, so a data_dir is no larger for it when it compacts. The
    /// mailbox reserves none: it is written only while no leader is reachable.
    private func reserveAhead() {
        log.preallocateBytes = min(4 << 20, compactMinBytes / 16)
        log.reserveLimit = compactMinBytes
    }

    private func reported<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as StorageError {
            onDiskError?(e)
            throw e
        }
    }

    /// The parked ENQUEUEs not yet delivered, and the sequence counter. A
    /// mailbox that never held anything (a new or wiped data_dir), or a
    /// damaged one, starts its
    /// sequence at the wall clock in microseconds: above any sequence an
    /// earlier incarnation of this node handed out (one per microsecond at
    /// most, since its own start), so the replicated state's record of what
    /// it applied from this node never takes a new task for a duplicate.
    public func recoverMailbox(wallMicros: UInt64) throws -> RecoveredMailbox {
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
        // A damaged mailbox may have lost the highest sequences it handed out: the same.
        if (r.snapshot == nil && records.isEmpty) || r.corruption != nil { next = max(next, wallMicros) }
        return RecoveredMailbox(mailbox: Mailbox(nextSeq: next, records: records), corruption: r.corruption)
    }

    public func persistMailbox(_ records: [MailboxRecord]) throws {
        for r in records { mailboxLog.append(r.encoded()) }
        try reported { try mailboxLog.sync() }
    }

    /// Once everything parked is delivered, the mailbox log shrinks to its counter.
    public func compactMailboxIfEmpty(_ m: Mailbox) throws {
        guard m.isEmpty, mailboxLog.logBytes > 1 << 20 else { return }
        try reported { try mailboxLog.compact(snapshot: Mailbox.encodeSnapshot(nextSeq: m.nextSeq)) }
    }

    /// The highest epoch this node voted in, and promised to another node.
    public func loadVote() throws -> VoteFile.Vote { try vote.load() }

    public var voteFileExists: Bool { vote.exists }

    /// Whether this node must start catching up (not voting): its log lost
    /// records it may have acknowledged, and it has not caught up since.
    public var rejoiningMarked: Bool { rejoinMarker.exists }

    /// Made durable before the damaged records are set aside.
    public func markRejoining(reason: String) throws {
        try reported { try rejoinMarker.create(reason: reason) }
    }

    /// The node holds a leader's log again.
    public func clearRejoining() throws {
        try reported { try rejoinMarker.remove() }
    }

    public func persistVote(voted: UInt64, promised: UInt64) throws {
        try reported { try vote.store(VoteFile.Vote(voted: voted, promised: promised)) }
    }

    /// The stored Lamport floor: the clock starts there (0 if never written).
    public func loadLamportFloor() throws -> UInt64 { try floor.load() }

    /// Keeps the stored floor ahead of `clock` (a write every few hundred
    /// thousand ticks); call it often enough that the clock cannot pass the
    /// floor's margin in between.
    public func advanceLamportFloor(clock: UInt64) throws {
        try reported { _ = try floor.advance(clock: clock) }
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
        records.reserveCapacity(r.recordCount)
        try r.forEachRecord { bytes, range in
            guard let e = LogRecord.decode(bytes, range: range) else {
                throw CorruptData(description: "\(directory): log record \(records.count + 1) passed its checksum but cannot be decoded (written by a newer meshqd?)")
            }
            records.append(e)
        }
        return Recovered(snapshot: snapshot, records: records, droppedTailBytes: r.droppedTailBytes,
                         discardedSnapshot: r.discardedSnapshot, corruption: r.corruption)
    }

    /// After `recover()` reported corruption: the damaged bytes go to a
    /// `.corrupt-at-<offset>` file beside the log, the log is cut there and
    /// opened. Returns the path of the set-aside bytes.
    public func repairLog() throws -> String { try reported { try log.repairCorruption() } }

    public func repairMailbox() throws -> String { try reported { try mailboxLog.repairCorruption() } }

    /// Appends and makes durable (per the fsync setting) a batch of records.
    /// A thrown error with `recoverable` (a full disk) means none of the batch
    /// is on disk and the store can take the next batch; any other is final.
    public func persist(_ records: [LogRecord]) throws {
        for r in records { log.append { r.encode(into: &$0) } }
        try reported { try log.sync() }
    }

    public var logBytes: Int { log.logBytes }

    /// Throws while the data_dir's file system refuses a small synced write.
    public func probeSpace() throws {
        try DiskSpaceProbe.check(directory: directory)
    }

    public func shouldCompact(liveBytes: Int) -> Bool {
        log.logBytes >= compactMinBytes && log.logBytes > compactRatio * liveBytes
    }

    /// Replaces the log by `snapshot`, keeping `tail` (durable entries after
    /// the snapshot's point: a cluster's uncommitted ones) after it.
    /// `encoded`: `snapshot`'s bytes when the caller has them (as received
    /// from a leader), written as they are.
    public func compact(_ snapshot: QueueSnapshot, encoded: [UInt8]? = nil, tail: [LogEntry] = []) throws {
        try reported {
            try log.compact(snapshot: encoded ?? snapshot.encoded(), tail: tail.map { LogRecord.entry($0).encoded() })
        }
    }

    /// A compaction whose snapshot is written on its own thread, so a big
    /// queue never stalls the loop; `finishCompaction` commits it (call it
    /// on later events until it returns true).
    public var compactionRunning: Bool { log.compactionRunning }

    public func startCompaction(_ image: NodeCore.CompactionImage) throws {
        try reported {
            try log.startCompaction(tail: image.tail.map { LogRecord.entry($0).encoded() }) {
                // Off the loop: gathering the tasks and keys, sorting them
                // (tasks by id, keys) and encoding are the bulk of the work.
                var s = image.filledSnapshot()
                s.tasks.sort { $0.id < $1.id }
                s.keys.sort { $0.0 < $1.0 }
                return s.encoded()
            }
        }
    }

    @discardableResult
    public func finishCompaction(wait: Bool = false) throws -> Bool {
        try reported { try log.finishCompaction(wait: wait) }
    }

    public func close() {
        log.close()
        mailboxLog.close()
    }
}
