// Compaction of a real queue's log: the snapshot NodeCore produces, written by
// DurableLog, rebuilds exactly the live tasks, and the acked ones are gone.
import Foundation
import MeshQCore
import Testing
@testable import MeshQStorage

@Suite struct CompactionTests {
    @Test func compactionKeepsLiveTasksAndDropsAckedOnes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("meshq-cmp-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try DurableLog(directory: dir, fsync: false)
        _ = try log.recover()
        let core = NodeCore(nodeId: 1, memberIds: [1], settings: ClusterSettings(), snapshot: nil, entries: [])
        var seq: UInt64 = 0
        func run(_ cmd: ClientCommand) {
            seq += 1
            core.handle(cmd, from: ClientRef(session: 1, seq: seq), owner: "t", now: 0, wallMs: 0)
        }
        func commit() throws {
            core.flush(now: 0)
            // Applying effects may produce more (a commit starts the next round).
            while core.hasEffects {
                for case .persist(let records) in core.takeEffects() {
                    for r in records { log.append(r.encoded()) }
                    try log.sync()
                    core.persisted(now: 0)
                }
            }
        }
        core.start(now: 0)
        for i in 1...1_000 { run(.enqueue(payload: Array("task-\(i)".utf8))) }
        try commit()
        for id in 1...900 { run(.ack(taskId: UInt64(id))) }
        try commit()
        let bytesBefore = log.logBytes
        let snap = try #require(core.snapshot())
        try log.compact(snapshot: snap.encoded())
        run(.enqueue(payload: Array("after".utf8)))
        try commit()
        #expect(log.logBytes < bytesBefore / 10)

        let r = try DurableLog(directory: dir, fsync: false).recover()
        let records = r.records.compactMap(LogRecord.decode)
        let restored = NodeCore(nodeId: 1, memberIds: [1], settings: ClusterSettings(),
                                snapshot: r.snapshot.flatMap(QueueSnapshot.decode), records: records)
        #expect(restored.queue.count == 101)
        #expect(restored.queue.task(900) == nil)
        #expect(restored.queue.task(901)?.payload == Array("task-901".utf8))
        #expect(restored.queue.task(1_001)?.payload == Array("after".utf8))
        #expect(restored.commitIndex == core.commitIndex)
        #expect(restored.queue.highestTaskId == 1_001)
    }
}
