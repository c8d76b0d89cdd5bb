import Testing
@testable import MeshQCore

@Suite struct TwoPhaseCommitTests {
    @Test func commitsWithAMajorityIncludingTheLeader() {
        let c = TwoPhaseCommit(nodeId: 3, clusterSize: 3)
        let out = c.begin(round: 1, epoch: 4, first: 10, last: 19, participants: [1, 2, 3], now: 0, timeoutMs: 2_000)
        #expect(out == [.send(to: 1, .prepare(epoch: 4, round: 1, first: 10, last: 19)),
                        .send(to: 2, .prepare(epoch: 4, round: 1, first: 10, last: 19))])
        #expect(c.receive(from: 1, .vote(epoch: 4, round: 1, ok: true)).isEmpty)   // leader not yet durable
        let done = c.localDurable()
        #expect(done.contains(.committed(round: 1, through: 19)))
        #expect(done.contains(.send(to: 1, .commit(epoch: 4, round: 1, last: 19))))
        #expect(done.contains(.send(to: 2, .commit(epoch: 4, round: 1, last: 19))))
        #expect(!c.inRound)
    }

    @Test func minorityAbortsAtTheDeadline() {
        let c = TwoPhaseCommit(nodeId: 1, clusterSize: 5)
        _ = c.begin(round: 7, epoch: 2, first: 1, last: 1, participants: [1, 2, 3, 4, 5], now: 100, timeoutMs: 500)
        _ = c.localDurable()
        _ = c.receive(from: 2, .vote(epoch: 2, round: 7, ok: true))   // 2 of 5
        #expect(c.tick(now: 599).isEmpty)
        let out = c.tick(now: 600)
        #expect(out.contains(.aborted(round: 7)))
        #expect(out.contains(.send(to: 3, .abort(epoch: 2, round: 7))))
    }

    @Test func abortsEarlyWhenAMajorityIsImpossible() {
        let c = TwoPhaseCommit(nodeId: 1, clusterSize: 3)
        // Only one live peer was asked, and it refuses.
        _ = c.begin(round: 1, epoch: 1, first: 1, last: 1, participants: [1, 2], now: 0, timeoutMs: 2_000)
        _ = c.localDurable()
        #expect(c.receive(from: 2, .vote(epoch: 1, round: 1, ok: false)).contains(.aborted(round: 1)))
        // A dead participant counts as no.
        _ = c.begin(round: 2, epoch: 1, first: 2, last: 2, participants: [1, 2], now: 0, timeoutMs: 2_000)
        #expect(c.peerDown(2).contains(.aborted(round: 2)))
    }

    @Test func votesOfAnotherRoundOrEpochAreIgnored() {
        let c = TwoPhaseCommit(nodeId: 1, clusterSize: 3)
        _ = c.begin(round: 5, epoch: 3, first: 1, last: 1, participants: [1, 2, 3], now: 0, timeoutMs: 2_000)
        _ = c.localDurable()
        #expect(c.receive(from: 2, .vote(epoch: 3, round: 4, ok: true)).isEmpty)
        #expect(c.receive(from: 2, .vote(epoch: 2, round: 5, ok: true)).isEmpty)
        #expect(c.receive(from: 9, .vote(epoch: 3, round: 5, ok: true)).isEmpty)
        #expect(c.inRound)
    }

    @Test func participantFencesOlderEpochs() {
        let p = TwoPhaseCommit(nodeId: 2, clusterSize: 3)
        #expect(p.acceptPrepare(epoch: 4))
        #expect(!p.acceptPrepare(epoch: 3))
        p.promise(epoch: 6)
        #expect(!p.acceptPrepare(epoch: 5))
        #expect(p.acceptPrepare(epoch: 6))
    }
}
