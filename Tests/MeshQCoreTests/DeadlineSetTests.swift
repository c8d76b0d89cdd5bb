// DeadlineSet: the indexed heap against its contract, and against a naive
// model (a dictionary scanned in full) over long random runs of every
// operation, with the heap's own invariant checked after each step.
import MeshQTestSupport
import Testing
@testable import MeshQCore

@Suite struct DeadlineSetTests {
    @Test func popsInDeadlineOrderWithTiesBrokenByKey() {
        var s = DeadlineSet<UInt64>()
        s.schedule(5, at: 300)
        s.schedule(9, at: 100)
        s.schedule(2, at: 100)
        s.schedule(7, at: 200)
        #expect(s.count == 4)
        #expect(s.first == .init(deadline: 100, key: 2))
        #expect(s.popExpired(now: 99) == [])
        #expect(s.popExpired(now: 200) == [2, 9, 7])
        #expect(s.popFirst() == .init(deadline: 300, key: 5))
        #expect(s.popFirst() == nil)
        #expect(s.isEmpty)
    }

    @Test func rescheduleMovesAKeyBothWays() {
        var s = DeadlineSet<UInt64>()
        for k in 1...5 { s.schedule(UInt64(k), at: Int64(k) * 10) }
        s.schedule(5, at: 1)      // earlier: to the front
        s.schedule(1, at: 100)    // later: to the back
        #expect(s.count == 5)
        #expect(s.deadline(of: 1) == 100)
        #expect(s.sorted.map(\.key) == [5, 2, 3, 4, 1])
    }

    @Test func removeByKeyFromAnywhere() {
        var s = DeadlineSet<UInt64>()
        for k in 1...100 { s.schedule(UInt64(k), at: Int64(k)) }
        #expect(s.remove(50) == 50)
        #expect(s.remove(50) == nil)
        #expect(s.remove(1) == 1)
        #expect(s.remove(100) == 100)
        #expect(!s.contains(50))
        #expect(s.popExpired(now: 1_000) == (2...99).filter { $0 != 50 }.map { UInt64($0) })
    }

    @Test func removeAllEmptiesEverything() {
        var s = DeadlineSet<UInt64>()
        for k in 1...10 { s.schedule(UInt64(k), at: 0) }
        s.removeAll()
        #expect(s.isEmpty && s.first == nil && !s.contains(3))
        s.schedule(3, at: 7)
        #expect(s.first == .init(deadline: 7, key: 3))
    }

    /// The model: key -> deadline, its order found by sorting everything.
    private struct Model {
        var d: [UInt64: Int64] = [:]
        var sorted: [DeadlineSet<UInt64>.Entry] {
            d.map { .init(deadline: $0.value, key: $0.key) }
                .sorted { ($0.deadline, $0.key) < ($1.deadline, $1.key) }
        }
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8])
    func agreesWithANaiveModelOnRandomOperations(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var s = DeadlineSet<UInt64>()
        var m = Model()
        // Few keys and few distinct deadlines, so updates, ties and removals
        // of present keys are frequent.
        let keys: UInt64 = seed % 2 == 0 ? 16 : 300
        var now: Int64 = 0
        for step in 0..<5_000 {
            let key = rng.next() % keys
            switch rng.next() % 10 {
            case 0...3:
                let at = now + Int64(rng.next() % 50)
                s.schedule(key, at: at)
                m.d[key] = at
            case 4, 5:
                #expect(s.remove(key) == m.d.removeValue(forKey: key), "step \(step)")
            case 6:
                let want = m.sorted.first
                #expect(s.popFirst() == want, "step \(step)")
                if let want { m.d.removeValue(forKey: want.key) }
            case 7:
                now += Int64(rng.next() % 20)
                let want = m.sorted.filter { $0.deadline <= now }.map(\.key)
                #expect(s.popExpired(now: now) == want, "step \(step)")
                for k in want { m.d.removeValue(forKey: k) }
            case 8:
                #expect(s.deadline(of: key) == m.d[key])
                #expect(s.contains(key) == (m.d[key] != nil))
            default:
                if rng.next() % 200 == 0 {
                    s.removeAll()
                    m.d.removeAll()
                }
            }
            #expect(s.count == m.d.count)
            #expect(s.first == m.sorted.first, "step \(step)")
            if step % 97 == 0 { #expect(s.sorted == m.sorted, "step \(step)") }
            if let problem = s.invariantViolation() {
                Issue.record("step \(step): \(problem)")
                return
            }
        }
    }

    @Test func manySchedulesAndRemovalsLeaveNothingBehind() {
        var s = DeadlineSet<UInt64>()
        for i in 0..<100_000 {
            s.schedule(UInt64(i), at: Int64(i % 1_000))
            if i % 10 != 0 { s.remove(UInt64(i)) }
        }
        #expect(s.count == 10_000)
        #expect(s.invariantViolation() == nil)
        #expect(s.popExpired(now: 999).count == 10_000)
        #expect(s.isEmpty)
    }
}
