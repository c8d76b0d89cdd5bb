import Testing
@testable import MeshQCore

@Suite struct TwoPhaseCommitTests {
    @Test func commitsWithAMajorityIncludingTheLeader() {
        var c = TwoPhaseCommit(nodeId: 3, clusterSize: 3)
        let out = c.begin(round: 1, epoch: 4, first: 10, last: 19, participants: [1, 2, 3], now: 0, timeoutMs: 2_000)
        #expect(out == [.send(to: 1, .prepare(epoch: 4, round: 1, first: 10, last: 19)),
                        .send(to: 2, .prepare(epoch: 4, round: 1, first: 10, last: 19))])
        #expect(c.acknowledged(from: 1, epoch: 4, through: 19).isEmpty)   // leader not yet durable
        let done = c.localDurable(through: 19)
        #expect(done.contains(.committed(round: 1, through: 19)))
        #expect(done.contains(.send(to: 1, .commit(epoch: 4, round: 1, last: 19))))
        #expect(done.contains(.send(to: 2, .commit(epoch: 4, round: 1, last: 19))))
        #expect(!c.inRound)
    }

    @Test func anAcknowledgementShortOfTheRoundIsNoVote() {
        // A follower still catching up acknowledges an earlier index first;
        // only reaching the round's last entry makes it a yes.
        var c = TwoPhaseCommit(nodeId: 1, clusterSize: 3)
        _ = c.begin(round: 2, epoch: 1, first: 50, last: 60, participants: [1, 2, 3], now: 0, timeoutMs: 2_000)
        _ = c.localDurable(through: 60)
        #expect(c.acknowledged(from: 2, epoch: 1, through: 40).isEmpty)
        #expect(c.acknowledged(from: 2, epoch: 1, through: 70).contains(.committed(round: 2, through: 60)))
    }

    @Test func minorityAbortsAtTheDeadline() {
        var c = TwoPhaseCommit(nodeId: 1, clusterSize: 5)
        _ = c.begin(round: 7, epoch: 2, first: 1, last: 1, participants: [1, 2, 3, 4, 5], now: 100, timeoutMs: 500)
        _ = c.localDurable(through: 1)
        _ = c.acknowledged(from: 2, epoch: 2, through: 1)   // 2 of 5
        #expect(c.tick(now: 599).isEmpty)
        let out = c.tick(now: 600)
        #expect(out.contains(.aborted(round: 7, reason: "timeout")))
        #expect(out.contains(.send(to: 3, .abort(epoch: 2, round: 7))))
    }

    @Test func abortsEarlyWhenAMajorityIsImpossible() {
        var c = TwoPhaseCommit(nodeId: 1, clusterSize: 3)
        // Only one live peer was asked, and it refuses.
        _ = c.begin(round: 1, epoch: 1, first: 1, last: 1, participants: [1, 2], now: 0, timeoutMs: 2_000)
        _ = c.localDurable(through: 1)
        #expect(c.refused(from: 2, epoch: 1).contains(.aborted(round: 1, reason: "refused")))
        // A dead participant counts as no.
        _ = c.begin(round: 2, epoch: 1, first: 2, last: 2, participants: [1, 2], now: 0, timeoutMs: 2_000)
        #expect(c.peerDown(2).contains(.aborted(round: 2, reason: "refused")))
    }

    @Test func votesOfAnotherEpochOrANonParticipantAreIgnored() {
        var c = TwoPhaseCommit(nodeId: 1, clusterSize: 3)
        _ = c.begin(round: 5, epoch: 3, first: 1, last: 1, participants: [1, 2, 3], now: 0, timeoutMs: 2_000)
        _ = c.localDurable(through: 1)
        #expect(c.acknowledged(from: 2, epoch: 2, through: 1).isEmpty)
        #expect(c.acknowledged(from: 9, epoch: 3, through: 1).isEmpty)
        #expect(c.inRound)
    }

    @Test func participantFencesOlderEpochs() {
        var p = TwoPhaseCommit(nodeId: 2, clusterSize: 3)
        let newer = p.acceptPrepare(epoch: 4)
        let older = p.acceptPrepare(epoch: 3)
        #expect(newer)
        #expect(!older)
        p.promise(epoch: 6)
        let belowPromise = p.acceptPrepare(epoch: 5)
        let atPromise = p.acceptPrepare(epoch: 6)
        #expect(!belowPromise)
        #expect(atPromise)
    }
}
