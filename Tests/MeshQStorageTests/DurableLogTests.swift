// DurableLog: records come back exactly as synced; a damaged tail is cut and
// new data follows good data (corruption is in LogCorruptionTests); every crash point of compaction recovers each
// record exactly once; a failed sync is final.
import Foundation
import Glibc
import Testing
@testable import MeshQStorage
import MeshQCore

private func record(_ i: Int, size: Int = 20) -> [UInt8] {
    Array("r\(i)-".utf8) + Array(repeating: UInt8(truncatingIfNeeded: i), count: size)
}

private func files(_ dir: String, _ prefix: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix(prefix) }.sorted()
}

private func read(_ path: String) throws -> [UInt8] {
    try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
}

private func write(_ bytes: [UInt8], _ path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

private func framed(_ body: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    LogFrames.frame(body, into: &out)
    return out
}

/// A directory holding generation 0 with `count` records, each synced (its own write).
private func logWith(_ count: Int, fsync: Bool = false) throws -> String {
    let dir = makeTempDir("log")
    let log = try DurableLog(directory: dir, fsync: fsync)
    _ = try log.recover()
    for i in 0..<count {
        log.append(record(i))
        try log.sync()
    }
    log.close()
    return dir
}

/// A write of one record: its batch marker and its frame.
private func batchBytes(_ body: [UInt8]) -> Int { 16 + 8 + body.count }

@Suite struct DurableLogTests {
    @Test func appendSyncReopenRecover() throws {
        let dir = makeTempDir("log")
        defer { removeTempDir(dir) }
        let recs = [[UInt8(7)], record(1), Array(repeating: 0xAB, count: 1 << 20), record(3)]
        do {
            let log = try DurableLog(directory: dir, fsync: true)
            #expect(try log.recover().records.isEmpty)
            for r in recs { log.append(r) }
            #expect(log.pendingBytes == 16 + recs.reduce(0) { $0 + 8 + $1.count })   // one batch marker
            #expect(log.recordCount == 0 && log.logBytes == 0)     // pending is not in the file yet
            try log.sync()
            #expect(log.pendingBytes == 0)
            #expect(log.recordCount == 4)
            #expect(log.logBytes == 16 + recs.reduce(0) { $0 + 8 + $1.count })
            try log.sync()                                           // nothing pending: a no-op
            log.close()
        }
        let log = try DurableLog(directory: dir, fsync: true)
        let again = try log.recover()
        #expect(again.records == recs)
        #expect(again.snapshot == nil)
        #expect(again.droppedTailBytes == 0)
        #expect(again.discardedSnapshot == nil)
        #expect(log.recordCount == 4)
        #expect(log.logBytes == 16 + recs.reduce(0) { $0 + 8 + $1.count })
    }

    /// Records encoded straight into the batch are the same bytes as records
    /// encoded into arrays and appended, and come back the same; the
    /// MiB-sized batches (dropped from the page cache after their fdatasync)
    /// read back whole.
    @Test func encodedInPlaceMatchesAppendedArrays() throws {
        let dir = makeTempDir("log")
        defer { removeTempDir(dir) }
        func task(_ id: UInt64, _ size: Int) -> LogRecord {
            let t = QueuedTask(id: id, lamport: id, enqueuedAtMs: 1_700_000_000_000, payload: Array(repeating: UInt8(id), count: size))
            return .entry(LogEntry(index: id, epoch: 2, lamport: id, op: .enqueue(t)))
        }
        let recs: [LogRecord] = [task(1, 3 << 20), .commit(1), task(2, 1), .truncate(after: 1), task(3, 1 << 20)]
        var expected: [UInt8] = []
        for r in recs { LogFrames.frame(r.encoded(), into: &expected) }
        var inPlace: [UInt8] = [0xEE]
        for r in recs { LogFrames.frame(into: &inPlace) { r.encode(into: &$0) } }
        #expect(inPlace.first == 0xEE && Array(inPlace.dropFirst()) == expected)
        let log = try DurableLog(directory: dir, fsync: true)
        _ = try log.recover()
        for (i, r) in recs.enumerated() {
            if i % 2 == 0 { log.append { r.encode(into: &$0) } } else { log.append(r.encoded()) }
            try log.sync()
        }
        log.close()
        let back = try DurableLog(directory: dir, fsync: true).recover().records
        #expect(back.map { LogRecord.decode($0) } == recs)
    }

    @Test func syncBeforeRecoverIsRefused() throws {
        let dir = makeTempDir("log")
        defer { removeTempDir(dir) }
        let log = try DurableLog(directory: dir, fsync: false)
        log.append(record(1))
        #expect(throws: StorageError.self) { try log.sync() }
    }

    @Test func unsyncedRecordsAreNotOnDisk() throws {
        let dir = try logWith(1)
        defer { removeTempDir(dir) }
        let log = try DurableLog(directory: dir, fsync: true)
        _ = try log.recover()
        log.append(record(2))       // never synced: a crash loses it, and that is allowed
        let r = try DurableLog(directory: dir, fsync: true).recover()
        #expect(r.records == [record(0)])
    }

    @Test func fsyncOffStillReachesTheFile() throws {
        let dir = makeTempDir("log")
        defer { removeTempDir(dir) }
        let log = try DurableLog(directory: dir, fsync: false)
        _ = try log.recover()
        log.append(record(1))
        try log.sync()
        log.append(record(2))
        try log.sync()
        #expect(try DurableLog(directory: dir, fsync: false).recover().records == [record(1), record(2)])
    }

    @Test func tornTailAtEveryByteOfTheLastRecord() throws {
        let n = 5
        let dir = try logWith(n)
        defer { removeTempDir(dir) }
        let name = files(dir, "log.")[0]
        let full = try read(dir + "/" + name)
        // The last write (marker and frame) goes whole, wherever it was cut.
        let good = full.count - batchBytes(record(n - 1))
        for cut in good..<full.count {
            let copy = makeTempDir("torn")
            defer { removeTempDir(copy) }
            try write(Array(full[0..<cut]), copy + "/" + name)
            let log = try DurableLog(directory: copy, fsync: false)
            let r = try log.recover()
            #expect(r.records == (0..<(n - 1)).map { record($0) }, "cut at \(cut)")
            #expect(r.droppedTailBytes == writtenLength(full[good..<cut]), "cut at \(cut)")
            #expect(try read(copy + "/" + name).count == good, "the file is cut to the good prefix")
            log.append(record(99))
            try log.sync()
            let r2 = try DurableLog(directory: copy, fsync: false).recover()
            #expect(r2.records == (0..<(n - 1)).map { record($0) } + [record(99)], "cut at \(cut)")
            #expect(r2.droppedTailBytes == 0)
        }
    }

    @Test func flippedByteInTheLastRecordDropsOnlyThatRecord() throws {
        let dir = try logWith(4)
        defer { removeTempDir(dir) }
        let file = dir + "/" + files(dir, "log.")[0]
        var bytes = try read(file)
        bytes[bytes.count - 3] ^= 0x01
        try write(bytes, file)
        let r = try DurableLog(directory: dir, fsync: false).recover()
        #expect(r.records == (0..<3).map { record($0) })
        #expect(r.droppedTailBytes == batchBytes(record(3)))
    }

    @Test func absurdLengthAndZeroFilledTailsAreCut() throws {
        let dir = try logWith(2)
        defer { removeTempDir(dir) }
        let file = dir + "/" + files(dir, "log.")[0]
        let good = try read(file)
        // A header claiming 4 GiB, then a file extended with zeros but never written.
        for tail in [[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0] + [UInt8](repeating: 1, count: 64),
                     [UInt8](repeating: 0, count: 4096)] {
            try write(good + tail, file)
            let log = try DurableLog(directory: dir, fsync: false)
            let r = try log.recover()
            #expect(r.records == [record(0), record(1)])
            // Zeros alone are space reserved ahead of the writes: nothing was dropped.
            #expect(r.droppedTailBytes == writtenLength(tail[...]))
            #expect(try read(file) == good, "the tail is cut")
            log.close()
        }
    }

    /// With fsync on, the file runs ahead of the writes (preallocated); the
    /// records still read back whole, after a crash (zeros left) or a clean
    /// close (cut), and appending goes on at the last write, not the file's end.
    @Test func aPreallocatedLogReadsBackAndAppendsAtItsLastWrite() throws {
        let dir = makeTempDir("prealloc")
        let crashDir = makeTempDir("prealloc-crash")
        defer { removeTempDir(dir); removeTempDir(crashDir) }
        let log = try DurableLog(directory: dir, fsync: true)
        _ = try log.recover()
        for i in 0..<3 { log.append(record(i)); try log.sync() }
        let name = files(dir, "log.")[0]
        let onDisk = try read(dir + "/" + name)
        #expect(onDisk.count >= log.preallocateBytes && onDisk.count > log.logBytes, "reserved ahead of the writes")
        // What a crash leaves: the file with its reserved zeros.
        try write(onDisk, crashDir + "/" + name)
        log.close()
        #expect(try read(dir + "/" + name).count == log.logBytes, "a clean close leaves no reserved space")
        let crashed = try DurableLog(directory: crashDir, fsync: true)
        let r = try crashed.recover()
        #expect(r.records == (0..<3).map { record($0) })
        #expect(r.droppedTailBytes == 0 && r.corruption == nil)
        crashed.append(record(3))
        try crashed.sync()
        crashed.close()
        let again = try DurableLog(directory: crashDir, fsync: true).recover()
        #expect(again.records == (0..<4).map { record($0) })
        #expect(again.droppedTailBytes == 0)
    }

    @Test func aFailedSyncIsFinal() throws {
        let dir = try logWith(1)
        defer { removeTempDir(dir) }
        let log = try DurableLog(directory: dir, fsync: true)
        _ = try log.recover()
        let raw = try #require(log.fd?.rawValue)
        let path = dir + "/" + files(dir, "log.")[0]
        // Point the log's descriptor at a read-only open of its file: the write fails.
        let readOnly = try #require(FileHandle(forReadingAtPath: path))
        #expect(dup2(readOnly.fileDescriptor, raw) == raw)
        log.append(record(1))
        do {
            try log.sync()
            Issue.record("a write on a read-only descriptor must fail")
        } catch let e as StorageError {
            #expect(e.description.contains(path))
            #expect(e.description.contains("Bad file descriptor"), "\(e)")
        }
        // A working descriptor again, and still refused: nothing may be acked after a failure.
        let writable = try #require(FileHandle(forUpdatingAtPath: path))
        _ = try writable.seekToEnd()
        #expect(dup2(writable.fileDescriptor, raw) == raw)
        #expect(throws: StorageError.self) { try log.sync() }
        #expect(throws: StorageError.self) { try log.compact(snapshot: [1]) }
        log.close()
        try readOnly.close()
        try writable.close()
        #expect(try DurableLog(directory: dir, fsync: true).recover().records == [record(0)])
    }

    @Test func hundredThousandSmallRecordsRecover() throws {
        let dir = makeTempDir("log")
        defer { removeTempDir(dir) }
        let log = try DurableLog(directory: dir, fsync: false)
        _ = try log.recover()
        for i in 0..<100_000 { log.append(record(i, size: 4)) }
        try log.sync()
        let start = ContinuousClock.now
        let r = try DurableLog(directory: dir, fsync: false).recover()
        print("recovered 100k records in \(ContinuousClock.now - start)")
        #expect(r.records.count == 100_000)
        #expect(r.records[0] == record(0, size: 4))
        #expect(r.records[99_999] == record(99_999, size: 4))
    }

    @Test func fileNamesParseOnlyExactGenerations() {
        #expect(DurableLog.name("log", 1) == "log.00000000000000000001")
        #expect(DurableLog.generation(of: "log.00000000000000000042", kind: "log") == 42)
        #expect(DurableLog.generation(of: DurableLog.name("snapshot", UInt64.max), kind: "snapshot") == UInt64.max)
        #expect(DurableLog.generation(of: "snapshot.00000000000000000001.tmp", kind: "snapshot") == nil)
        #expect(DurableLog.generation(of: "snapshot.00000000000000000001.corrupt", kind: "snapshot") == nil)
        #expect(DurableLog.generation(of: "log.00000000000000000001", kind: "snapshot") == nil)
        #expect(DurableLog.generation(of: "log.+0000000000000000001", kind: "log") == nil)
    }

    // MARK: compaction

    @Test func compactionKeepsOnlyTheSnapshotAndLaterRecords() throws {
        let dir = try logWith(100, fsync: true)
        defer { removeTempDir(dir) }
        let log = try DurableLog(directory: dir, fsync: true)
        #expect(try log.recover().records.count == 100)
        try log.compact(snapshot: Array("state-after-100".utf8))
        #expect(log.logBytes == 0 && log.recordCount == 0)
        log.append(record(100))
        try log.sync()
        let r = try DurableLog(directory: dir, fsync: true).recover()
        #expect(r.snapshot == Array("state-after-100".utf8))
        #expect(r.records == [record(100)])
        #expect(files(dir, "log.") == [DurableLog.name("log", 1)])
        #expect(files(dir, "snapshot.") == [DurableLog.name("snapshot", 1)])
        // A second compaction moves on again.
        try log.compact(snapshot: Array("state-after-101".utf8))
        let r2 = try DurableLog(directory: dir, fsync: true).recover()
        #expect(r2.snapshot == Array("state-after-101".utf8) && r2.records.isEmpty)
        #expect(files(dir, "log.") == [DurableLog.name("log", 2)])
    }

    @Test func snapshotMayExceedTheRecordLimit() {
        // Only the bound is checked here: writing 256 MiB would be slow in a debug build.
        #expect(DurableLog.maxSnapshotBytes > DurableLog.maxRecordBytes)
        let big = [UInt8](repeating: 1, count: 8 + 300)
        var header = big
        header[0] = 0x2C; header[1] = 0x01; header[2] = 0; header[3] = 0   // 300
        let crc = CRC32C.checksum(header[8...])
        for k in 0..<4 { header[4 + k] = UInt8(truncatingIfNeeded: crc >> (8 * k)) }
        #expect(DurableLog.frameEnd(header, limit: 299) == nil)
        #expect(DurableLog.frameEnd(header, limit: 300) == header.count)
    }

    /// Each crash point of `compact`, rebuilt by hand from generation 0 with records 0...2.
    @Test func crashAtEachStepOfCompactionAppliesEveryRecordOnce() throws {
        let fm = FileManager.default
        let snap = framed(Array("snap".utf8))
        let old = (0..<3).map { record($0) }
        func check(_ setup: (String) throws -> Void, snapshot: [UInt8]?, records: [[UInt8]],
                   _ comment: Comment) throws {
            let dir = try logWith(3)
            defer { removeTempDir(dir) }
            try setup(dir)
            let log = try DurableLog(directory: dir, fsync: false)
            let r = try log.recover()
            #expect(r.snapshot == snapshot, comment)
            #expect(r.records == records, comment)
            #expect(files(dir, "").filter { $0.hasSuffix(".tmp") }.isEmpty, comment)
            #expect(files(dir, "log.").count == 1, comment)
            // And the log goes on from there.
            log.append(record(9))
            try log.sync()
            #expect(try DurableLog(directory: dir, fsync: false).recover().records == records + [record(9)], comment)
        }
        let tmp = { (d: String) in d + "/" + DurableLog.name("snapshot", 1) + ".tmp" }
        let snap1 = { (d: String) in d + "/" + DurableLog.name("snapshot", 1) }
        let log0 = { (d: String) in d + "/" + DurableLog.name("log", 0) }
        let log1 = { (d: String) in d + "/" + DurableLog.name("log", 1) }

        try check({ try write(Array(snap.prefix(5)), tmp($0)) }, snapshot: nil, records: old,
                  "torn .tmp snapshot")
        try check({ try write(snap, tmp($0)) }, snapshot: nil, records: old,
                  ".tmp snapshot written")
        try check({ try write(snap, tmp($0)); try write([], log1($0)) }, snapshot: nil, records: old,
                  "empty next log created, not renamed")
        try check({ try write(snap, snap1($0)); try write([], log1($0)) }, snapshot: Array("snap".utf8), records: [],
                  "renamed, both generations present")
        try check({ try write(snap, snap1($0)); try write([], log1($0)); try fm.removeItem(atPath: log0($0)) },
                  snapshot: Array("snap".utf8), records: [],
                  "renamed, old log removed")
        try check({ try write(snap, snap1($0)) }, snapshot: Array("snap".utf8), records: [],
                  "renamed, next log lost (created on recovery)")
        try check({ try write(snap, snap1($0)); try write(framed(record(5)), log1($0)) },
                  snapshot: Array("snap".utf8), records: [record(5)],
                  "old generation never removed, new log in use")
    }

    @Test func laterLogWithDataButNoSnapshotIsRefused() throws {
        let dir = try logWith(3)
        defer { removeTempDir(dir) }
        try write(framed(record(5)), dir + "/" + DurableLog.name("log", 1))
        #expect(throws: StorageError.self) { try DurableLog(directory: dir, fsync: false).recover() }
    }

    @Test func corruptNewestSnapshotFallsBackWhenTheOlderGenerationIsWhole() throws {
        // A crash after the rename left generation 0 in place; then snapshot 1 rotted.
        let dir = try logWith(3)
        defer { removeTempDir(dir) }
        var bad = framed(Array("snap".utf8))
        bad[bad.count - 1] ^= 0xFF
        let snap1 = dir + "/" + DurableLog.name("snapshot", 1)
        try write(bad, snap1)
        try write([], dir + "/" + DurableLog.name("log", 1))
        let log = try DurableLog(directory: dir, fsync: false)
        let r = try log.recover()
        #expect(r.snapshot == nil)
        #expect(r.records == (0..<3).map { record($0) })
        #expect(r.discardedSnapshot == snap1 + ".corrupt")
        #expect(FileManager.default.fileExists(atPath: snap1 + ".corrupt"))
        #expect(files(dir, "log.") == [DurableLog.name("log", 0)])
        // It carries on as generation 0 and can compact again into generation 1.
        log.append(record(3))
        try log.sync()
        try log.compact(snapshot: Array("good".utf8))
        let r2 = try DurableLog(directory: dir, fsync: false).recover()
        #expect(r2.snapshot == Array("good".utf8) && r2.records.isEmpty && r2.discardedSnapshot == nil)
    }

    @Test func corruptNewestSnapshotFallsBackToAnOlderSnapshot() throws {
        let dir = makeTempDir("log")
        defer { removeTempDir(dir) }
        let log = try DurableLog(directory: dir, fsync: false)
        _ = try log.recover()
        try log.compact(snapshot: Array("one".utf8))
        log.append(record(1))
        try log.sync()
        log.close()
        // As if compaction to generation 2 committed and then snapshot 2 rotted.
        var bad = framed(Array("two".utf8))
        bad[9] ^= 0x40
        try write(bad, dir + "/" + DurableLog.name("snapshot", 2))
        try write([], dir + "/" + DurableLog.name("log", 2))
        let r = try DurableLog(directory: dir, fsync: false).recover()
        #expect(r.snapshot == Array("one".utf8) && r.records == [record(1)])
        #expect(r.discardedSnapshot != nil)
    }

    @Test func corruptSnapshotWithoutAWholeFallbackRefusesToStart() throws {
        let fm = FileManager.default
        // (a) the older generation is gone.
        let a = makeTempDir("log")
        defer { removeTempDir(a) }
        let log = try DurableLog(directory: a, fsync: false)
        _ = try log.recover()
        try log.compact(snapshot: Array("precious".utf8))
        log.close()
        let p = a + "/" + DurableLog.name("snapshot", 1)
        var bytes = try read(p)
        bytes[bytes.count - 1] ^= 0xFF
        try write(bytes, p)
        #expect(throws: StorageError.self) { try DurableLog(directory: a, fsync: false).recover() }
        #expect(fm.fileExists(atPath: p), "a refusal leaves the directory as it was")

        // (b) the older generation is there, but records already follow the corrupt snapshot.
        let b = try logWith(3)
        defer { removeTempDir(b) }
        var bad = framed(Array("snap".utf8))
        bad[bad.count - 1] ^= 0xFF
        try write(bad, b + "/" + DurableLog.name("snapshot", 1))
        try write(framed(record(7)), b + "/" + DurableLog.name("log", 1))
        do {
            _ = try DurableLog(directory: b, fsync: false).recover()
            Issue.record("records after a corrupt snapshot cannot be replayed")
        } catch let e as StorageError {
            #expect(e.description.contains(DurableLog.name("snapshot", 1)))
            #expect(e.description.contains("holds records"))
        }

        // (c) the older generation's log is damaged, so it is not the state the snapshot summarised.
        let c = try logWith(3)
        defer { removeTempDir(c) }
        try write(bad, c + "/" + DurableLog.name("snapshot", 1))
        try write([], c + "/" + DurableLog.name("log", 1))
        let log0 = c + "/" + DurableLog.name("log", 0)
        try write(Array(try read(log0).dropLast()), log0)
        #expect(throws: StorageError.self) { try DurableLog(directory: c, fsync: false).recover() }
    }
}
