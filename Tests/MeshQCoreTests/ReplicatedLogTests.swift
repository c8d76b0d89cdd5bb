import Testing
@testable import MeshQCore

@Suite struct ReplicatedLogTests {
    /// An entry of the log; `payload` bytes make its size for `maxBytes`.
    static func entry(_ index: UInt64, epoch: UInt64 = 1, payload: Int = 0) -> LogEntry {
        let task = QueuedTask(id: index, lamport: index, enqueuedAtMs: 0, payload: [UInt8](repeating: 7, count: payload))
        return LogEntry(index: index, epoch: epoch, lamport: index, op: .enqueue(task))
    }

    /// A log holding entries 1...n (epoch 1 unless `epochs` says otherwise).
    static func log(_ n: UInt64, epochs: [UInt64: UInt64] = [:], payload: Int = 0) -> ReplicatedLog {
        var log = ReplicatedLog()
        for i in stride(from: 1, through: n, by: 1) { log.append(entry(i, epoch: epochs[i] ?? 1, payload: payload)) }
        return log
    }

    @Test func emptyLogSitsAtItsBase() {
        let empty = ReplicatedLog()
        #expect(empty.lastIndex == 0 && empty.lastEpoch == 0 && empty.commitIndex == 0 && empty.count == 0)
        #expect(empty.position == .zero)
        let based = ReplicatedLog(baseIndex: 40, baseEpoch: 3)
        #expect(based.lastIndex == 40 && based.lastEpoch == 3 && based.firstIndex == 41)
        // Everything at or below the base is committed.
        #expect(based.commitIndex == 40)
    }

    @Test func appendedEntriesAreFoundByIndexAndEpoch() {
        let log = Self.log(3, epochs: [3: 2])
        #expect(log.lastIndex == 3 && log.lastEpoch == 2 && log.count == 3)
        #expect(log.position == LogPosition(epoch: 2, index: 3))
        #expect(log.entry(at: 2) == Self.entry(2))
        #expect(log.entry(at: 3) == Self.entry(3, epoch: 2))
        #expect(log.entry(at: 0) == nil)   // the base is no entry
        #expect(log.entry(at: 4) == nil)
        #expect(log.epoch(at: 0) == 0)     // ...but has an epoch
        #expect(log.epoch(at: 1) == 1)
        #expect(log.epoch(at: 3) == 2)
        #expect(log.epoch(at: 4) == nil)
    }

    @Test func matchesComparesTheEpochAtAnIndex() {
        let log = Self.log(3, epochs: [3: 2])
        #expect(log.matches(index: 0, epoch: 0))
        #expect(log.matches(index: 2, epoch: 1))
        #expect(!log.matches(index: 2, epoch: 2))
        #expect(log.matches(index: 3, epoch: 2))
        #expect(!log.matches(index: 3, epoch: 1))
        // Beyond the log: nothing to match with.
        #expect(!log.matches(index: 4, epoch: 1))
    }

    @Test func belowTheBaseEverythingMatches() {
        var log = ReplicatedLog(baseIndex: 10, baseEpoch: 3)
        log.append(Self.entry(11, epoch: 4))
        // Trimmed away: committed, hence everyone's, whatever epoch is asked.
        #expect(log.epoch(at: 5) == nil)
        #expect(log.entry(at: 10) == nil)
        #expect(log.matches(index: 5, epoch: 1))
        #expect(log.matches(index: 9, epoch: 99))
        // The base itself is compared with its epoch.
        #expect(log.matches(index: 10, epoch: 3))
        #expect(!log.matches(index: 10, epoch: 2))
        #expect(log.matches(index: 11, epoch: 4))
    }

    @Test func truncateDropsEverythingAfterTheIndex() {
        var log = Self.log(5, epochs: [4: 2, 5: 2])
        log.truncate(after: 3)
        #expect(log.lastIndex == 3 && log.lastEpoch == 1 && log.count == 3)
        #expect(log.entry(at: 4) == nil)
        // Past the end: nothing to drop.
        log.truncate(after: 9)
        #expect(log.lastIndex == 3)
        // The freed indices take new entries.
        log.append(Self.entry(4, epoch: 3))
        #expect(log.entry(at: 4)?.epoch == 3)
        // Down to the commit point is allowed.
        _ = log.commit(through: 2)
        log.truncate(after: 2)
        #expect(log.lastIndex == 2 && log.commitIndex == 2)
    }

    @Test func entriesInARange() {
        let log = Self.log(5)
        #expect(log.entries(from: 2, through: 4).map(\.index) == [2, 3, 4])
        #expect(log.entries(from: 5, through: 5).map(\.index) == [5])
        #expect(log.entries(from: 1, through: 5).count == 5)
        // Empty or out-of-range requests yield nothing.
        #expect(log.entries(from: 4, through: 3).isEmpty)
        #expect(log.entries(from: 6, through: 6).isEmpty)
        #expect(log.entries(from: 3, through: 6).isEmpty)
        #expect(log.entries(from: 0, through: 2).isEmpty)   // the base is no entry
    }

    @Test func entriesStopAtTheByteCapButReturnAtLeastOne() {
        // Each entry counts 48 bytes of overhead plus its payload: 100 here.
        let log = Self.log(5, payload: 52)
        #expect(log.entries(from: 1, through: 5, maxBytes: 250).map(\.index) == [1, 2])
        #expect(log.entries(from: 1, through: 5, maxBytes: 300).map(\.index) == [1, 2, 3])
        #expect(log.entries(from: 2, through: 5, maxBytes: 100).map(\.index) == [2])
        // One entry larger than the cap still goes alone, or replication would stall.
        #expect(log.entries(from: 3, through: 5, maxBytes: 10).map(\.index) == [3])
        #expect(log.entries(from: 3, through: 5, maxBytes: 0).map(\.index) == [3])
    }

    @Test func commitReturnsExactlyTheNewlyCommittedEntries() {
        var log = Self.log(6)
        #expect(log.commit(through: 2).map(\.index) == [1, 2])
        #expect(log.commitIndex == 2)
        #expect(log.commit(through: 2).isEmpty)    // nothing new
        #expect(log.commit(through: 1).isEmpty)    // never goes back
        #expect(log.commitIndex == 2)
        #expect(log.commit(through: 4).map(\.index) == [3, 4])
        // Beyond the log: clamped to the last entry.
        #expect(log.commit(through: 100).map(\.index) == [5, 6])
        #expect(log.commitIndex == 6)
        #expect(log.commit(through: 100).isEmpty)
    }

    @Test func commitAboveABaseCountsFromTheBase() {
        var log = ReplicatedLog(baseIndex: 20, baseEpoch: 2)
        for i in UInt64(21)...23 { log.append(Self.entry(i, epoch: 2)) }
        #expect(log.commit(through: 19).isEmpty)
        #expect(log.commit(through: 22).map(\.index) == [21, 22])
        #expect(log.commit(through: 30).map(\.index) == [23])
    }

    @Test func trimMovesTheBaseAndKeepsTheNewestCommittedAndAllUncommitted() {
        var log = Self.log(10, epochs: [4: 2, 5: 2, 6: 2, 7: 2, 8: 2, 9: 2, 10: 2])
        _ = log.commit(through: 6)
        log.trim(keep: 2)
        // Committed 1...6: the newest two (5, 6) stay, 4 becomes the base.
        #expect(log.baseIndex == 4 && log.baseEpoch == 2)
        #expect(log.firstIndex == 5)
        #expect(log.entry(at: 4) == nil && log.entry(at: 5) != nil)
        #expect(log.lastIndex == 10 && log.count == 6 && log.commitIndex == 6)
        // Even keep 0 never drops an uncommitted entry.
        log.trim(keep: 0)
        #expect(log.baseIndex == 6 && log.count == 4)
        #expect(log.entries(from: 7, through: 10).map(\.index) == [7, 8, 9, 10])
        #expect(log.matches(index: 6, epoch: 2))
        #expect(log.matches(index: 3, epoch: 7))   // below the base now
        // A keep wider than what is committed leaves the log as it was.
        var wide = Self.log(5)
        _ = wide.commit(through: 3)
        wide.trim(keep: 100)
        #expect(wide.baseIndex == 0 && wide.count == 5)
        // Nothing committed, nothing trimmed.
        var none = Self.log(5)
        none.trim(keep: 0)
        #expect(none.baseIndex == 0 && none.count == 5)
    }

    @Test func resetToASnapshotReplacesEverything() {
        var log = Self.log(5)
        _ = log.commit(through: 3)
        log.reset(toSnapshotAt: 40, epoch: 6)
        #expect(log.count == 0)
        #expect(log.baseIndex == 40 && log.baseEpoch == 6)
        #expect(log.lastIndex == 40 && log.lastEpoch == 6 && log.commitIndex == 40)
        #expect(log.entry(at: 3) == nil)
        #expect(log.matches(index: 40, epoch: 6))
        // The log continues right after the snapshot.
        log.append(Self.entry(41, epoch: 6))
        #expect(log.lastIndex == 41)
        #expect(log.commit(through: 41).map(\.index) == [41])
    }
}
