// RicartAgrawalaMutex: the value, one message at a time, and NodeCore's
// use of it (the leader's section around each round) on the NodeCoreDriver.
import MeshQTestSupport
import Testing
@testable import MeshQCore

private func sends(_ out: [RicartAgrawalaMutex.Output]) -> [(Int, RicartAgrawalaMutex.Message)] {
    out.compactMap { if case .send(let to, let m) = $0 { return (to, m) } else { return nil } }
}

@Suite struct RicartAgrawalaMutexTests {
    @Test func aloneItEntersAtOnce() {
        var m = RicartAgrawalaMutex(nodeId: 1)
        #expect(m.request(ts: 5, livePeers: []).contains(.granted))
        #expect(m.state == .inside)
    }

    @Test func entersAfterEveryLivePeerReplied() {
        var m = RicartAgrawalaMutex(nodeId: 1)
        let out = m.request(ts: 5, livePeers: [2, 3])
        #expect(sends(out).map(\.0) == [2, 3])
        #expect(m.receive(from: 2, .reply(ts: 5)).isEmpty)
        #expect(m.receive(from: 3, .reply(ts: 5)).contains(.granted))
    }

    @Test func concurrentRequestsAreOrderedByTimestampThenId() {
        // Three nodes request at once: ts 7 for node 3, ts 7 for node 2, ts 9
        // for node 1. Expected order: 2 (ties by id), 3, 1; every exchange is
        // spelled out, and mutual exclusion is checked at each stage.
        var m1 = RicartAgrawalaMutex(nodeId: 1), m2 = RicartAgrawalaMutex(nodeId: 2), m3 = RicartAgrawalaMutex(nodeId: 3)
        #expect(sends(m3.request(ts: 7, livePeers: [1, 2])).map(\.0) == [1, 2])
        #expect(sends(m1.request(ts: 9, livePeers: [2, 3])).map(\.0) == [2, 3])
        #expect(sends(m2.request(ts: 7, livePeers: [1, 3])).map(\.0) == [1, 3])
        // Each request meets the others: the smaller (ts, id) defers the larger.
        #expect(m1.receive(from: 3, .request(ts: 7)) == [.send(to: 3, .reply(ts: 7))])
        #expect(m1.receive(from: 2, .request(ts: 7)) == [.send(to: 2, .reply(ts: 7))])
        #expect(m2.receive(from: 3, .request(ts: 7)).isEmpty)     // (7, 2) < (7, 3)
        #expect(m2.receive(from: 1, .request(ts: 9)).isEmpty)
        #expect(m3.receive(from: 2, .request(ts: 7)) == [.send(to: 2, .reply(ts: 7))])
        #expect(m3.receive(from: 1, .request(ts: 9)).isEmpty)
        // 2 holds every reply and enters; 3 still waits for 2, and 1 for 2 and 3.
        #expect(m2.receive(from: 1, .reply(ts: 7)).isEmpty)
        #expect(m2.receive(from: 3, .reply(ts: 7)).contains(.granted))
        #expect(m3.receive(from: 1, .reply(ts: 7)).isEmpty)
        #expect([m1.state, m2.state, m3.state] == [.requesting, .inside, .requesting])
        // 2 leaves and answers both it deferred; 3 enters, 1 still waits for 3.
        let left2 = m2.release()
        #expect(sends(left2).map(\.0) == [1, 3])
        #expect(left2.contains(.send(to: 1, .reply(ts: 9))) && left2.contains(.send(to: 3, .reply(ts: 7))))
        #expect(m3.receive(from: 2, .reply(ts: 7)).contains(.granted))
        #expect(m1.receive(from: 2, .reply(ts: 9)).isEmpty)
        #expect([m1.state, m2.state, m3.state] == [.requesting, .idle, .inside])
        // 3 leaves; 1 enters last.
        let left3 = m3.release()
        #expect(sends(left3).map(\.0) == [1] && left3.contains(.send(to: 1, .reply(ts: 9))))
        #expect(m1.receive(from: 3, .reply(ts: 9)).contains(.granted))
        #expect([m1.state, m2.state, m3.state] == [.inside, .idle, .idle])
    }

    // MARK: in NodeCore, on the NodeCoreDriver

    /// The leader holds the section for the whole of a replication round,
    /// granted by every live peer, and keeps it between rounds while nobody
    /// else asks: the next round starts without a request's round trip.
    @Test func theLeaderKeepsTheSectionBetweenRoundsWhileNobodyAsks() {
        let d = NodeCoreDriver(nodes: 3)
        d.start()
        #expect(d.run { d.leader?.serving == true })
        let leader = d.leader!.nodeId
        // Held since its first round (the epoch's first entry).
        #expect(d.node(leader).inCriticalSection)
        #expect(d.node(leader).mutexRepliedBy == Set(d.ids).subtracting([leader]))
        let requests = d.events.filter { $0.node == leader && $0.event.name == "mutex_request" }.count
        d.holdDurable = [leader]        // the round waits for the leader's own copy
        let r = d.send(.enqueue(payload: Array("x".utf8)), to: leader)
        d.flush()
        #expect(d.ids.filter { d.node($0).inCriticalSection } == [leader])
        #expect(d.replies[r] == nil)
        d.holdDurable = []
        d.sync(leader)
        guard case .ok? = d.replies[r] else {
            Issue.record("not committed: \(String(describing: d.replies[r]))")
            return
        }
        #expect(d.node(leader).inCriticalSection)
        #expect(d.events.filter { $0.node == leader && $0.event.name == "mutex_request" }.count == requests)
    }

    /// A daemon logging at info turns debug events off: rounds, relays and
    /// commits then build none (the same traffic builds them when on).
    @Test func noDebugEventIsBuiltWhileTheyAreOff() {
        for on in [true, false] {
            let d = NodeCoreDriver(nodes: 3)
            d.start()
            #expect(d.run { d.leader?.serving == true })
            let leader = d.leader!.nodeId
            let follower = d.ids.first { $0 != leader }!
            for id in d.ids { d.node(id).debugEvents = on }
            // A peer asking makes the leader release and ask again (mutex events).
            d.node(leader).peerMessage(PeerEnvelope(from: follower, to: leader, lamport: 1, epoch: d.node(leader).epoch,
                                                    body: .mutex(.request(ts: 1))), now: d.now, wallMs: d.now)
            let mark = d.events.count
            let refs = [d.send(.enqueue(payload: Array("a".utf8)), to: leader),
                        d.send(.enqueue(payload: Array("b".utf8)), to: follower)]
            d.flush()
            #expect(d.run { refs.allSatisfy { d.replies[$0] != nil } })
            let debug = d.events.dropFirst(mark).filter { $0.event.level == .debug }.map(\.event.name)
            if on {
                #expect(debug.contains("repl_commit") && debug.contains("route_forward"), "\(debug)")
            } else {
                #expect(debug.isEmpty, "\(debug)")
            }
        }
    }

    /// Another node asking gets the section as soon as no round runs; the
    /// leader asks again for its next round.
    @Test func aRequestFromAnotherNodeGetsTheHeldSection() {
        let d = NodeCoreDriver(nodes: 3)
        d.start()
        #expect(d.run { d.leader?.serving == true })
        let leader = d.leader!.nodeId
        let other = d.ids.first { $0 != leader }!
        #expect(d.node(leader).inCriticalSection)
        let env = PeerEnvelope(from: other, to: leader, lamport: 1, epoch: d.node(leader).epoch,
                               body: .mutex(.request(ts: 1)))
        d.node(leader).peerMessage(env, now: d.now, wallMs: d.now)
        #expect(!d.node(leader).inCriticalSection)
        let sent = d.node(leader).takeEffects().contains {
            if case .sendPeer(let e) = $0, e.to == other, case .mutex(.reply(ts: 1)) = e.body { return true }
            return false
        }
        #expect(sent)
    }

    /// A follower that is down is not asked: the section needs only the
    /// peers the failure detector holds alive.
    @Test func aDownFollowerIsNotWaitedFor() {
        let d = NodeCoreDriver(nodes: 3)
        d.start()
        #expect(d.run { d.leader?.serving == true })
        let leader = d.leader!.nodeId
        let down = d.ids.first { $0 != leader }!
        let live = d.ids.first { $0 != leader && $0 != down }!
        d.crash(down)
        #expect(d.run { !d.node(leader).peersUp.contains(down) })
        // The live follower asks, so the leader gives the held section up
        // (its reply goes out through the driver) and must ask again.
        d.node(leader).peerMessage(PeerEnvelope(from: live, to: leader, lamport: 1, epoch: d.node(leader).epoch,
                                                body: .mutex(.request(ts: 1))), now: d.now, wallMs: d.now)
        #expect(!d.node(leader).inCriticalSection)
        d.holdDurable = [leader]
        let r = d.send(.enqueue(payload: Array("y".utf8)), to: leader)
        d.flush()
        #expect(d.run(withinMs: 1_000) { d.node(leader).inCriticalSection })
        #expect(d.node(leader).mutexRepliedBy == [live])
        d.holdDurable = []
        d.sync(leader)
        guard case .ok? = d.replies[r] else {
            Issue.record("not committed without the down follower: \(String(describing: d.replies[r]))")
            return
        }
    }

    @Test func repliesAreDeferredWhileInside() {
        var m = RicartAgrawalaMutex(nodeId: 1)
        _ = m.request(ts: 1, livePeers: [])
        #expect(m.receive(from: 2, .request(ts: 0)).isEmpty)       // inside: even an older ts waits
        #expect(sends(m.release()).map(\.0) == [2])
        #expect(sends(m.receive(from: 3, .request(ts: 4))).map(\.0) == [3])  // idle: reply at once
    }

    @Test func aPeerDyingWhileAskedIsDroppedFromTheWaitSet() {
        var m = RicartAgrawalaMutex(nodeId: 1)
        _ = m.request(ts: 3, livePeers: [2, 3])
        _ = m.receive(from: 2, .reply(ts: 3))
        #expect(m.state == .requesting)
        #expect(m.peerDown(3).contains(.granted))
        #expect(m.state == .inside)
    }

    @Test func aStaleReplyDoesNotCountForALaterRequest() {
        // A reply to request ts 3 arrives (late, or twice) during request ts 8.
        var m = RicartAgrawalaMutex(nodeId: 1)
        _ = m.request(ts: 3, livePeers: [2])
        _ = m.receive(from: 2, .reply(ts: 3))
        _ = m.release()
        _ = m.request(ts: 8, livePeers: [2])
        #expect(m.receive(from: 2, .reply(ts: 3)).isEmpty)
        #expect(m.state == .requesting)
        #expect(m.receive(from: 2, .reply(ts: 8)).contains(.granted))
    }

    @Test func aDeferredReplyEchoesTheRequestersTimestamp() {
        var m = RicartAgrawalaMutex(nodeId: 1)
        _ = m.request(ts: 1, livePeers: [])
        _ = m.receive(from: 2, .request(ts: 6))
        #expect(m.release().contains(.send(to: 2, .reply(ts: 6))))
    }
}
