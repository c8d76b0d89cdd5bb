import Testing
@testable import MeshQCore

@Suite struct TwoPhaseCommitTests {
    @Test func commitsWithAMajorityIncludingTheLeader() {
        var c = TwoPhaseCommit(nodeId: 3, members: [1, 2, 3])
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
        var c = TwoPhaseCommit(nodeId: 1, members: [1, 2, 3])
        _ = c.begin(round: 2, epoch: 1, first: 50, last: 60, participants: [1, 2, 3], now: 0, timeoutMs: 2_000)
        _ = c.localDurable(through: 60)
        #expect(c.acknowledged(from: 2, epoch: 1, through: 40).isEmpty)
        #expect(c.acknowledged(from: 2, epoch: 1, through: 70).contains(.committed(round: 2, through: 60)))
    }

    @Test func minorityAbortsAtTheDeadline() {
        var c = TwoPhaseCommit(nodeId: 1, members: [1, 2, 3, 4, 5])
        _ = c.begin(round: 7, epoch: 2, first: 1, last: 1, participants: [1, 2, 3, 4, 5], now: 100, timeoutMs: 500)
        _ = c.localDurable(through: 1)
        _ = c.acknowledged(from: 2, epoch: 2, through: 1)   // 2 of 5
        #expect(c.tick(now: 599).isEmpty)
        let out = c.tick(now: 600)
        #expect(out.contains(.aborted(round: 7, reason: "timeout")))
        #expect(out.contains(.send(to: 3, .abort(epoch: 2, round: 7))))
    }

    @Test func abortsEarlyWhenAMajorityIsImpossible() {
        var c = TwoPhaseCommit(nodeId: 1, members: [1, 2, 3])
        // Only one live peer was asked, and it refuses.
        _ = c.begin(round: 1, epoch: 1, first: 1, last: 1, participants: [1, 2], now: 0, timeoutMs: 2_000)
        _ = c.localDurable(through: 1)
        #expect(c.refused(from: 2, epoch: 1).contains(.aborted(round: 1, reason: "refused")))
        // A dead participant counts as no.
        _ = c.begin(round: 2, epoch: 1, first: 2, last: 2, participants: [1, 2], now: 0, timeoutMs: 2_000)
        #expect(c.peerDown(2).contains(.aborted(round: 2, reason: "refused")))
    }

    @Test func votesOfAnotherEpochOrANonMemberAreIgnored() {
        var c = TwoPhaseCommit(nodeId: 1, members: [1, 2, 3])
        _ = c.begin(round: 5, epoch: 3, first: 1, last: 1, participants: [1, 2, 3], now: 0, timeoutMs: 2_000)
        _ = c.localDurable(through: 1)
        #expect(c.acknowledged(from: 2, epoch: 2, through: 1).isEmpty)
        #expect(c.acknowledged(from: 9, epoch: 3, through: 1).isEmpty)
        #expect(c.inRound)
    }

    @Test func roundsInFlightCommitInLogOrder() {
        var c = TwoPhaseCommit(nodeId: 3, members: [1, 2, 3])
        _ = c.begin(round: 1, epoch: 2, first: 1, last: 5, participants: [1, 2], now: 0, timeoutMs: 2_000)
        _ = c.localDurable(through: 5)
        _ = c.begin(round: 2, epoch: 2, first: 6, last: 9, participants: [1, 2], now: 1, timeoutMs: 2_000)
        #expect(c.roundsInFlight == 2)
        // Our copy of round 2 is not durable yet: a follower's copy of both
        // decides round 1 alone.
        let first = c.acknowledged(from: 1, epoch: 2, through: 9)
        #expect(first.contains(.committed(round: 1, through: 5)))
        #expect(!first.contains(.committed(round: 2, through: 9)))
        #expect(first.contains(.send(to: 2, .commit(epoch: 2, round: 1, last: 5))))
        #expect(c.localDurable(through: 9).contains(.committed(round: 2, through: 9)))
        #expect(!c.inRound)
        // One acknowledgement covering three rounds commits them in one step.
        _ = c.begin(round: 3, epoch: 2, first: 10, last: 10, participants: [1, 2], now: 2, timeoutMs: 2_000)
        _ = c.begin(round: 4, epoch: 2, first: 11, last: 12, participants: [1, 2], now: 2, timeoutMs: 2_000)
        _ = c.begin(round: 5, epoch: 2, first: 13, last: 13, participants: [1, 2], now: 2, timeoutMs: 2_000)
        _ = c.localDurable(through: 13)
        let all = c.acknowledged(from: 2, epoch: 2, through: 13)
        #expect(all.filter { if case .committed = $0 { return true } else { return false } } == [.committed(round: 5, through: 13)])
        #expect(!c.inRound)
    }

    @Test func aTimeoutOfTheOldestRoundAbortsEveryRoundInFlight() {
        var c = TwoPhaseCommit(nodeId: 1, members: [1, 2, 3])
        _ = c.begin(round: 1, epoch: 3, first: 1, last: 1, participants: [2, 3], now: 0, timeoutMs: 500)
        _ = c.begin(round: 2, epoch: 3, first: 2, last: 2, participants: [2, 3], now: 100, timeoutMs: 500)
        _ = c.localDurable(through: 2)
        #expect(c.deadline == 500)
        #expect(c.tick(now: 499).isEmpty)
        let out = c.tick(now: 500)
        #expect(out.contains(.aborted(round: 2, reason: "timeout")))
        #expect(out.contains(.send(to: 2, .abort(epoch: 3, round: 2))))
        #expect(out.contains(.send(to: 3, .abort(epoch: 3, round: 2))))
        #expect(!c.inRound)
    }

    @Test func aPeerAskedOnlyInALaterRoundVotesForTheEarlierOnesToo() {
        // Peer 3 was down when round 1 began and up for round 2: its copy of
        // both decides them, in order.
        var c = TwoPhaseCommit(nodeId: 1, members: [1, 2, 3])
        _ = c.begin(round: 1, epoch: 1, first: 1, last: 1, participants: [2], now: 0, timeoutMs: 2_000)
        _ = c.begin(round: 2, epoch: 1, first: 2, last: 2, participants: [2, 3], now: 0, timeoutMs: 2_000)
        _ = c.localDurable(through: 2)
        #expect(c.acknowledged(from: 3, epoch: 1, through: 2).contains(.committed(round: 2, through: 2)))
    }

    @Test func aPeerThatWentDownVotesAgainOnceAskedAgain() {
        var c = TwoPhaseCommit(nodeId: 1, members: [1, 2, 3])
        _ = c.begin(round: 1, epoch: 1, first: 1, last: 1, participants: [2, 3], now: 0, timeoutMs: 2_000)
        _ = c.localDurable(through: 1)
        #expect(c.peerDown(3).isEmpty)                                    // 2 may still answer
        #expect(c.acknowledged(from: 2, epoch: 1, through: 1).contains(.committed(round: 1, through: 1)))
        _ = c.begin(round: 2, epoch: 1, first: 2, last: 2, participants: [3], now: 0, timeoutMs: 2_000)
        #expect(c.localDurable(through: 2).isEmpty, "peer 3 is live again and may vote")
        #expect(c.acknowledged(from: 3, epoch: 1, through: 2).contains(.committed(round: 2, through: 2)))
    }
}
