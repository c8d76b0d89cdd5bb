// Compaction of a real queue's log: a cluster of one runs on the
// NodeCoreDriver, each record it persists is also written to a real
// DurableLog, and the snapshot NodeCore produces, written by DurableLog,
// rebuilds exactly the live tasks: the acked ones are gone, and the node
// booted from the compacted directory carries on with the next task id.
import Foundation
import MeshQCore
import MeshQTestSupport
import Testing
@testable import MeshQStorage

@Suite struct CompactionTests {
    @Test func compactionKeepsLiveTasksAndDropsAckedOnes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("meshq-cmp-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try DurableLog(directory: dir, fsync: false)
        _ = try log.recover()
        let d = NodeCoreDriver(nodes: 1, settings: ClusterSettings())
        var written = 0
        /// Ends the loop iteration, then writes what the node persisted to the DurableLog.
        func commit() throws {
            d.flush()
            let records = d.disks[1]!.records
            for r in records[written...] { log.append(r.encoded()) }
            try log.sync()
            written = records.count
        }
        d.start()
        try commit()
        for i in 1...1_000 { d.send(.enqueue(payload: Array("task-\(i)".utf8)), to: 1, session: 1) }
        try commit()
        for id in 1...900 { d.send(.ack(taskId: UInt64(id)), to: 1, session: 1) }
        try commit()
        #expect(d.replies.count == 1_900 && d.replies.values.allSatisfy { if case .ok = $0 { true } else { false } })
        let bytesBefore = log.logBytes
        let snap = try #require(d.node(1).snapshot())
        try log.compact(snapshot: snap.encoded())
        d.send(.enqueue(payload: Array("after".utf8)), to: 1, session: 1)
        try commit()
        #expect(log.logBytes < bytesBefore / 10)

        // Boot a node from what the compacted directory holds.
        let r = try DurableLog(directory: dir, fsync: false).recover()
        let booted = NodeCoreDriver(nodes: 1, settings: ClusterSettings())
        booted.editDisk(1) {
            $0.snapshot = r.snapshot.flatMap(QueueSnapshot.decode)
            $0.records = r.records.compactMap(LogRecord.decode)
        }
        booted.load()
        let restored = booted.node(1)
        #expect(restored.store.count == 101)
        #expect(restored.store.task(900) == nil)
        #expect(restored.store.task(901)?.payload == Array("task-901".utf8))
        #expect(restored.store.task(1_001)?.payload == Array("after".utf8))
        #expect(restored.commitIndex == d.node(1).commitIndex)
        #expect(restored.store.highestTaskId == 1_001)
        // Started, it leads again and never reuses an acked task's id.
        booted.start()
        guard case .ok(let next, _)? = booted.request(.enqueue(payload: Array("next".utf8)), at: 1) else {
            Issue.record("the booted node does not serve: \(booted.replies)")
            return
        }
        #expect(next == 1_002)
    }
}
