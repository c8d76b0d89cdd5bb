// DurableLog: an append-only file of checksummed records, plus a snapshot
// that replaces everything before it.
//
// Frame: [length u32 LE][crc32c u32 LE][body]. Appends are buffered and leave
// with one write and one fdatasync per `sync` (group commit). Recovery reads
// frames until the first one that is short, absurdly long or fails its
// checksum, and cuts the file there: a crash mid-write leaves at most a torn
// tail, and new records must follow good data. A bad frame in the middle also
// ends the log there: what follows it cannot be trusted to be what was written,
// in that order, and a replicated node gets those entries back from its peers.
//
// Generations make compaction crash-safe: `log.<g>` holds the records that
// follow `snapshot.<g>` (generation 0 has no snapshot). Compaction writes
// `snapshot.<g+1>.tmp`, fsyncs it, creates an empty `log.<g+1>`, renames the
// snapshot into place, fsyncs the directory, then deletes generation g. The
// rename is the commit point: before it recovery uses g, after it g+1, and no
// record is ever applied twice or lost. A newest snapshot that fails its
// checksum is set aside only when that changes nothing: its own log is still
// empty and the complete generation before it holds the same state.
import Foundation
import Glibc
import SystemPackage

public final class DurableLog {
    public struct Recovery {
        public var snapshot: [UInt8]?
        public var records: [[UInt8]]
        public var droppedTailBytes: Int
        /// Where a corrupt newest snapshot was moved when recovery fell back to
        /// the generation before it; the caller should tell the operator.
        public var discardedSnapshot: String?
    }

    public static let maxRecordBytes = 256 << 20
    /// A snapshot is the whole live queue, so it may pass the record limit;
    /// only its u32 length field bounds it.
    public static let maxSnapshotBytes = Int(UInt32.max)

    public let directory: String
    public let fsync: Bool
    /// Readable by tests, which swap the descriptor underneath to make a write fail.
    private(set) var fd: FileDescriptor?
    private var generation: UInt64 = 0
    private var pending: [UInt8] = []
    private var pendingRecords = 0
    private var failed: StorageError?
    public private(set) var logBytes = 0
    public private(set) var recordCount = 0

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

    private func path(_ kind: String, _ gen: UInt64) -> String { directory + "/" + DurableLog.name(kind, gen) }

    public var pendingBytes: Int { pending.count }

    // MARK: recovery

    public func recover() throws -> Recovery {
        close()
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
        var discarded: String?
        var candidate = snapshots.max()
        while let g = candidate {
            let p = path("snapshot", g)
            let bytes = try readFile(p)
            if let end = DurableLog.frameEnd(bytes, limit: DurableLog.maxSnapshotBytes), end == bytes.count {
                gen = g
                snapshot = Array(bytes[8..<end])
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
                prevWhole = DurableLog.frameEnd(prevSnap, limit: DurableLog.maxSnapshotBytes) == prevSnap.count
            }
            if prevWhole {
                let prevLog = try readFile(path("log", prev))
                prevWhole = DurableLog.frames(prevLog).end == prevLog.count
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
        let (records, end) = DurableLog.frames(bytes)
        let fd = try openLog(logPath)
        do {
            if end < bytes.count {
                do {
                    try fd.resize(to: Int64(end))
                } catch {
                    throw StorageError("cannot cut the torn tail of", logPath, error)
                }
                try syncFile(fd, logPath)
            }
            if !logs.contains(gen) { try syncDirectory() }
        } catch {
            try? fd.close()
            throw error
        }
        self.fd = fd
        pending.removeAll()
        pendingRecords = 0
        logBytes = end
        recordCount = records.count
        return Recovery(snapshot: snapshot, records: records, droppedTailBytes: bytes.count - end,
                        discardedSnapshot: discarded)
    }

    /// Every intact frame from the start, and the offset where the intact prefix ends.
    static func frames(_ bytes: [UInt8]) -> (records: [[UInt8]], end: Int) {
        var records: [[UInt8]] = []
        var offset = 0
        while let end = frameEnd(bytes, at: offset) {
            records.append(Array(bytes[(offset + 8)..<end]))
            offset = end
        }
        return (records, offset)
    }

    /// The end of the frame starting at `offset`, if it is complete and its
    /// checksum holds. A zero length is refused: it is what a zero-filled tail
    /// (a file extended but never written) looks like.
    static func frameEnd(_ bytes: [UInt8], at offset: Int = 0, limit: Int = maxRecordBytes) -> Int? {
        guard bytes.count - offset >= 8 else { return nil }
        let len = Int(le32(bytes, offset))
        let crc = le32(bytes, offset + 4)
        guard len > 0, len <= limit, bytes.count - offset - 8 >= len else { return nil }
        let end = offset + 8 + len
        guard CRC32C.checksum(bytes[(offset + 8)..<end]) == crc else { return nil }
        return end
    }

    static func le32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }

    static func frame(_ body: [UInt8], into out: inout [UInt8], limit: Int = maxRecordBytes) {
        precondition(!body.isEmpty && body.count <= limit, "log frame of \(body.count) bytes (limit \(limit))")
        let len = UInt32(body.count)
        let crc = CRC32C.checksum(body)
        for v in [len, crc] {
            out.append(UInt8(truncatingIfNeeded: v))
            out.append(UInt8(truncatingIfNeeded: v >> 8))
            out.append(UInt8(truncatingIfNeeded: v >> 16))
            out.append(UInt8(truncatingIfNeeded: v >> 24))
        }
        out.append(contentsOf: body)
    }

    // MARK: appending

    /// Buffers one record; nothing reaches the file before `sync`.
    public func append(_ record: [UInt8]) {
        DurableLog.frame(record, into: &pending)
        pendingRecords += 1
    }

    /// Writes every buffered record with one write, then fdatasync (if on).
    /// After a failure the log refuses all further syncs: a failed fsync may
    /// have dropped dirty pages and cleared the error, so a later "success"
    /// would not mean the earlier data is on disk.
    public func sync() throws {
        if let failed { throw failed }
        guard let fd else { throw StorageError("log in \(directory) is not open (call recover() first)") }
        guard !pending.isEmpty else { return }
        let logPath = path("log", generation)
        do {
            _ = try fd.writeAll(pending)
        } catch {
            throw poison(StorageError("write failed on", logPath, error))
        }
        if fsync && fdatasync(fd.rawValue) != 0 {
            throw poison(StorageError.errno("fdatasync failed on", logPath))
        }
        logBytes += pending.count
        recordCount += pendingRecords
        pendingRecords = 0
        // Keep a batch-sized buffer for the next batch, but do not pin a huge one.
        pending.removeAll(keepingCapacity: pending.capacity <= 8 << 20)
    }

    private func poison(_ error: StorageError) -> StorageError {
        failed = error
        return error
    }

    // MARK: compaction

    /// Replaces the snapshot and the log by `snapshot` and an empty log.
    /// Any failure is final for this process, like a failed sync: after the
    /// rename it is unknown which generation the disk holds.
    public func compact(snapshot: [UInt8]) throws {
        // A failed log answers every call with its failure, even with records left pending.
        if let failed { throw failed }
        precondition(pending.isEmpty, "compact with unsynced records")
        guard fd != nil else { throw StorageError("log in \(directory) is not open (call recover() first)") }
        let next = generation + 1
        let snapPath = path("snapshot", next)
        let tmp = snapPath + ".tmp"
        let logPath = path("log", next)
        var framed: [UInt8] = []
        framed.reserveCapacity(snapshot.count + 8)
        DurableLog.frame(snapshot, into: &framed, limit: DurableLog.maxSnapshotBytes)
        do {
            let sfd: FileDescriptor
            do {
                sfd = try FileDescriptor.open(tmp, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                              permissions: [.ownerReadWrite])
            } catch {
                throw StorageError("cannot create", tmp, error)
            }
            try sfd.closeAfter {
                do { _ = try sfd.writeAll(framed) } catch { throw StorageError("write failed on", tmp, error) }
                try syncFile(sfd, tmp)
            }
            let newLog = try openLog(logPath)
            do {
                try syncFile(newLog, logPath)
                // log.<g+1> must be durable before the snapshot that names it commits.
                try syncDirectory()
                do {
                    try FileManager.default.moveItem(atPath: tmp, toPath: snapPath)
                } catch {
                    throw StorageError("cannot rename \(tmp) to", snapPath, error)
                }
                try syncDirectory()
            } catch {
                try? newLog.close()
                throw error
            }
            close()
            fd = newLog
        } catch {
            throw poison(error as? StorageError ?? StorageError("compaction failed in", directory, error))
        }
        let old = generation
        generation = next
        logBytes = 0
        recordCount = 0
        // Leftovers are harmless: recovery removes generations older than the newest snapshot.
        try? FileManager.default.removeItem(atPath: path("snapshot", old))
        try? FileManager.default.removeItem(atPath: path("log", old))
    }

    // MARK: files

    private func readFile(_ p: String) throws -> [UInt8] {
        do {
            return [UInt8](try Data(contentsOf: URL(fileURLWithPath: p)))
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

    private func openLog(_ p: String) throws -> FileDescriptor {
        do {
            return try FileDescriptor.open(p, .writeOnly, options: [.create, .append, .closeOnExec],
                                           permissions: [.ownerReadWrite])
        } catch {
            throw StorageError("cannot open log", p, error)
        }
    }

    private func syncFile(_ fd: FileDescriptor, _ p: String) throws {
        guard Glibc.fsync(fd.rawValue) == 0 else { throw StorageError.errno("fsync failed on", p) }
    }

    /// Makes creations, renames and removals in the directory durable.
    private func syncDirectory() throws {
        let dfd: FileDescriptor
        do {
            dfd = try FileDescriptor.open(directory, .readOnly, options: [.directory, .closeOnExec])
        } catch {
            throw StorageError("cannot open directory", directory, error)
        }
        defer { try? dfd.close() }
        try syncFile(dfd, directory)
    }

    public func close() {
        try? fd?.close()
        fd = nil
    }
}
