// Compaction with records after the snapshot's point (a cluster's uncommitted
// tail): they ride in the snapshot file, committed by the same rename, and
// come back first at recovery; a damaged tail is a damaged snapshot. And the
// background compaction: records synced while the snapshot is written follow
// it into the new generation; a crash before it commits leaves the old one.
import Foundation
import MeshQCore
import Testing
@testable import MeshQStorage

@Suite struct CompactionTailTests {
    private func rec(_ i: Int) -> [UInt8] { Array("tail-\(i)".utf8) }

    @Test func tailRecordsComeBackBeforeTheNewLogsRecords() throws {
        let dir = makeTempDir("tail")
        defer { removeTempDir(dir) }
        let log = try DurableLog(directory: dir, fsync: true)
        _ = try log.recover()
        for i in 0..<5 { log.append(rec(i)) }
        try log.sync()
        try log.compact(snapshot: Array("state".utf8), tail: [rec(3), rec(4)])
        #expect(log.logBytes == 0)
        log.append(rec(5))
        try log.sync()
        let r = try DurableLog(directory: dir, fsync: true).recover()
        #expect(r.snapshot == Array("state".utf8))
        #expect(r.records == [rec(3), rec(4), rec(5)])
        #expect(r.recordCount == 3)
        // Compacting again without a tail drops it.
        try log.compact(snapshot: Array("state2".utf8))
        let r2 = try DurableLog(directory: dir, fsync: true).recover()
        #expect(r2.snapshot == Array("state2".utf8) && r2.records.isEmpty)
    }

    @Test func aDamagedTailIsADamagedSnapshot() throws {
        let dir = makeTempDir("tail-bad")
        defer { removeTempDir(dir) }
        let log = try DurableLog(directory: dir, fsync: false)
        _ = try log.recover()
        log.append(rec(0))
        try log.sync()
        log.append(rec(1))
        try log.sync()
        try log.compact(snapshot: Array("two".utf8), tail: [rec(1)])
        log.close()
        let snap = dir + "/" + DurableLog.name("snapshot", 1)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: snap)))
        bytes[bytes.count - 2] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: snap))
        // Generation 0 is gone (compaction removed it): nothing to fall back on,
        // so recovery refuses, naming the file, rather than lose the tail.
        #expect {
            _ = try DurableLog(directory: dir, fsync: false).recover()
        } throws: { e in
            "\(e)".contains(DurableLog.name("snapshot", 1)) && "\(e)".contains("corrupt")
        }
    }

    /// A cluster node with uncommitted entries compacts: the snapshot holds the
    /// committed state, the tail the rest, and a restart rebuilds both.
    @Test func aNodesUncommittedTailSurvivesCompactionAndRestart() throws {
        let dir = makeTempDir("tail-core")
        defer { removeTempDir(dir) }
        func task(_ id: UInt64) -> QueuedTask { QueuedTask(id: id, lamport: id, enqueuedAtMs: 0, payload: Array("p\(id)".utf8)) }
        let entries = (1...6).map { LogEntry(index: UInt64($0), epoch: 1, lamport: UInt64($0), op: .enqueue(task(UInt64($0)))) }
        let records = entries.map { LogRecord.entry($0) } + [.commit(4)]
        let core = NodeCore(nodeId: 1, memberIds: [1, 2, 3], settings: ClusterSettings(), snapshot: nil, records: records)
        #expect(core.commitIndex == 4 && core.lastIndex == 6)
        #expect(core.snapshot() == nil)

        let log = try DurableLog(directory: dir, fsync: false)
        _ = try log.recover()
        for r in records { log.append(r.encoded()) }
        try log.sync()
        let image = core.compactionImage()
        #expect(image.snapshot.lastIndex == 4 && image.snapshot.tasks.map(\.id) == [1, 2, 3, 4])
        #expect(image.tail == Array(entries[4...]))
        try log.compact(snapshot: image.snapshot.encoded(), tail: image.tail.map { LogRecord.entry($0).encoded() })

        let r = try DurableLog(directory: dir, fsync: false).recover()
        var decoded: [LogRecord] = []
        r.forEachRecord { b, range in decoded.append(LogRecord.decode(b, range: range)!) }
        let restored = NodeCore(nodeId: 1, memberIds: [1, 2, 3], settings: ClusterSettings(),
                                snapshot: r.snapshot.flatMap(QueueSnapshot.decode), records: decoded)
        #expect(restored.commitIndex == 4 && restored.lastIndex == 6)
        #expect(restored.store.count == 4)
        #expect(restored.log.entry(at: 6) == entries[5])
    }

    @Test func recordsSyncedDuringABackgroundCompactionFollowTheSnapshot() throws {
        let dir = makeTempDir("bg")
        defer { removeTempDir(dir) }
        let log = try DurableLog(directory: dir, fsync: true)
        _ = try log.recover()
        for i in 0..<4 { log.append(rec(i)) }
        try log.sync()
        let gate = DispatchSemaphore(value: 0)
        try log.startCompaction(tail: [rec(3)]) {
            gate.wait()   // the snapshot takes its time: the log goes on meanwhile
            return Array("state-at-2".utf8)
        }
        #expect(log.compactionRunning)
        #expect(try log.finishCompaction() == false)
        log.append(rec(4))
        try log.sync()
        log.append(rec(5))
        log.append(rec(6))
        try log.sync()
        gate.signal()
        #expect(try log.finishCompaction(wait: true))
        #expect(!log.compactionRunning && log.logBytes == 0)
        log.append(rec(7))
        try log.sync()
        let r = try DurableLog(directory: dir, fsync: true).recover()
        #expect(r.snapshot == Array("state-at-2".utf8))
        #expect(r.records == (3...7).map { rec($0) })
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("log.") }
            == [DurableLog.name("log", 1)])
    }

    @Test func aCrashBeforeTheBackgroundCompactionCommitsKeepsTheOldGeneration() throws {
        let dir = makeTempDir("bg-crash")
        defer { removeTempDir(dir) }
        let log = try DurableLog(directory: dir, fsync: false)
        _ = try log.recover()
        for i in 0..<3 { log.append(rec(i)) }
        try log.sync()
        try log.startCompaction(tail: []) { Array("state".utf8) }
        log.append(rec(3))
        try log.sync()
        // The snapshot's .tmp is complete and durable, but never renamed: "crash" here.
        _ = log.background?.wait()
        #expect(FileManager.default.fileExists(atPath: dir + "/" + DurableLog.name("snapshot", 1) + ".tmp"))
        log.close()
        let r = try DurableLog(directory: dir, fsync: false).recover()
        #expect(r.snapshot == nil)
        #expect(r.records == (0...3).map { rec($0) })
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).allSatisfy { !$0.hasSuffix(".tmp") })
    }
}
