// LeaderRounds: the leader's round as a value, one input at a time: when a
// round begins (and with which indexes), when the section is asked for,
// kept, given to a deferred requester, retried and given up, and how votes
// decide pipelined rounds in log order.
import Testing
@testable import MeshQCore

private typealias Action = LeaderRounds.Action

private func context(open: Bool = true, next: UInt64, peers: Set<Int> = [1, 2], now: Int64 = 0) -> LeaderRounds.Context {
    LeaderRounds.Context(open: open, epoch: 5, nextIndex: next, livePeers: peers, now: now,
                         retransmitMs: 200, commitTimeoutMs: 1_000)
}

private func proposal(_ s: String) -> Proposal {
    Proposal(op: .enqueue(QueuedTask(id: 1, lamport: 1, enqueuedAtMs: 0, payload: Array(s.utf8))), lamport: 1, client: nil)
}

/// The (round, first, count, prepare) of each `.begin`.
private func begun(_ out: [Action]) -> [(UInt64, UInt64, Int, [Int])] {
    out.compactMap { if case .begin(let r, let f, let b, let p) = $0 { return (r, f, b.count, p) } else { return nil } }
}

private func requests(_ out: [Action]) -> [Int] {
    out.compactMap { if case .mutex(let to, .request) = $0 { return to } else { return nil } }
}

private func replies(_ out: [Action]) -> [Int] {
    out.compactMap { if case .mutex(let to, .reply) = $0 { return to } else { return nil } }
}

private func committed(_ out: [Action]) -> [UInt64] {
    out.compactMap { if case .committed(let t) = $0 { return t } else { return nil } }
}

@Suite struct LeaderRoundsTests {
    /// Node 3 of three holding the section after its first round committed.
    private func holding(clock: inout LamportClock) -> LeaderRounds {
        var r = LeaderRounds(nodeId: 3, members: [1, 2, 3])
        r.propose(proposal("first"))
        let asked = r.advance(context(next: 1), clock: &clock)
        #expect(requests(asked) == [1, 2])
        #expect(begun(asked).isEmpty, "no round before the section is granted")
        #expect(r.receiveMutex(from: 1, .reply(ts: clock.time), context(next: 1), clock: &clock).isEmpty)
        let granted = r.receiveMutex(from: 2, .reply(ts: clock.time), context(next: 1), clock: &clock)
        #expect(begun(granted).map(\.0) == [1] && begun(granted).map(\.1) == [1] && begun(granted).map(\.3) == [[1, 2]])
        _ = r.localDurable(through: 1)
        #expect(committed(r.acknowledged(from: 1, epoch: 5, through: 1)) == [1])
        return r
    }

    @Test func aBatchAsksForTheSectionAndBeginsOnceEveryLivePeerReplied() {
        var clock = LamportClock()
        let r = holding(clock: &clock)
        #expect(r.mutex.state == .inside)
        #expect(r.batch.isEmpty && !r.inRound)
    }

    @Test func theHeldSectionBeginsTheNextRoundWithoutARequest() {
        var clock = LamportClock()
        var r = holding(clock: &clock)
        r.propose(proposal("a"))
        r.propose(proposal("b"))
        let out = r.advance(context(next: 2), clock: &clock)
        #expect(requests(out).isEmpty)
        #expect(begun(out).map(\.1) == [2] && begun(out).map(\.2) == [2])
        #expect(r.latestRound == 2)
    }

    @Test func roundsPipelineUpToTheDepthAndCommitInLogOrder() {
        var clock = LamportClock()
        var r = holding(clock: &clock)
        var next: UInt64 = 2
        for i in 0..<LeaderRounds.maxInFlight {
            r.propose(proposal("p\(i)"))
            #expect(begun(r.advance(context(next: next), clock: &clock)).count == 1)
            next += 1
        }
        r.propose(proposal("waits"))
        #expect(!r.canStart(open: true, livePeers: [1, 2]), "the pipeline is full")
        #expect(r.advance(context(next: next), clock: &clock).isEmpty)
        // Our copy of everything is durable; a vote through the second round
        // commits the first two together, never the later ones.
        _ = r.localDurable(through: next - 1)
        #expect(committed(r.acknowledged(from: 2, epoch: 5, through: 3)) == [3])
        #expect(r.roundsInFlight == LeaderRounds.maxInFlight - 2)
        #expect(begun(r.advance(context(next: next), clock: &clock)).map(\.1) == [next])
        #expect(committed(r.acknowledged(from: 1, epoch: 5, through: next)) == [next - 1], "our copy of the last round is not durable yet")
        #expect(committed(r.localDurable(through: next)) == [next])
        #expect(!r.inRound)
    }

    @Test func aDeferredRequesterGetsTheSectionOnceTheRoundsDrain() {
        var clock = LamportClock()
        var r = holding(clock: &clock)
        r.propose(proposal("a"))
        _ = r.advance(context(next: 2), clock: &clock)
        // Node 1 asks while round 2 is in flight: it waits.
        #expect(r.receiveMutex(from: 1, .request(ts: 99), context(next: 3), clock: &clock).isEmpty)
        // A batch that came meanwhile does not start: it would make node 1 wait longer.
        r.propose(proposal("b"))
        #expect(!r.canStart(open: true, livePeers: [1, 2]))
        #expect(begun(r.advance(context(next: 3), clock: &clock)).isEmpty)
        _ = r.localDurable(through: 2)
        #expect(committed(r.acknowledged(from: 2, epoch: 5, through: 2)) == [2])
        // Round 2 drained: node 1 gets its reply and our batch asks anew.
        let after = r.advance(context(next: 3), clock: &clock)
        #expect(replies(after) == [1])
        #expect(requests(after) == [1, 2])
        #expect(r.mutex.state == .requesting)
    }

    @Test func aPeerThatCameUpUnaskedMakesTheLeaderAskAgain() {
        var clock = LamportClock()
        var r = LeaderRounds(nodeId: 3, members: [1, 2, 3])
        r.propose(proposal("first"))
        _ = r.advance(context(next: 1, peers: [1]), clock: &clock)
        _ = r.receiveMutex(from: 1, .reply(ts: clock.time), context(next: 1, peers: [1]), clock: &clock)
        _ = r.localDurable(through: 1)
        _ = r.acknowledged(from: 1, epoch: 5, through: 1)
        // Node 2 is live now and was never asked: its section could overlap ours.
        r.propose(proposal("a"))
        let out = r.advance(context(next: 2, peers: [1, 2]), clock: &clock)
        #expect(begun(out).isEmpty)
        #expect(requests(out) == [1, 2])
    }

    @Test func anUnansweredRequestIsAskedAgainThenGivenUp() {
        var clock = LamportClock()
        var r = LeaderRounds(nodeId: 3, members: [1, 2, 3])
        r.propose(proposal("a"))
        _ = r.advance(context(next: 1, now: 0), clock: &clock)
        #expect(r.tick(context(next: 1, now: 199), clock: &clock).isEmpty)
        let again = r.tick(context(next: 1, now: 200), clock: &clock)
        #expect(requests(again) == [1, 2])
        // A late reply to the first request does not count for the second.
        #expect(r.receiveMutex(from: 1, .reply(ts: 1), context(next: 1), clock: &clock).isEmpty)
        var out: [Action] = []
        var now: Int64 = 400
        while now <= 1_000, out.isEmpty || requests(out).count > 0 {
            out = r.tick(context(next: 1, now: now), clock: &clock)
            now += 200
        }
        #expect(out.contains { if case .sectionTimedOut = $0 { return true } else { return false } })
        #expect(r.takeBatch().count == 1, "the batch is left for the node to fail")
    }

    @Test func anAbortEndsEveryRoundAndTheSectionGoesOnlyWhenAsked() {
        var clock = LamportClock()
        var r = holding(clock: &clock)
        r.propose(proposal("a"))
        _ = r.advance(context(next: 2, now: 10), clock: &clock)
        r.propose(proposal("b"))
        _ = r.advance(context(next: 3, now: 20), clock: &clock)
        let out = r.tick(context(next: 4, now: 1_010), clock: &clock)
        #expect(out.contains { if case .aborted(reason: "timeout") = $0 { return true } else { return false } })
        #expect(!r.inRound)
        #expect(r.mutex.state == .inside, "held until the node has cut its tail")
        _ = r.releaseSection()
        #expect(r.mutex.state == .idle)
    }

    @Test func closedRoundsBeginNothingAndGiveTheSectionBack() {
        var clock = LamportClock()
        var r = holding(clock: &clock)
        r.propose(proposal("a"))
        let out = r.advance(context(open: false, next: 2), clock: &clock)
        #expect(begun(out).isEmpty)
        #expect(r.mutex.state == .idle)
        #expect(r.batch.count == 1)
    }

    @Test func stoppingAbandonsTheRoundsAndAnswersADeferredRequester() {
        var clock = LamportClock()
        var r = holding(clock: &clock)
        r.propose(proposal("a"))
        _ = r.advance(context(next: 2), clock: &clock)
        _ = r.receiveMutex(from: 2, .request(ts: 50), context(next: 3), clock: &clock)
        let out = r.stop()
        #expect(replies(out) == [2])
        #expect(!r.inRound && r.mutex.state == .idle)
    }
}
