// WaiterQueue: blocked DEQUEUEs are served in arrival order whatever their
// deadlines, expire by deadline, and leave nothing behind when served,
// expired or dropped with their connection; plus a random run against a
// plain array model.
import MeshQTestSupport
import Testing
@testable import MeshQCore

@Suite struct WaiterQueueTests {
    private func w(_ session: UInt64, _ seq: UInt64, _ deadline: Int64) -> WaiterQueue.Waiter {
        .init(target: .session(ClientRef(session: session, seq: seq)), owner: "c\(session)", deadline: deadline)
    }

    @Test func servedFirstComeFirstServedWhateverTheDeadlines() {
        var q = WaiterQueue()
        q.add(w(1, 0, 300))
        q.add(w(2, 0, 100))
        q.add(w(3, 0, 200))
        #expect(q.nextDeadline() == 100)
        #expect(q.popFirst()?.target.session == 1)
        #expect(q.popFirst()?.target.session == 2)
        #expect(q.nextDeadline() == 200)
        #expect(q.popFirst()?.target.session == 3)
        #expect(q.popFirst() == nil)
        #expect(q.nextDeadline() == nil)
    }

    @Test func expiresByDeadlineThenConnectionAndLeavesTheLine() {
        var q = WaiterQueue()
        q.add(w(4, 0, 100))
        q.add(w(1, 0, 500))
        q.add(w(2, 7, 100))
        q.add(w(2, 3, 100))
        #expect(q.expire(now: 99) == [])
        #expect(q.expire(now: 100).map(\.target) == [.session(ClientRef(session: 2, seq: 3)),
                                                     .session(ClientRef(session: 2, seq: 7)),
                                                     .session(ClientRef(session: 4, seq: 0))])
        #expect(q.count == 1)
        #expect(q.popFirst()?.target.session == 1)
        #expect(q.indexedEntries == 0)
    }

    @Test func aClosedConnectionsWaitersAreNeitherServedNorExpired() {
        var q = WaiterQueue()
        q.add(w(1, 0, 100))
        q.add(w(2, 0, 100))
        q.add(w(1, 1, 50))
        q.add(w(3, 0, 100))
        q.remove(session: 1)
        q.remove(session: 9)          // unknown: nothing happens
        #expect(q.count == 2)
        #expect(q.indexedEntries == 2 * 3)
        #expect(q.nextDeadline() == 100)
        #expect(q.expire(now: 60) == [])
        #expect(q.popFirst()?.target.session == 2)
        #expect(q.popFirst()?.target.session == 3)
    }

    @Test func aRelayedWaitIsNotAConnectionsAndOutlivesOneClosing() {
        // A DEQUEUE relayed by node 2 waits here too; connection 2 closing
        // here has nothing to do with it.
        var q = WaiterQueue()
        q.add(.init(target: .forwarded(from: 2, id: 40), owner: "2/c", deadline: 100))
        q.add(w(2, 0, 100))
        q.remove(session: 2)
        #expect(q.count == 1 && q.indexedEntries == 2)
        #expect(q.expire(now: 100).map(\.target) == [.forwarded(from: 2, id: 40)])
    }

    @Test func aWaiterAddedAgainAfterItsTurnGoesToTheBack() {
        var q = WaiterQueue()
        q.add(w(1, 0, 100))
        q.add(w(2, 0, 100))
        let first = q.popFirst()!
        q.add(first)                  // NodeCore: served, but no task after all
        #expect(q.popFirst()?.target.session == 2)
        #expect(q.popFirst()?.target.session == 1)
    }

    @Test func removeAllAnswersEveryoneInArrivalOrder() {
        var q = WaiterQueue()
        for s in [5, 3, 9, 1] as [UInt64] { q.add(w(s, 0, Int64(100 - s))) }
        #expect(q.removeAll().map(\.target.session) == [5, 3, 9, 1])
        #expect(q.count == 0 && q.indexedEntries == 0 && q.nextDeadline() == nil)
    }

    @Test func connectionsComingAndGoingLeaveNothingBehind() {
        var q = WaiterQueue()
        q.add(w(0, 0, 1_000_000))     // one long wait stays throughout
        for s in 1...20_000 as ClosedRange<UInt64> {
            q.add(w(s, 0, 1_000_000))
            q.remove(session: s)
        }
        #expect(q.count == 1)
        #expect(q.indexedEntries == 3)
    }

    @Test(arguments: [11, 12, 13, 14])
    func agreesWithAnArrayModel(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var q = WaiterQueue()
        var model: [WaiterQueue.Waiter] = []   // arrival order
        var now: Int64 = 0
        var seq: UInt64 = 0
        for step in 0..<4_000 {
            switch rng.next() % 8 {
            case 0...2:
                seq += 1
                let x = w(rng.next() % 12, seq, now + Int64(rng.next() % 40))
                q.add(x)
                model.append(x)
            case 3:
                let got = q.popFirst()
                #expect(got == model.first, "step \(step)")
                if !model.isEmpty { model.removeFirst() }
            case 4:
                now += Int64(rng.next() % 15)
                let want = model.filter { $0.deadline <= now }.sorted { ($0.deadline, $0.target) < ($1.deadline, $1.target) }
                #expect(q.expire(now: now) == want, "step \(step)")
                model.removeAll { $0.deadline <= now }
            case 5:
                let s = rng.next() % 12
                q.remove(session: s)
                model.removeAll { $0.target.session == s }
            case 6:
                #expect(q.nextDeadline() == model.map(\.deadline).min(), "step \(step)")
            default:
                if rng.next() % 100 == 0 {
                    #expect(q.removeAll() == model, "step \(step)")
                    model.removeAll()
                }
            }
            #expect(q.count == model.count, "step \(step)")
            #expect(q.indexedEntries == 3 * model.count, "step \(step)")
        }
    }
}
