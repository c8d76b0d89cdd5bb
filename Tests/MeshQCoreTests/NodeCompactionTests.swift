// NodeCompaction: the image a background compaction writes holds the state
// as it stood when it was taken, whatever the loop applies afterwards, and,
// once filled and sorted off the loop, is the snapshot an on-loop
// compaction writes.
import Testing
@testable import MeshQCore

@Suite struct NodeCompactionTests {
    @Test func aBackgroundImageIsTheStateWhenItWasTaken() {
        func put(_ id: UInt64, key: String?) -> LogEntry {
            var t = QueuedTask(id: id, lamport: id, enqueuedAtMs: 10, payload: Array("p\(id)".utf8), queue: "q\(id % 3)",
                               priority: UInt32(id % 5))
            t.key = key
            t.keyUntilMs = key == nil ? 0 : 60_000
            return LogEntry(index: id, epoch: 1, lamport: id, op: .enqueue(t))
        }
        let entries = (1...40).map { put(UInt64($0), key: $0 % 2 == 0 ? "k\($0)" : nil) }
        let core = NodeCore(nodeId: 1, memberIds: [1], settings: ClusterSettings(), snapshot: nil,
                            records: entries.map { .entry($0) })
        let sorted = core.compactionImage(sorted: true).snapshot
        let image = core.compactionImage(sorted: false)
        #expect(image.snapshot.tasks.isEmpty && image.snapshot.keys.isEmpty)
        #expect(image.taskCount == 40)

        // The loop goes on changing its queue after the image was taken.
        var parked: [Int: UInt64] = [:]
        for id in 1...10 { _ = core.store.apply(.ack(taskId: UInt64(id)), parked: &parked) }
        _ = core.store.apply(put(41, key: "k41").op, parked: &parked)
        #expect(core.store.count == 31)

        var filled = image.filledSnapshot()
        filled.tasks.sort { $0.id < $1.id }
        filled.keys.sort { $0.0 < $1.0 }
        #expect(filled == sorted)
        #expect(filled.tasks.count == 40 && filled.keys.count == 20)
    }
}
