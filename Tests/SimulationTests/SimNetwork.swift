// SimNetwork: the simulator's lossy network, the outlet the shared effect
// interpreter hands its envelopes to. Each envelope sent over a link that is
// not cut may be dropped or duplicated, and each copy arrives after a random
// delay (so messages reorder; a share arrive 1-3 s late, from old epochs).
// Links are cut in one direction or both; the network tells nobody.
// Invariant: envelopes come out in order of arrival time, ties in the order
// they were sent, and the random draws per envelope are always the same ones
// in the same order (drop, duplicate, then late and delay per copy), so a
// seed replays bit for bit.
import HeapModule
@testable import MeshQCore

struct SimNetwork {
    /// When a copy arrives; the heap holds only these (small, no references
    /// to retain on every swap), the envelopes wait in `envelopes`.
    private struct Arrival: Comparable {
        var at: Int64
        var order: UInt64
        static func < (a: Arrival, b: Arrival) -> Bool { (a.at, a.order) < (b.at, b.order) }
    }

    let options: ClusterSimulator.Options
    /// Directed links that drop everything: [from, to].
    var cut: Set<[Int]> = []
    private var queue = Heap<Arrival>()
    /// Each copy in flight, by its send order.
    private var envelopes: [UInt64: PeerEnvelope] = [:]
    private var order: UInt64 = 0

    init(options: ClusterSimulator.Options) { self.options = options }

    func passes(_ a: Int, _ b: Int) -> Bool { !cut.contains([a, b]) }

    /// `env` goes on the wire at `now` (its link is up).
    mutating func send(_ env: PeerEnvelope, now: Int64, rng: inout SimRandom) {
        // Once the faults stop, a harsher profile's network calms down to
        // the default one's (which stays the same throughout).
        let settling = now >= options.faultPhaseMs
        if rng.chance(settling ? min(options.dropRate, 0.05) : options.dropRate) { return }
        let copies = rng.chance(settling ? min(options.duplicateRate, 0.02) : options.duplicateRate) ? 2 : 1
        for _ in 0..<copies {
            order += 1
            let late = rng.chance(settling ? min(options.lateRate, 0.01) : options.lateRate)
            let delay = late ? rng.int(1_000...3_000) : rng.int(1...(settling ? min(options.maxDelayMs, 25) : options.maxDelayMs))
            queue.insert(Arrival(at: now + Int64(delay), order: order))
            envelopes[order] = env
        }
    }

    /// The next envelope due by `now`, if any.
    mutating func due(by now: Int64) -> PeerEnvelope? {
        guard let top = queue.min, top.at <= now else { return nil }
        queue.removeMin()
        return envelopes.removeValue(forKey: top.order)
    }
}
