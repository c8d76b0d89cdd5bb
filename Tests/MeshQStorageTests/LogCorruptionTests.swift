// Corruption is not a torn tail: damage with a later write after it is
// reported (file and offset) and never cut; damage in the last write, at any
// byte, is a torn tail and that whole write is cut; a hole in the last write
// (pages lost in a crash) is still torn; repair sets the damaged bytes aside
// and goes on.
import Foundation
import Glibc
import Testing
@testable import MeshQStorage

private func rec(_ i: Int) -> [UInt8] { Array("rec\(i)-".utf8) + [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 24) }

private func read(_ path: String) throws -> [UInt8] { try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) }
private func write(_ bytes: [UInt8], _ path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

/// A log of `batches` syncs of `perBatch` records each; returns the directory
/// and the offset where each batch starts (its marker).
private func batchedLog(batches: Int, perBatch: Int = 1) throws -> (dir: String, starts: [Int]) {
    let dir = makeTempDir("corrupt")
    let log = try DurableLog(directory: dir, fsync: false)
    _ = try log.recover()
    var starts: [Int] = []
    for b in 0..<batches {
        starts.append(log.logBytes)
        for k in 0..<perBatch { log.append(rec(b * perBatch + k)) }
        try log.sync()
    }
    log.close()
    return (dir, starts)
}

private func logFile(_ dir: String) -> String { dir + "/" + DurableLog.name("log", 0) }

@Suite struct LogCorruptionTests {
    @Test func aFlipInAnEarlierWriteIsCorruptionAndNothingIsCut() throws {
        let (dir, starts) = try batchedLog(batches: 4)
        defer { removeTempDir(dir) }
        let file = logFile(dir)
        let original = try read(file)
        // Every byte of batch 1 (marker, frame header, body), one at a time.
        for pos in starts[1]..<starts[2] {
            var bytes = original
            bytes[pos] ^= 0x10
            try write(bytes, file)
            let log = try DurableLog(directory: dir, fsync: false)
            let r = try log.recover()
            // The first bad frame: the marker itself, or the record after it.
            let bad = pos < starts[1] + 16 ? starts[1] : starts[1] + 16
            #expect(r.corruption == DurableLog.Corruption(file: file, offset: bad, bytesAfter: bytes.count - bad,
                                                          writeStart: starts[1]), "flip at \(pos)")
            #expect(r.records == [rec(0)], "flip at \(pos)")
            #expect(r.droppedTailBytes == 0)
            #expect(try read(file) == bytes, "corruption is never cut (flip at \(pos))")
            // Not open for appending: nothing may be written after damage.
            log.append(rec(9))
            #expect(throws: StorageError.self) { try log.sync() }
        }
    }

    @Test func aFlipAtEveryByteOfTheLastWriteIsATornTail() throws {
        let (dir, starts) = try batchedLog(batches: 4)
        defer { removeTempDir(dir) }
        let file = logFile(dir)
        let original = try read(file)
        let last = starts[3]
        for pos in last..<original.count {
            var bytes = original
            bytes[pos] ^= 0x10
            try write(bytes, file)
            let r = try DurableLog(directory: dir, fsync: false).recover()
            #expect(r.corruption == nil, "flip at \(pos)")
            #expect(r.records == (0..<3).map(rec), "flip at \(pos)")
            #expect(r.droppedTailBytes == original.count - last, "flip at \(pos)")
            #expect(try read(file).count == last, "the whole last write is cut")
        }
    }

    @Test func aTornTailAtEveryLengthOfTheLastWrite() throws {
        let (dir, starts) = try batchedLog(batches: 3, perBatch: 2)
        defer { removeTempDir(dir) }
        let file = logFile(dir)
        let original = try read(file)
        for cut in starts[2]..<original.count {
            try write(Array(original[0..<cut]), file)
            let log = try DurableLog(directory: dir, fsync: false)
            let r = try log.recover()
            #expect(r.corruption == nil, "cut at \(cut)")
            // The last write goes whole, even when its first record survived the cut.
            let kept = 4
            #expect(r.droppedTailBytes == writtenLength(original[starts[2]..<cut]), "cut at \(cut)")
            #expect(r.records == (0..<kept).map(rec), "cut at \(cut)")
            log.append(rec(50))
            try log.sync()
            log.close()
            let again = try DurableLog(directory: dir, fsync: false).recover()
            #expect(again.corruption == nil && again.records == (0..<kept).map(rec) + [rec(50)], "cut at \(cut)")
        }
    }

    /// A crash before fdatasync may lose a middle page of the last write and keep
    /// later ones: frames after the hole belong to the same unacknowledged write.
    @Test func aHoleInTheLastWriteIsTorn() throws {
        let (dir, starts) = try batchedLog(batches: 2, perBatch: 3)
        defer { removeTempDir(dir) }
        let file = logFile(dir)
        var bytes = try read(file)
        let secondFrame = starts[1] + 16 + 8 + rec(3).count
        for i in secondFrame..<(secondFrame + 20) { bytes[i] = 0 }
        try write(bytes, file)
        let r = try DurableLog(directory: dir, fsync: false).recover()
        #expect(r.corruption == nil)
        #expect(r.records == (0..<3).map(rec), "the whole unacknowledged write goes")
        #expect(r.droppedTailBytes == bytes.count - starts[1])
    }

    /// After a torn write was cut, later writes start where it started, so
    /// damage before or after that point is still seen as corruption.
    @Test func writesAfterACutTornTailAreStillProtected() throws {
        let (dir, starts) = try batchedLog(batches: 3, perBatch: 2)
        defer { removeTempDir(dir) }
        let file = logFile(dir)
        let full = try read(file)
        try write(Array(full[0..<(starts[2] + 30)]), file)      // the last write torn mid-record
        let log = try DurableLog(directory: dir, fsync: false)
        #expect(try log.recover().records == (0..<4).map(rec))
        var next: [Int] = []
        for i in 10..<13 {
            next.append(log.logBytes)
            log.append(rec(i))
            try log.sync()
        }
        log.close()
        let good = try read(file)
        for (pos, expected) in [(starts[1] + 20, 2), (next[0] + 20, 4), (next[1] + 20, 5)] {
            var b = good
            b[pos] ^= 0x01
            try write(b, file)
            let r = try DurableLog(directory: dir, fsync: false).recover()
            #expect(r.corruption != nil, "flip at \(pos)")
            #expect(r.records.count == expected, "flip at \(pos)")
        }
    }

    /// Logs written before batch markers: any valid frame after the damage makes it corruption.
    @Test func aLogWithoutMarkersIsJudgedByTheFramesAfterTheDamage() throws {
        let dir = makeTempDir("legacy")
        defer { removeTempDir(dir) }
        let file = logFile(dir)
        var plain: [UInt8] = []
        var starts: [Int] = []
        for i in 0..<4 {
            starts.append(plain.count)
            LogFrames.frame(rec(i), into: &plain)
        }
        var mid = plain
        mid[starts[1] + 12] ^= 0x01
        try write(mid, file)
        let r = try DurableLog(directory: dir, fsync: false).recover()
        #expect(r.corruption?.offset == starts[1])
        #expect(r.records == [rec(0)])
        var tail = plain
        tail[tail.count - 1] ^= 0x01
        try write(tail, file)
        let t = try DurableLog(directory: dir, fsync: false).recover()
        #expect(t.corruption == nil && t.records == (0..<3).map(rec))
        // And new batches (with markers) follow the old frames.
        let log = try DurableLog(directory: dir, fsync: false)
        _ = try log.recover()
        log.append(rec(7))
        try log.sync()
        #expect(try DurableLog(directory: dir, fsync: false).recover().records == (0..<3).map(rec) + [rec(7)])
    }

    @Test func repairSetsTheDamagedBytesAsideAndTheLogGoesOn() throws {
        let (dir, starts) = try batchedLog(batches: 5)
        defer { removeTempDir(dir) }
        let file = logFile(dir)
        var bytes = try read(file)
        bytes[starts[2] + 20] ^= 0xFF
        try write(bytes, file)
        let log = try DurableLog(directory: dir, fsync: true)
        let r = try log.recover()
        let bad = starts[2] + 16       // the record after batch 2's marker
        #expect(r.corruption?.offset == bad)
        let aside = try log.repairCorruption()
        #expect(aside == file + ".corrupt-at-\(bad)")
        #expect(r.corruption?.writeStart == starts[2])
        #expect(try read(aside) == Array(bytes[starts[2]...]), "the damaged write on is kept for forensics")
        #expect(try read(file) == Array(bytes[0..<starts[2]]), "cut where the damaged write starts")
        log.append(rec(42))
        try log.sync()
        log.close()
        let again = try DurableLog(directory: dir, fsync: true).recover()
        #expect(again.corruption == nil)
        #expect(again.records == [rec(0), rec(1), rec(42)])
        #expect(throws: StorageError.self) { try DurableLog(directory: dir, fsync: false).repairCorruption() }
    }

    @Test func aCorruptOlderLogIsNoFallbackForACorruptSnapshot() throws {
        // The previous generation's log must be whole for a snapshot fallback;
        // a corrupt one (valid writes after the damage) is not whole.
        let (dir, starts) = try batchedLog(batches: 3)
        defer { removeTempDir(dir) }
        var bytes = try read(logFile(dir))
        bytes[starts[1] + 9] ^= 0x04
        try write(bytes, logFile(dir))
        var bad: [UInt8] = []
        LogFrames.frame(Array("snap".utf8), into: &bad, limit: DurableLog.maxSnapshotBytes)
        bad[bad.count - 1] ^= 0xFF
        try write(bad, dir + "/" + DurableLog.name("snapshot", 1))
        try write([], dir + "/" + DurableLog.name("log", 1))
        #expect(throws: StorageError.self) { try DurableLog(directory: dir, fsync: false).recover() }
    }
}
