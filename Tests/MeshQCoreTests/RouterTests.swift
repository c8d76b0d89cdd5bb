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
}
