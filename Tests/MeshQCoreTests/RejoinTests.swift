// A node that lost part of its log (Rejoin, BullyElection's rejoining
// standing): it never votes or runs, it abstains so candidates need not wait
// for it, and it counts again only once it holds the log of the leader that
// answered this incarnation's probe.
import Testing
@testable import MeshQCore

@Suite struct RejoinTests {
    private func election(_ id: Int, _ standing: BullyElection.Standing, votedEpoch: UInt64 = 0) -> BullyElection {
        BullyElection(nodeId: id, members: [1, 2, 3], epoch: 0, votedEpoch: votedEpoch,
                      heartbeatIntervalMs: 100, leaderTimeoutMs: 500, electionTimeoutMs: 300, standing: standing)
    }

    @Test func aCatchingUpNodeNeitherVotesNorRunsButAbstains() {
        let net = ElectionNet([1, 2, 3])
        net.nodes[3] = election(3, .rejoining)
        net.start()
        // Node 3 is up and highest, yet node 2 wins at once: 3 abstained.
        net.run(ms: 100)
        #expect(net.leaders() == [2])
        #expect(net.persistedVotes[3] == nil, "a rejoining node persisted a vote")
        net.run(ms: 2_000)
        #expect(net.leaders() == [2], "a rejoining node must not bully its way in")
        #expect(net.nodes[3]!.leaderId == 2)
        // Caught up: it counts again, and the highest node takes over.
        net.nodes[3]!.rejoined()
        net.run(ms: 2_000)
        #expect(net.leaders() == [3])
    }

    @Test func withoutItsVoteNoMajorityIsLeft() {
        let net = ElectionNet([1, 2, 3], alive: [1, 3])
        net.nodes[3] = election(3, .rejoining)
        net.start()
        net.run(ms: 5_000)
        #expect(net.leaders().isEmpty, "node 1 led with the vote of a node that lost its log")
        #expect(net.nodes[3]!.role == .follower)
    }

    @Test func aCatchingUpNodeSendsOnlyAbstain() {
        var e = election(2, .rejoining)
        #expect(e.start(now: 0).allSatisfy { if case .log = $0 { return true } else { return false } })
        for from in [1, 3] {
            let out = e.receive(from: from, .election(epoch: 7, position: .zero), now: 10)
            #expect(out == [.send(to: from, .abstain(epoch: 7))])
        }
        // A leader timeout does not make it run.
        #expect(!e.tick(now: 10_000).contains { if case .send = $0 { return true } else { return false } })
        #expect(e.role == .follower)
    }

    @Test func theTargetMustAnswerThisProbeFromTheLeaderFollowed() {
        var c = Rejoin(probeId: 42)
        let first = c.shouldAsk(leaderEpoch: 5, now: 0, retryMs: 200)
        let tooSoon = c.shouldAsk(leaderEpoch: 5, now: 100, retryMs: 200)
        #expect(first)
        #expect(!tooSoon, "asks again only after the retry interval")
        c.answered(epoch: 5, id: 41, index: 10, followingEpoch: 5)
        #expect(c.target == nil, "an answer to an earlier incarnation's probe")
        c.answered(epoch: 4, id: 42, index: 10, followingEpoch: 5)
        #expect(c.target == nil, "an answer from a leader we no longer follow")
        c.answered(epoch: 5, id: 42, index: 10, followingEpoch: 5)
        #expect(!c.reached(matchedEpoch: 5, matchedThrough: 9))
        #expect(!c.reached(matchedEpoch: 4, matchedThrough: 12), "matching another leader's log proves nothing")
        #expect(c.reached(matchedEpoch: 5, matchedThrough: 10))
        let answeredAlready = c.shouldAsk(leaderEpoch: 5, now: 1_000, retryMs: 200)
        #expect(!answeredAlready)
        // A new leader: its own answer is needed.
        c.leaderChanged(epoch: 6)
        #expect(c.target == nil)
        let askNew = c.shouldAsk(leaderEpoch: 6, now: 1_000, retryMs: 200)
        #expect(askNew)
    }
}
