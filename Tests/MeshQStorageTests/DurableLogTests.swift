import Foundation
import Testing
@testable import MeshQStorage

private func tempDir() -> String {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("meshq-log-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

private func record(_ i: Int, size: Int = 20) -> [UInt8] {
    Array("r\(i)-".utf8) + Array(repeating: UInt8(truncatingIfNeeded: i), count: size)
}

private func logFiles(_ dir: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix("log.") }.sorted()
}

@Suite struct DurableLogTests {
    @Test func appendSyncReopenRecover() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let recs = [[UInt8(7)], record(1), Array(repeating: 0xAB, count: 1 << 20), record(3)]
        do {
            let log = try DurableLog(directory: dir, fsync: true)
            #expect(try log.recover().records.isEmpty)
            for r in recs { log.append(r) }
            #expect(log.pendingBytes > 0)
            try log.sync()
            #expect(log.pendingBytes == 0)
            log.close()
        }
        let again = try DurableLog(directory: dir, fsync: true).recover()
        #expect(again.records == recs)
        #expect(again.snapshot == nil)
        #expect(again.droppedTailBytes == 0)
    }

    @Test func unsyncedRecordsAreNotOnDisk() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try DurableLog(directory: dir, fsync: true)
        _ = try log.recover()
        log.append(record(1))
        try log.sync()
        log.append(record(2))       // never synced: a crash loses it, and that is allowed
        let r = try DurableLog(directory: dir, fsync: true).recover()
        #expect(r.records == [record(1)])
    }

    @Test func tornTailAtEveryByteOfTheLastRecord() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let n = 5
        do {
            let log = try DurableLog(directory: dir, fsync: false)
            _ = try log.recover()
            for i in 0..<n { log.append(record(i)) }
            try log.sync()
        }
        let file = dir + "/" + logFiles(dir)[0]
        let full = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        let lastFrame = 8 + record(n - 1).count
        for cut in (full.count - lastFrame)..<full.count {
            let copy = tempDir()
            defer { try? FileManager.default.removeItem(atPath: copy) }
            try Data(full[0..<cut]).write(to: URL(fileURLWithPath: copy + "/" + logFiles(dir)[0]))
            let log = try DurableLog(directory: copy, fsync: false)
            let r = try log.recover()
            #expect(r.records == (0..<(n - 1)).map { record($0) }, "cut at \(cut)")
            #expect(r.droppedTailBytes == cut - (full.count - lastFrame))
            // New data follows the good data.
            log.append(record(99))
            try log.sync()
            let r2 = try DurableLog(directory: copy, fsync: false).recover()
            #expect(r2.records == (0..<(n - 1)).map { record($0) } + [record(99)])
            #expect(r2.droppedTailBytes == 0)
        }
    }

    @Test func flippedByteEndsTheLogAtThatRecord() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let log = try DurableLog(directory: dir, fsync: false)
            _ = try log.recover()
            for i in 0..<4 { log.append(record(i)) }
            try log.sync()
        }
        let file = dir + "/" + logFiles(dir)[0]
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        let frame = 8 + record(0).count
        bytes[frame + 10] ^= 0x01           // inside record 1's body
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let r = try DurableLog(directory: dir, fsync: false).recover()
        #expect(r.records == [record(0)])
        #expect(r.droppedTailBytes == 3 * frame)
    }

    @Test func compactionKeepsOnlyTheSnapshotAndLaterRecords() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try DurableLog(directory: dir, fsync: true)
        _ = try log.recover()
        for i in 0..<100 { log.append(record(i)) }
        try log.sync()
        try log.compact(snapshot: Array("state-after-100".utf8))
        #expect(log.logBytes == 0)
        log.append(record(100))
        try log.sync()
        let r = try DurableLog(directory: dir, fsync: true).recover()
        #expect(r.snapshot == Array("state-after-100".utf8))
        #expect(r.records == [record(100)])
        // The old generation is gone from disk.
        #expect(logFiles(dir).count == 1)
        // A second compaction moves on again.
        try log.compact(snapshot: Array("state-after-101".utf8))
        let r2 = try DurableLog(directory: dir, fsync: true).recover()
        #expect(r2.snapshot == Array("state-after-101".utf8) && r2.records.isEmpty)
    }

    @Test func crashAtEachStepOfCompactionAppliesEveryRecordOnce() throws {
        // Build generation 0 with 3 records.
        func base() throws -> String {
            let dir = tempDir()
            let log = try DurableLog(directory: dir, fsync: false)
            _ = try log.recover()
            for i in 0..<3 { log.append(record(i)) }
            try log.sync()
            return dir
        }
        func framed(_ body: [UInt8]) -> Data {
            var out: [UInt8] = []
            DurableLog.frame(body, into: &out)
            return Data(out)
        }
        let fm = FileManager.default
        // 1. Crash after writing the .tmp snapshot: old state.
        let d1 = try base()
        try framed(Array("snap".utf8)).write(to: URL(fileURLWithPath: d1 + "/" + DurableLog.name("snapshot", 1) + ".tmp"))
        var r = try DurableLog(directory: d1, fsync: false).recover()
        #expect(r.snapshot == nil && r.records.count == 3)
        #expect(!(try fm.contentsOfDirectory(atPath: d1)).contains { $0.hasSuffix(".tmp") })
        // 2. ...and after creating the empty next log: still the old state.
        let d2 = try base()
        try framed(Array("snap".utf8)).write(to: URL(fileURLWithPath: d2 + "/" + DurableLog.name("snapshot", 1) + ".tmp"))
        fm.createFile(atPath: d2 + "/" + DurableLog.name("log", 1), contents: nil)
        r = try DurableLog(directory: d2, fsync: false).recover()
        #expect(r.snapshot == nil && r.records.count == 3)
        // 3. After the rename, before deleting generation 0: the new state only.
        let d3 = try base()
        try framed(Array("snap".utf8)).write(to: URL(fileURLWithPath: d3 + "/" + DurableLog.name("snapshot", 1)))
        fm.createFile(atPath: d3 + "/" + DurableLog.name("log", 1), contents: nil)
        r = try DurableLog(directory: d3, fsync: false).recover()
        #expect(r.snapshot == Array("snap".utf8) && r.records.isEmpty)
        #expect(logFiles(d3) == [DurableLog.name("log", 1)])
        for d in [d1, d2, d3] { try? fm.removeItem(atPath: d) }
    }

    @Test func corruptSnapshotRefusesToStart() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try DurableLog(directory: dir, fsync: false)
        _ = try log.recover()
        try log.compact(snapshot: Array("precious".utf8))
        let p = dir + "/" + DurableLog.name("snapshot", 1)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: p)))
        bytes[bytes.count - 1] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        #expect(throws: StorageError.self) { try DurableLog(directory: dir, fsync: false).recover() }
    }

    @Test func fsyncOffStillReachesTheFile() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try DurableLog(directory: dir, fsync: false)
        _ = try log.recover()
        log.append(record(1))
        try log.sync()
        #expect(try DurableLog(directory: dir, fsync: false).recover().records == [record(1)])
    }

    @Test func hundredThousandSmallRecordsRecover() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try DurableLog(directory: dir, fsync: false)
        _ = try log.recover()
        for i in 0..<100_000 { log.append(record(i, size: 4)) }
        try log.sync()
        let r = try DurableLog(directory: dir, fsync: false).recover()
        #expect(r.records.count == 100_000)
        #expect(r.records[99_999] == record(99_999, size: 4))
    }

    @Test func crcMatchesKnownVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    }
}

@Suite struct DataDirectoryLockTests {
    @Test func secondLockFailsNamingThePidUntilReleased() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try DataDirectoryLock.acquire(directory: dir)
        do {
            _ = try DataDirectoryLock.acquire(directory: dir)
            Issue.record("second lock should fail")
        } catch {
            #expect("\(error)".contains("pid \(getpid())"))
        }
        first.release()
        let again = try DataDirectoryLock.acquire(directory: dir)
        again.release()
    }
}

@Suite struct VoteFileTests {
    @Test func voteSurvivesReopenAndCorruptionIsAnError() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let v = VoteFile(directory: dir)
        #expect(try v.load() == 0)
        try v.store(7)
        try v.store(9)
        #expect(try VoteFile(directory: dir).load() == 9)
        try "nine".write(toFile: v.path, atomically: true, encoding: .utf8)
        #expect(throws: StorageError.self) { try v.load() }
    }
}
