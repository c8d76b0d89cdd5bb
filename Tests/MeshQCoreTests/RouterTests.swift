import Testing
@testable import MeshQCore

@Suite struct RouterTests {
    @Test func directWhenTheLinkIsUp() {
        var r = Router(nodeId: 1, staleMs: 500)
        r.linkUp(3)
        #expect(r.nextHop(to: 3, now: 0) == 3)
    }

    @Test func oneHopThroughANeighbourThatReportsALink() {
        var r = Router(nodeId: 1, staleMs: 500)
        r.linkUp(2)
        #expect(r.nextHop(to: 3, now: 0) == nil)
        r.report(from: 2, links: [1, 3], now: 0)
        #expect(r.nextHop(to: 3, now: 100) == 2)
        #expect(r.reachable(3, now: 100))
    }

    @Test func twoHopsEachNodeChoosingItsOwnNextHop() {
        // 1 - 2 - 3 - 4 in a line: 1 reaches 3 through 2; 2 reaches 4 through 3.
        var r1 = Router(nodeId: 1, staleMs: 500), r2 = Router(nodeId: 2, staleMs: 500)
        r1.linkUp(2)
        r1.report(from: 2, links: [1, 3], now: 0)
        r2.linkUp(1); r2.linkUp(3)
        r2.report(from: 3, links: [2, 4], now: 0)
        #expect(r1.nextHop(to: 3, now: 0) == 2)
        #expect(r2.nextHop(to: 4, avoid: [1], now: 0) == 3)
    }

    @Test func neverBackWhereItCameFrom() {
        var r = Router(nodeId: 2, staleMs: 500)
        r.linkUp(1)
        r.report(from: 1, links: [2, 3], now: 0)
        #expect(r.nextHop(to: 3, avoid: [1], now: 0) == nil)
    }

    @Test func staleReportsAndDeadLinksAreNotPaths() {
        var r = Router(nodeId: 1, staleMs: 500)
        r.linkUp(2)
        r.report(from: 2, links: [3], now: 0)
        #expect(r.nextHop(to: 3, now: 501) == nil)
        r.report(from: 2, links: [3], now: 600)
        r.linkDown(2)
        #expect(r.nextHop(to: 3, now: 600) == nil)
    }

    @Test func duplicatesAreSeenOnce() {
        var r = Router(nodeId: 1, staleMs: 500)
        let first = r.firstSight(origin: 3, id: 7)
        let again = r.firstSight(origin: 3, id: 7)
        let otherOrigin = r.firstSight(origin: 2, id: 7)
        #expect(first && !again && otherOrigin)
    }

    @Test func aRelayWithNoHopsLeftIsDropped() {
        // Node 2 is asked to pass a message from 1 on to 3 with TTL 1: it drops it.
        let n = NodeCore(nodeId: 2, memberIds: [1, 2, 3], settings: ClusterSettings(), snapshot: nil, records: [])
        n.start(now: 0)
        // Nodes 1 and 3 are heard and hear node 2: both links are direct.
        for p in [1, 3] {
            n.peerMessage(PeerEnvelope(from: p, to: 2, lamport: 0, epoch: 0, body: .links(direct: [2], heard: [2])),
                          now: 0, wallMs: 0)
        }
        _ = n.takeEffects()
        let inner = PeerEnvelope(from: 1, to: 3, lamport: 1, epoch: 0, body: .timeRequest(seq: 1))
        func relay(id: UInt64, ttl: Int) -> PeerEnvelope {
            PeerEnvelope(from: 1, to: 2, lamport: 2, epoch: 0,
                         body: .relay(id: id, origin: 1, dest: 3, ttl: ttl, inner: .init(inner)))
        }
        func passedOn(_ out: [NodeCore.Effect]) -> Bool {
            out.contains { if case .sendPeer(let e) = $0, case .relay = e.body, e.to == 3 { return true } else { return false } }
        }
        n.peerMessage(relay(id: 1, ttl: 1), now: 1, wallMs: 1)
        #expect(!passedOn(n.takeEffects()))
        n.peerMessage(relay(id: 2, ttl: 2), now: 1, wallMs: 1)
        #expect(passedOn(n.takeEffects()))
        // The same message again (a loop or a duplicate) goes nowhere.
        n.peerMessage(relay(id: 2, ttl: 2), now: 2, wallMs: 2)
        #expect(!passedOn(n.takeEffects()))
    }
}
