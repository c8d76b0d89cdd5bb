// DurableLog: an append-only file of checksummed records, plus a snapshot
// that replaces everything before it.
//
// Frame: [length u32 LE][crc32c u32 LE][body]. Appends are buffered and leave
// with one write and one fdatasync per `sync` (group commit). Recovery reads
// frames until the first one that is short or fails its checksum, and cuts the
// file there: a crash mid-write leaves at most a torn tail, and new records must
// follow good data. (A bad frame in the middle also ends the log there; what
// follows it cannot be trusted to be what was written in that order.)
//
// Generations make compaction crash-safe: `log.<g>` holds the records that
// follow `snapshot.<g>` (generation 0 has no snapshot). Compaction writes
// `snapshot.<g+1>.tmp`, fsyncs it, creates an empty `log.<g+1>`, renames the
// snapshot into place, fsyncs the directory, then deletes generation g. The
// rename is the commit point: before it recovery uses g, after it g+1, and no
// record is ever applied twice or lost.
import Foundation
import Glibc
import SystemPackage

public final class DurableLog {
    public struct Recovery {
        public var snapshot: [UInt8]?
        public var records: [[UInt8]]
        public var droppedTailBytes: Int
    }

    public static let maxRecordBytes = 256 << 20

    public let directory: String
    public let fsync: Bool
    private var fd: FileDescriptor?
    private var generation: UInt64 = 0
    private var pending: [UInt8] = []
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
            throw StorageError("cannot create directory \(path): \(error.localizedDescription)")
        }
    }

    static func name(_ kind: String, _ gen: UInt64) -> String {
        let digits = String(gen)
        return kind + "." + String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    private func path(_ kind: String, _ gen: UInt64) -> String { directory + "/" + DurableLog.name(kind, gen) }

    public var pendingBytes: Int { pending.count }

    // MARK: recovery

    public func recover() throws -> Recovery {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var snapshots: [UInt64] = []
        var logs: [UInt64] = []
        for f in files {
            if f.hasSuffix(".tmp") {
                // An interrupted compaction: its snapshot was never committed.
                try? FileManager.default.removeItem(atPath: directory + "/" + f)
            } else if f.hasPrefix("snapshot."), let g = UInt64(f.dropFirst(9)) {
                snapshots.append(g)
            } else if f.hasPrefix("log."), let g = UInt64(f.dropFirst(4)) {
                logs.append(g)
            }
        }
        let gen = snapshots.max() ?? 0
        var snapshot: [UInt8]?
        if snapshots.contains(gen) {
            let p = path("snapshot", gen)
            let bytes = try readFile(p)
            guard let end = DurableLog.frameEnd(bytes), end == bytes.count else {
                throw StorageError("snapshot \(p) is corrupt (checksum or length mismatch); refusing to start without it")
            }
            snapshot = Array(bytes[8..<end])
        }
        // Logs of a later generation can only be the empty log of a compaction
        // that never reached its rename; one with data means something else
        // wrote here, and guessing would risk applying records twice.
        for g in logs where g > gen {
            let p = path("log", g)
            let size = (try? FileManager.default.attributesOfItem(atPath: p)[.size] as? Int) ?? 0
            guard size == 0 else {
                throw StorageError("\(p) has data but no snapshot of its generation; refusing to guess which state is current")
            }
            try? FileManager.default.removeItem(atPath: p)
        }
        for g in snapshots where g < gen { try? FileManager.default.removeItem(atPath: path("snapshot", g)) }
        for g in logs where g < gen { try? FileManager.default.removeItem(atPath: path("log", g)) }

        generation = gen
        let logPath = path("log", gen)
        let bytes = FileManager.default.fileExists(atPath: logPath) ? try readFile(logPath) : []
        var records: [[UInt8]] = []
        var offset = 0
        while let end = DurableLog.frameEnd(bytes, at: offset) {
            records.append(Array(bytes[(offset + 8)..<end]))
            offset = end
        }
        let fd = try openLog(logPath)
        if offset < bytes.count {
            do {
                try fd.resize(to: Int64(offset))
                try syncFile(fd, logPath)
            } catch {
                throw StorageError("cannot cut the torn tail of", logPath, error)
            }
        }
        if !logs.contains(gen) { try syncDirectory() }
        self.fd = fd
        logBytes = offset
        recordCount = records.count
        return Recovery(snapshot: snapshot, records: records, droppedTailBytes: bytes.count - offset)
    }

    /// The frame starting at `offset`, if it is complete and its checksum holds.
    static func frameEnd(_ bytes: [UInt8], at offset: Int = 0) -> Int? {
        guard bytes.count - offset >= 8 else { return nil }
        let len = Int(le32(bytes, offset))
        let crc = le32(bytes, offset + 4)
        guard len > 0, len <= maxRecordBytes, bytes.count - offset - 8 >= len else { return nil }
        let end = offset + 8 + len
        guard CRC32C.checksum(bytes[(offset + 8)..<end]) == crc else { return nil }
        return end
    }

    static func le32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }

    static func frame(_ body: [UInt8], into out: inout [UInt8]) {
        precondition(!body.isEmpty && body.count <= maxRecordBytes, "log record of \(body.count) bytes")
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

    private func readFile(_ p: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: p) else {
            throw StorageError.errno("cannot read", p)
        }
        return [UInt8](data)
    }

    private func openLog(_ p: String) throws -> FileDescriptor {
        do {
            return try FileDescriptor.open(p, .writeOnly, options: [.create, .append, .closeOnExec],
                                           permissions: [.ownerReadWrite])
        } catch {
            throw StorageError("cannot open log", p, error)
        }
    }

    // MARK: appending

    /// Buffers one record; nothing reaches the file before `sync`.
    public func append(_ record: [UInt8]) {
        DurableLog.frame(record, into: &pending)
        recordCount += 1
    }

    /// Writes every buffered record with one write, then fdatasync (if on).
    /// After a failure the log refuses all further syncs: a failed fsync may
    /// have dropped dirty pages, so nothing written after it can be trusted.
    public func sync() throws {
        if let failed { throw failed }
        guard let fd else { throw StorageError("log in \(directory) is not open (recover() first)") }
        guard !pending.isEmpty else { return }
        let logPath = path("log", generation)
        do {
            _ = try fd.writeAll(pending)
        } catch {
            failed = StorageError("write failed on", logPath, error)
            throw failed!
        }
        if fsync && fdatasync(fd.rawValue) != 0 {
            failed = StorageError.errno("fdatasync failed on", logPath)
            throw failed!
        }
        logBytes += pending.count
        pending.removeAll(keepingCapacity: pending.capacity <= 8 << 20)
    }

    // MARK: compaction

    /// Replaces the snapshot and the log by `snapshot` and an empty log.
    public func compact(snapshot: [UInt8]) throws {
        precondition(pending.isEmpty, "compact with unsynced records")
        if let failed { throw failed }
        let next = generation + 1
        let snapPath = path("snapshot", next)
        let tmp = snapPath + ".tmp"
        var framed: [UInt8] = []
        framed.reserveCapacity(snapshot.count + 8)
        DurableLog.frame(snapshot, into: &framed)
        do {
            let sfd = try FileDescriptor.open(tmp, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                              permissions: [.ownerReadWrite])
            try sfd.closeAfter {
                _ = try sfd.writeAll(framed)
                try syncFile(sfd, tmp)
            }
            let newLog = try openLog(path("log", next))
            try syncFile(newLog, path("log", next))
            try syncDirectory()
            guard rename(tmp, snapPath) == 0 else { throw StorageError.errno("cannot rename", tmp) }
            try syncDirectory()
            try? fd?.close()
            fd = newLog
        } catch let e as StorageError {
            failed = e
            throw e
        } catch {
            failed = StorageError("compaction failed in", directory, error)
            throw failed!
        }
        let old = generation
        generation = next
        logBytes = 0
        recordCount = 0
        try? FileManager.default.removeItem(atPath: path("snapshot", old))
        try? FileManager.default.removeItem(atPath: path("log", old))
    }

    private func syncFile(_ fd: FileDescriptor, _ p: String) throws {
        guard Glibc.fsync(fd.rawValue) == 0 else { throw StorageError.errno("fsync failed on", p) }
    }

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
