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
        // Three nodes request at once; simulate every message exchange.
        var ms = [1: RicartAgrawalaMutex(nodeId: 1), 2: RicartAgrawalaMutex(nodeId: 2), 3: RicartAgrawalaMutex(nodeId: 3)]
        var queue: [(Int, Int, RicartAgrawalaMutex.Message)] = []
        var order: [Int] = []
        func apply(_ id: Int, _ out: [RicartAgrawalaMutex.Output]) {
            for o in out {
                if case .send(let to, let msg) = o { queue.append((id, to, msg)) }
                if o == .granted { order.append(id) }
            }
        }
        // ts 7 for node 3, ts 7 for node 2, ts 9 for node 1: expected 2 (ties by id), 3, 1.
        apply(3, ms[3]!.request(ts: 7, livePeers: [1, 2]))
        apply(1, ms[1]!.request(ts: 9, livePeers: [2, 3]))
        apply(2, ms[2]!.request(ts: 7, livePeers: [1, 3]))
        var steps = 0
        while steps < 1_000 {
            steps += 1
            if queue.isEmpty {
                // Whoever is inside leaves; mutual exclusion must hold at every point.
                let inside = ms.filter { $0.value.state == .inside }.map(\.key)
                #expect(inside.count <= 1)
                guard let i = inside.first else { break }
                apply(i, ms[i]!.release())
                continue
            }
            let (from, to, msg) = queue.removeFirst()
            apply(to, ms[to]!.receive(from: from, msg))
            #expect(ms.filter { $0.value.state == .inside }.count <= 1)
        }
        #expect(order == [2, 3, 1])
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
