// DurableLog compaction: the snapshot and the log before it become one new
// generation (see DurableLog's file comment for the layout and the rename that
// commits it). Two ways:
// - `compact`: all at once, on the caller's thread (tests, a follower
//   installing a leader's snapshot);
// - `startCompaction` / `finishCompaction`: the snapshot is encoded, written
//   and fsynced on a thread of its own (a big queue takes seconds, and a node
//   whose loop stalls that long misses heartbeats and loses its leadership),
//   while the old log keeps taking writes; every batch synced meanwhile is
//   also kept aside (`carry`) and, when the snapshot is done, appended to the
//   snapshot file after it before the rename. So the new generation holds
//   exactly the snapshot's state plus every record written since, and the
//   rename still commits all of it at once.
// Invariant: while a background compaction runs, every record synced to the
// old log after its image was taken is in its carry, in order.
import Foundation
import Glibc
import SystemPackage

extension DurableLog {
    private struct SnapshotDidNotFit: Error { let error: StorageError }

    /// Replaces the snapshot and the log by `snapshot` and an empty log.
    /// `tail`: records that follow the snapshot's point and must stay (a
    /// cluster's uncommitted entries, already durable in the old log); they
    /// go into the snapshot file after it, so the rename commits both at once.
    /// Any failure is final for this process, like a failed sync: after the
    /// rename it is unknown which generation the disk holds. The exception:
    /// no room to write the snapshot (ENOSPC) is thrown `recoverable`, with
    /// nothing changed; the log stays as it was and usable. A background
    /// compaction still running is abandoned first (this one supersedes it).
    public func compact(snapshot: [UInt8], tail: [[UInt8]] = []) throws {
        // A failed log answers every call with its failure, even with records left pending.
        if let failed { throw failed }
        precondition(pending.isEmpty, "compact with unsynced records")
        guard fd != nil else { throw StorageError("log in \(directory) is not open (call recover() first)") }
        if let job = background {
            _ = job.wait()
            unlink(job.tmpPath)
            background = nil
        }
        let tmp = path("snapshot", generation + 1) + ".tmp"
        let pieces = DurableLog.snapshotFile(snapshot, tail: tail)
        do {
            let sfd: FileDescriptor
            do {
                sfd = try FileDescriptor.open(tmp, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                              permissions: [.ownerReadWrite])
            } catch {
                throw StorageError("cannot create", tmp, error, op: "open")
            }
            try sfd.closeAfter {
                do {
                    if let e = faults?.fail(.write) { throw Errno(rawValue: e) }
                    for piece in pieces { _ = try sfd.writeAll(piece) }
                } catch {
                    let err = StorageError("write failed on", tmp, error, op: "write")
                    // No room for the snapshot: nothing changed yet, the log
                    // goes on as it is. Its space comes back with the file.
                    if err.isDiskFull && unlink(tmp) == 0 { throw SnapshotDidNotFit(error: err.rolledBack()) }
                    throw err
                }
                try syncFile(sfd, tmp)
            }
            try install(tmp: tmp, records: tail.count)
        } catch let e as SnapshotDidNotFit {
            throw e.error
        } catch {
            throw poison(error as? StorageError ?? StorageError("compaction failed in", directory, error))
        }
    }

    /// Whether a background compaction is under way.
    public var compactionRunning: Bool { background != nil }

    /// Starts a compaction whose snapshot `encode` produces on another
    /// thread (it must capture only values: it runs while this log takes
    /// writes). `tail` as for `compact`. Call `finishCompaction` from the
    /// log's own thread until it reports the new generation in place.
    public func startCompaction(tail: [[UInt8]], encode: @escaping @Sendable () -> [UInt8]) throws {
        if let failed { throw failed }
        precondition(pending.isEmpty, "compact with unsynced records")
        precondition(background == nil, "a compaction is already running")
        guard fd != nil else { throw StorageError("log in \(directory) is not open (call recover() first)") }
        background = BackgroundCompaction(tmpPath: path("snapshot", generation + 1) + ".tmp", tail: tail, encode: encode)
    }

    /// When the background snapshot is written (or with `wait`, once it
    /// is): appends what the log took meanwhile, commits the new generation
    /// and returns true; false while it is still being written. Failures as
    /// for `compact` (no room: `recoverable`, the old log goes on).
    @discardableResult
    public func finishCompaction(wait: Bool = false) throws -> Bool {
        guard let job = background else { return false }
        guard let outcome = wait ? job.wait() : job.outcome else { return false }
        background = nil
        if let failed {
            unlink(job.tmpPath)
            throw failed
        }
        do {
            if case .failure(let e) = outcome { throw e }
            if !job.carried.isEmpty {
                let sfd: FileDescriptor
                do {
                    sfd = try FileDescriptor.open(job.tmpPath, .writeOnly, options: [.append, .closeOnExec])
                } catch {
                    throw StorageError("cannot open", job.tmpPath, error, op: "open")
                }
                try sfd.closeAfter {
                    do {
                        _ = try sfd.writeAll(job.carried)
                    } catch {
                        let err = StorageError("write failed on", job.tmpPath, error, op: "write")
                        if err.isDiskFull && unlink(job.tmpPath) == 0 { throw SnapshotDidNotFit(error: err.rolledBack()) }
                        throw err
                    }
                    try syncFile(sfd, job.tmpPath)
                }
            }
            try install(tmp: job.tmpPath, records: job.tailCount + job.carriedRecords)
        } catch let e as SnapshotDidNotFit {
            throw e.error
        } catch let e as StorageError where e.recoverable {
            throw e
        } catch {
            throw poison(error as? StorageError ?? StorageError("compaction failed in", directory, error))
        }
        return true
    }

    /// The snapshot file's bytes, in the order written: the snapshot's frame
    /// header, the snapshot itself (not copied: a follower's snapshot can be
    /// GiBs, and a copy of it was a quarter of installing one), then `tail`
    /// as one batch.
    static func snapshotFile(_ snapshot: [UInt8], tail: [[UInt8]]) -> [[UInt8]] {
        precondition(!snapshot.isEmpty && snapshot.count <= DurableLog.maxSnapshotBytes,
                     "snapshot of \(snapshot.count) bytes")
        var head: [UInt8] = []
        LogFrames.put32(UInt32(snapshot.count), into: &head)
        LogFrames.put32(CRC32C.checksum(snapshot), into: &head)
        guard !tail.isEmpty else { return [head, snapshot] }
        var batch = LogFrames.markerPlaceholder
        for r in tail { LogFrames.frame(r, into: &batch) }
        LogFrames.sealBatch(&batch)
        return [head, snapshot, batch]
    }

    /// With `tmp` complete and durable: the empty log of the next
    /// generation, the rename that commits it, and the old one removed.
    private func install(tmp: String, records: Int) throws {
        let next = generation + 1
        let snapPath = path("snapshot", next)
        let logPath = path("log", next)
        let newLog = try openLog(logPath)
        do {
            try syncFile(newLog, logPath)
            // log.<g+1> must be durable before the snapshot that names it commits.
            try syncDirectory()
            do {
                try FileManager.default.moveItem(atPath: tmp, toPath: snapPath)
            } catch {
                throw StorageError("cannot rename \(tmp) to", snapPath, error, op: "rename")
            }
            try syncDirectory()
        } catch {
            try? newLog.close()
            throw error
        }
        close()
        fd = newLog
        let old = generation
        generation = next
        logBytes = 0
        allocatedEnd = 0
        recordCount = records
        // Leftovers are harmless: recovery removes generations older than the newest snapshot.
        try? FileManager.default.removeItem(atPath: path("snapshot", old))
        try? FileManager.default.removeItem(atPath: path("log", old))
    }
}
