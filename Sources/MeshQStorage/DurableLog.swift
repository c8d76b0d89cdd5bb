// DurableLog: an append-only file of checksummed records, plus a snapshot
// that replaces everything before it.
//
// Frames and batch markers are laid out by LogFrames. Appends are buffered and
// leave with one write and one fdatasync per `sync` (group commit), each write
// opened by a marker giving its length. A write of 1 MiB or more is dropped
// from the page cache once its fdatasync returned (it is durable; the next
// big write then reuses those pages instead of faulting in fresh ones, which
// was a third of a catching-up follower's CPU). Recovery reads frames until the first
// bad one. If it lies in the last write, it is a torn tail (a crash before
// that write was durable; nothing in it was acknowledged): that whole write is
// cut and new records follow good data. If a later write follows, it is
// corruption of data that was durable: recovery reports where
// (`Recovery.corruption`) and leaves the file untouched; the caller refuses to
// start, or calls `repairCorruption()` to set the damaged bytes aside.
//
// Preallocation: with fsync on, the file is extended with `posix_fallocate`
// (`preallocateBytes` at a time, never past `reserveLimit`) ahead of the
// writes, which go to their offset with `pwrite`. An append that grows the
// file makes every fdatasync also write the inode (its size changed): two
// device writes, one after the other. Within space
// already allocated the size stays put and fdatasync writes the data alone
// (0.08 ms against 0.13 on this project's test machine). The reserved space
// reads as zeros; recovery counts zeros after the last write as free space,
// not as a torn tail, and cuts them off; a clean close does the same.
//
// Write failures: a failed fdatasync poisons the log for good (fsyncgate: the
// kernel may have dropped the dirty pages and cleared the error, so a later
// success would prove nothing). A write refused for lack of space (ENOSPC)
// is rolled back (the file is cut back to its last durable size, the batch
// dropped) and reported `recoverable`: nothing of it is on disk, the log stays
// usable. Any other write error poisons the log.
//
// Generations make compaction crash-safe: `log.<g>` holds the records that
// follow `snapshot.<g>` (generation 0 has no snapshot). Compaction writes
// `snapshot.<g+1>.tmp`, fsyncs it, creates an empty `log.<g+1>`, renames the
// snapshot into place, fsyncs the directory, then deletes generation g. The
// rename is the commit point: before it recovery uses g, after it g+1, and no
// record is ever applied twice or lost. Records that follow the snapshot's
// point and must outlive the old log (a cluster's uncommitted tail) are
// written into the snapshot file after the snapshot frame, so the same rename
// commits them; recovery returns them before the records of `log.<g+1>`. A newest snapshot that fails its
// checksum is set aside only when that changes nothing: its own log is still
// empty and the complete generation before it holds the same state.
import Foundation
import Glibc
import SystemPackage
import MeshQCore

public final class DurableLog {
    public struct Recovery {
        public var snapshot: [UInt8]?
        /// The records after the snapshot, in order, as ranges of the bytes
        /// read (the snapshot file's tail, then the log file): a big log is
        /// decoded in place, without an allocation per record.
        public var segments: [(bytes: [UInt8], ranges: [Range<Int>])]
        public var droppedTailBytes: Int
        /// Where a corrupt newest snapshot was moved when recovery fell back to
        /// the generation before it; the caller should tell the operator.
        public var discardedSnapshot: String?
        /// Damage with valid writes after it. `records` then holds only the
        /// records before it, the file is untouched and the log is not open
        /// for appending until `repairCorruption()`.
        public var corruption: Corruption?

        public var recordCount: Int { segments.reduce(0) { $0 + $1.ranges.count } }

        /// Every record, in order, as (bytes, range of its body in them).
        public func forEachRecord(_ body: ([UInt8], Range<Int>) throws -> Void) rethrows {
            for seg in segments {
                for r in seg.ranges { try body(seg.bytes, r) }
            }
        }

        /// Every record copied out (small logs, tests).
        public var records: [[UInt8]] {
            var out: [[UInt8]] = []
            forEachRecord { b, r in out.append(Array(b[r])) }
            return out
        }
    }

    public struct Corruption: Equatable, Sendable {
        /// The damaged log file.
        public var file: String
        /// The byte offset of the first bad frame in it.
        public var offset: Int
        /// Bytes from there to the end of the file (records that cannot be read).
        public var bytesAfter: Int
        /// Where the write holding the bad frame starts: the records before
        /// it are the ones recovered, and repair cuts the file here.
        public var writeStart: Int
    }

    public static let maxRecordBytes = 256 << 20
    /// A synced write this big leaves the page cache (see the file comment).
    static let dropCacheBytes = 1 << 20
    /// A snapshot is the whole live queue, so it may pass the record limit;
    /// only its u32 length field bounds it.
    public static let maxSnapshotBytes = Int(UInt32.max)

    public let directory: String
    public let fsync: Bool
    /// Readable by tests, which swap the descriptor underneath to make a write fail.
    var fd: FileDescriptor?
    var generation: UInt64 = 0
    var pending: [UInt8] = []
    private var pendingRecords = 0
    var failed: StorageError?
    /// Set by a recovery that found corruption, until `repairCorruption()`.
    private var unrepaired: Corruption?
    /// A compaction whose snapshot is being written on its own thread.
    var background: BackgroundCompaction?
    /// Injected failures (tests and meshqd's MESHQ_TEST_DISK_FAULT); nil in service.
    public var faults: DiskFaults?
    public internal(set) var logBytes = 0
    public internal(set) var recordCount = 0
    /// Where the file's allocated space ends (at or past `logBytes`; zeros between).
    var allocatedEnd = 0
    /// False once preallocating failed for a reason other than space: the
    /// file then grows by its writes alone.
    private var canPreallocate = true
    /// How far ahead of the writes the file is extended (0: not at all).
    public var preallocateBytes = 4 << 20
    /// Reserving never takes the file past this size (the owner's compaction
    /// threshold: a log compacted there is never larger for its reserve).
    public var reserveLimit = Int.max

    public init(directory: String, fsync: Bool) throws {
        self.directory = directory
        self.fsync = fsync
        try DurableLog.makeDirectory(directory)
    }

    deinit { close() }

    static func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw StorageError("cannot create directory", path, error)
        }
    }

    /// Zero-padded so a directory listing sorts in generation order for a human.
    static func name(_ kind: String, _ gen: UInt64) -> String {
        let digits = String(gen)
        return kind + "." + String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    /// The generation of `snapshot.<g>` or `log.<g>`; nil for anything else (`.tmp`, `.corrupt`, LOCK).
    static func generation(of file: String, kind: String) -> UInt64? {
        guard file.hasPrefix(kind + "."), file.count == kind.count + 21 else { return nil }
        let digits = file.dropFirst(kind.count + 1)
        guard digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return UInt64(digits)
    }

    func path(_ kind: String, _ gen: UInt64) -> String { directory + "/" + DurableLog.name(kind, gen) }

    public var pendingBytes: Int { pending.count }

    // MARK: recovery

    public func recover() throws -> Recovery {
        close()
        background = nil
        let fm = FileManager.default
        let files: [String]
        do {
            files = try fm.contentsOfDirectory(atPath: directory)
        } catch {
            // Guessing "empty" here would start a node with no history.
            throw StorageError("cannot list", directory, error)
        }
        var snapshots = Set<UInt64>()
        var logs = Set<UInt64>()
        for f in files {
            if f.hasSuffix(".tmp") {
                // An interrupted compaction: its snapshot was never committed.
                try removeFile(directory + "/" + f)
            } else if let g = DurableLog.generation(of: f, kind: "snapshot") {
                snapshots.insert(g)
            } else if let g = DurableLog.generation(of: f, kind: "log") {
                logs.insert(g)
            }
        }

        var gen: UInt64 = 0
        var snapshot: [UInt8]?
        var snapshotTail: (bytes: [UInt8], ranges: [Range<Int>])?
        var discarded: String?
        var candidate = snapshots.max()
        while let g = candidate {
            let p = path("snapshot", g)
            let bytes = try readFile(p)
            if let parts = DurableLog.snapshotParts(bytes) {
                gen = g
                snapshot = Array(bytes[parts.body])
                if !parts.tail.isEmpty { snapshotTail = (bytes, parts.tail) }
                break
            }
            // Generation g-1 is the very state snapshot g summarised, so falling
            // back to it loses nothing, but only while log.<g> is empty and g-1
            // is whole: its snapshot (none for generation 0) and an intact log.
            // Everything is checked before anything is moved, so a refusal
            // leaves the directory as it was found.
            let logHasData = logs.contains(g) ? try fileSize(path("log", g)) > 0 : false
            let prev = g &- 1
            var prevWhole = g > 0 && logs.contains(prev) && (prev == 0 || snapshots.contains(prev))
            if prevWhole && prev > 0 {
                let prevSnap = try readFile(path("snapshot", prev))
                prevWhole = DurableLog.snapshotParts(prevSnap) != nil
            }
            if prevWhole {
                let prevLog = try readFile(path("log", prev))
                prevWhole = LogFrames.parse(prevLog).damage == nil
            }
            guard !logHasData, prevWhole else {
                let why = logHasData ? "\(DurableLog.name("log", g)) holds records that follow it"
                                     : "the generation before it is gone or damaged"
                throw StorageError("snapshot \(p) is corrupt (length or checksum mismatch) and \(why); "
                                   + "refusing to start without it")
            }
            let aside = p + ".corrupt"
            if fm.fileExists(atPath: aside) { try removeFile(aside) }
            do {
                try fm.moveItem(atPath: p, toPath: aside)
            } catch {
                throw StorageError("cannot set aside corrupt snapshot", p, error)
            }
            try syncDirectory()
            snapshots.remove(g)
            discarded = aside
            candidate = snapshots.contains(prev) ? prev : nil
            gen = prev
        }

        // Logs of a later generation can only be the empty log of a compaction
        // that never reached its rename (or one set aside above); one with data
        // means something else wrote here, and guessing would risk applying
        // records twice.
        for g in logs where g > gen {
            let p = path("log", g)
            guard try fileSize(p) == 0 else {
                throw StorageError("\(p) has data but no snapshot of its generation; refusing to guess which state is current")
            }
            try removeFile(p)
        }
        for g in snapshots where g < gen { try removeFile(path("snapshot", g)) }
        for g in logs where g < gen { try removeFile(path("log", g)) }

        generation = gen
        let logPath = path("log", gen)
        let bytes = logs.contains(gen) ? try readFile(logPath) : []
        let parsed = LogFrames.parse(bytes)
        pending.removeAll()
        pendingRecords = 0
        logBytes = parsed.end
        recordCount = parsed.ranges.count
        let segments = (snapshotTail.map { [$0] } ?? []) + [(bytes: bytes, ranges: parsed.ranges)]
        if case .corrupt(let offset, let writeStart) = parsed.damage {
            let c = Corruption(file: logPath, offset: offset, bytesAfter: bytes.count - offset, writeStart: writeStart)
            unrepaired = c
            return Recovery(snapshot: snapshot, segments: segments, droppedTailBytes: 0,
                            discardedSnapshot: discarded, corruption: c)
        }
        unrepaired = nil
        let fd = try openLog(logPath)
        allocatedEnd = parsed.end
        do {
            if parsed.end < bytes.count {
                do {
                    try fd.resize(to: Int64(parsed.end))
                } catch {
                    throw StorageError("cannot cut the torn tail of", logPath, error, op: "ftruncate")
                }
                try syncFile(fd, logPath)
            }
            if !logs.contains(gen) { try syncDirectory() }
        } catch {
            try? fd.close()
            throw error
        }
        self.fd = fd
        // Zeros after the last write are space reserved ahead of the writes
        // (or pages of a torn write that never reached the disk): nothing lost.
        let written = (bytes.lastIndex { $0 != 0 } ?? -1) + 1
        return Recovery(snapshot: snapshot, segments: segments, droppedTailBytes: max(0, written - parsed.end),
                        discardedSnapshot: discarded)
    }

    /// After a recovery that found corruption: copies the bytes from the
    /// damaged write on to `<log>.corrupt-at-<offset>` (durably, for
    /// forensics), cuts the log where that write starts and opens it for
    /// appending. Returns the copy's path. The records from the damaged write
    /// on are gone from this node's state (recovery did not return them).
    public func repairCorruption() throws -> String {
        guard let c = unrepaired else { throw StorageError("no corruption to repair in \(directory)") }
        let bytes = try readFile(c.file)
        let aside = c.file + ".corrupt-at-\(c.offset)"
        let afd: FileDescriptor
        do {
            afd = try FileDescriptor.open(aside, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                          permissions: [.ownerReadWrite])
        } catch {
            throw StorageError("cannot create", aside, error, op: "open")
        }
        try afd.closeAfter {
            do { _ = try afd.writeAll(bytes[c.writeStart...]) } catch { throw StorageError("write failed on", aside, error, op: "write") }
            try syncFile(afd, aside)
        }
        try syncDirectory()
        let fd = try openLog(c.file)
        do {
            do { try fd.resize(to: Int64(c.writeStart)) } catch { throw StorageError("cannot cut", c.file, error, op: "ftruncate") }
            try syncFile(fd, c.file)
        } catch {
            try? fd.close()
            throw error
        }
        self.fd = fd
        unrepaired = nil
        logBytes = c.writeStart
        allocatedEnd = c.writeStart
        return aside
    }

    /// A snapshot file is the snapshot's frame, then (written by a compaction
    /// that found records after the snapshot's point, e.g. a cluster's
    /// uncommitted tail) those records as one batch. Nil unless all of it is
    /// intact: the file was fsynced before its rename, so any damage is
    /// corruption. A file of the snapshot frame alone (every earlier version) reads the same.
    static func snapshotParts(_ bytes: [UInt8]) -> (body: Range<Int>, tail: [Range<Int>])? {
        guard let end = LogFrames.frameEnd(bytes, limit: DurableLog.maxSnapshotBytes) else { return nil }
        if end == bytes.count { return (8..<end, []) }
        let tail = LogFrames.parse(bytes, from: end)
        guard tail.damage == nil, tail.end == bytes.count, !tail.ranges.isEmpty else { return nil }
        return (8..<end, tail.ranges)
    }

    static func frameEnd(_ bytes: [UInt8], at offset: Int = 0, limit: Int = maxRecordBytes) -> Int? {
        LogFrames.frameEnd(bytes, at: offset, limit: limit)
    }

    // MARK: appending

    /// Buffers one record; nothing reaches the file before `sync`.
    public func append(_ record: [UInt8]) {
        if pending.isEmpty { pending.append(contentsOf: LogFrames.markerPlaceholder) }
        LogFrames.frame(record, into: &pending)
        pendingRecords += 1
    }

    /// Appends the record `encode` writes, encoded straight into the batch
    /// (a MiB-sized entry is copied once, not into an array of its own first).
    public func append(encoding encode: (inout ByteWriter) -> Void) {
        if pending.isEmpty { pending.append(contentsOf: LogFrames.markerPlaceholder) }
        LogFrames.frame(into: &pending, encode: encode)
        pendingRecords += 1
    }

    /// Writes every buffered record with one write, then fdatasync (if on).
    /// After a failure the log refuses all further syncs: a failed fsync may
    /// have dropped dirty pages and cleared the error, so a later "success"
    /// would not mean the earlier data is on disk. The one exception is a
    /// write refused for space, rolled back (see the file comment).
    public func sync() throws {
        if let failed { throw failed }
        guard let fd else { throw StorageError("log in \(directory) is not open (call recover() first)") }
        guard !pending.isEmpty else { return }
        let logPath = path("log", generation)
        LogFrames.sealBatch(&pending)
        if fsync && logBytes + pending.count > allocatedEnd { reserve(fd, through: logBytes + pending.count) }
        do {
            if let e = faults?.fail(.write) {
                // Half the batch reaches the file first, as a real short write would leave it.
                _ = try fd.writeAll(toAbsoluteOffset: Int64(logBytes), pending[0..<(pending.count / 2)])
                throw Errno(rawValue: e)
            }
            _ = try fd.writeAll(toAbsoluteOffset: Int64(logBytes), pending)
        } catch {
            let err = StorageError("write failed on", logPath, error, op: "write")
            guard err.isDiskFull else { throw poison(err) }
            // Nothing of this batch may stay: cut back to the durable size.
            // Shrinking needs no space; if even that fails, give up for good.
            guard (try? fd.resize(to: Int64(logBytes))) != nil else { throw poison(err) }
            allocatedEnd = logBytes
            pending.removeAll(keepingCapacity: pending.capacity <= 8 << 20)
            pendingRecords = 0
            throw err.rolledBack()
        }
        if fsync {
            let rc = faults?.fail(.fdatasync).map { Glibc.errno = $0; return Int32(-1) } ?? fdatasync(fd.rawValue)
            if rc != 0 { throw poison(StorageError.errno("fdatasync failed on", logPath, op: "fdatasync")) }
            if pending.count >= DurableLog.dropCacheBytes {
                _ = posix_fadvise(fd.rawValue, off_t(logBytes), off_t(pending.count), POSIX_FADV_DONTNEED)
            }
        }
        logBytes += pending.count
        allocatedEnd = max(allocatedEnd, logBytes)
        recordCount += pendingRecords
        // Durable in the old log; the generation being written gets them too.
        background?.carry(pending, records: pendingRecords)
        pendingRecords = 0
        // Keep a batch-sized buffer for the next batch, but do not pin a huge one.
        pending.removeAll(keepingCapacity: pending.capacity <= 8 << 20)
    }

    /// Extends the file past `end` with zeros the file system allocates now
    /// (see the file comment). Without space for it, the write itself then
    /// grows the file (and reports a full disk as it always did).
    private func reserve(_ fd: FileDescriptor, through end: Int) {
        let target = min(end + preallocateBytes, reserveLimit)
        guard canPreallocate, target > end else { return }
        // posix_fallocate is fallocate(2) where the file system has it.
        switch posix_fallocate(fd.rawValue, off_t(allocatedEnd), off_t(target - allocatedEnd)) {
        case 0: allocatedEnd = target
        case ENOSPC: break
        default: canPreallocate = false
        }
    }

    func poison(_ error: StorageError) -> StorageError {
        failed = error
        return error
    }

    // MARK: files

    /// Straight into one array (no Data in between: a big log is read once, not copied twice).
    private func readFile(_ p: String) throws -> [UInt8] {
        do {
            let f = try FileDescriptor.open(p, .readOnly, options: [.closeOnExec])
            return try f.closeAfter {
                let size = Int(try f.seek(offset: 0, from: .end))
                var got = 0
                let bytes = try [UInt8](unsafeUninitializedCapacity: size) { buf, n in
                    defer { n = got }
                    while got < size {
                        let r = try f.read(fromAbsoluteOffset: Int64(got),
                                           into: UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buf[got..<size])))
                        if r == 0 { break }
                        got += r
                    }
                }
                return bytes
            }
        } catch {
            throw StorageError("cannot read", p, error)
        }
    }

    /// By seeking, so the answer is an integer from the kernel, not a Foundation attribute to cast.
    private func fileSize(_ p: String) throws -> Int64 {
        do {
            let f = try FileDescriptor.open(p, .readOnly, options: [.closeOnExec])
            return try f.closeAfter { try f.seek(offset: 0, from: .end) }
        } catch {
            throw StorageError("cannot stat", p, error)
        }
    }

    private func removeFile(_ p: String) throws {
        do {
            try FileManager.default.removeItem(atPath: p)
        } catch {
            throw StorageError("cannot remove", p, error)
        }
    }

    /// Written at explicit offsets (`logBytes`), never appended to: the
    /// file may run on past the last write (preallocated).
    func openLog(_ p: String) throws -> FileDescriptor {
        do {
            return try FileDescriptor.open(p, .writeOnly, options: [.create, .closeOnExec],
                                           permissions: [.ownerReadWrite])
        } catch {
            throw StorageError("cannot open log", p, error)
        }
    }

    func syncFile(_ fd: FileDescriptor, _ p: String) throws {
        guard Glibc.fsync(fd.rawValue) == 0 else { throw StorageError.errno("fsync failed on", p, op: "fsync") }
    }

    /// Makes creations, renames and removals in the directory durable.
    func syncDirectory() throws {
        let dfd: FileDescriptor
        do {
            dfd = try FileDescriptor.open(directory, .readOnly, options: [.directory, .closeOnExec])
        } catch {
            throw StorageError("cannot open directory", directory, error)
        }
        defer { try? dfd.close() }
        try syncFile(dfd, directory)
    }

    /// A clean close leaves the file ending at its last write (the reserved
    /// zeros go), as a log written without preallocation would.
    public func close() {
        if let fd, allocatedEnd > logBytes, failed == nil, unrepaired == nil {
            try? fd.resize(to: Int64(logBytes))
        }
        try? fd?.close()
        fd = nil
        allocatedEnd = 0
    }
}
