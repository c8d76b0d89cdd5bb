// SteppedDictionary against a plain Dictionary over random runs (inserts,
// updates through the subscript, removals, reads), checked after every
// operation while it grows; growth that moves a few entries per write; and
// a copy taken mid-growth that stays what it was.
import MeshQTestSupport
import Testing
@testable import MeshQCore

@Suite struct SteppedDictionaryTests {
    private func check(_ s: SteppedDictionary<Int, Int>, _ model: [Int: Int], keys: Range<Int>) {
        #expect(s.count == model.count)
        for k in keys where s[k] != model[k] {
            Issue.record("key \(k): \(String(describing: s[k])) against \(String(describing: model[k]))")
            return
        }
        var seen: [Int: Int] = [:]
        s.forEach { seen[$0.key] = $0.value }
        #expect(seen == model)
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8])
    func agreesWithADictionaryOnRandomOperations(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var s = SteppedDictionary<Int, Int>()
        var model: [Int: Int] = [:]
        var grew = 0
        let keys = 0..<3_000
        for i in 0..<20_000 {
            let k = Int(rng.next() % UInt64(keys.count))
            switch rng.next() % 10 {
            case 0...4:
                s[k] = i
                model[k] = i
            case 5:
                s[k]? += 1
                model[k]? += 1
            case 6, 7:
                #expect(s.removeValue(forKey: k) == model.removeValue(forKey: k))
            case 8:
                s[k] = nil
                model[k] = nil
            default:
                #expect(s[k] == model[k])
            }
            if s.isGrowing { grew += 1 }
            if s[k] != model[k] { Issue.record("op \(i) on key \(k): \(String(describing: s[k])) against \(String(describing: model[k])) growing=\(s.isGrowing)"); return }
            if i % 97 == 0 || s.isGrowing { check(s, model, keys: keys) }
        }
        check(s, model, keys: keys)
        #expect(grew > 0, "the runs must cover growth")
    }

    /// Keys 0..<n mapped to themselves, the last insert having started a growth.
    private func growing() -> (SteppedDictionary<Int, Int>, n: Int) {
        var s = SteppedDictionary<Int, Int>()
        var n = 0
        while !s.isGrowing {
            s[n] = n
            n += 1
        }
        return (s, n)
    }

    @Test func growthMovesAFewEntriesPerWrite() {
        var (s, n) = growing()
        let old = n - 1
        // The old storage drains at `stepEntries` per write: within old/4 + 1 writes.
        var writes = 0
        while s.isGrowing {
            s[n] = n
            n += 1
            writes += 1
        }
        #expect(writes <= old / s.stepEntries + 1, "\(writes) writes to drain \(old) entries")
        #expect(s.count == n)
        #expect((0..<n).allSatisfy { s[$0] == $0 })
    }

    @Test func aCopyTakenMidGrowthKeepsItsValues() {
        var (s, n) = growing()
        let copy = s
        for k in 0..<n { s[k] = -k }
        s.removeValue(forKey: 0)
        #expect(copy.count == n && (0..<n).allSatisfy { copy[$0] == $0 })
        #expect(s.count == n - 1 && s[0] == nil && s[1] == -1)
    }
}
