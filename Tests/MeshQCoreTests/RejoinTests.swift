// A node that lost part of its log (Rejoin, BullyElection's rejoining
// standing): it never votes or runs, it abstains so candidates need not wait
// for it, and it counts again only once it holds the log of the leader that
// answered this incarnation's probe.
import MeshQTestSupport
import Testing
@testable import MeshQCore

@Suite struct RejoinTests {
    /// Whether `id` asked for or gave a vote (an ELECTION or a VOTE it sent).
    private func campaignedOrVoted(_ d: NodeCoreDriver, _ id: Int) -> Bool {
        d.delivered.contains { env in
            guard env.from == id, case .election(let m) = env.body else { return false }
            switch m {
            case .election, .vote: return true
            default: return false
            }
        }
    }

    @Test func aCatchingUpNodeNeitherVotesNorRunsButAbstains() {
        let d = electionCluster()
        d.corrupt(3, keep: 0)
        d.holdDurable = [3]      // it cannot finish catching up until `sync`
        d.start()
        // Node 3 is up and highest, yet node 2 wins at once: 3 abstained.
        #expect(d.run(withinMs: 100) { d.leaders == [2] })
        d.pass(2_000)
        #expect(d.leaders == [2], "a rejoining node must not bully its way in")
        #expect(d.node(3).leaderId == 2 && d.node(3).rejoining)
        #expect(!campaignedOrVoted(d, 3), "a rejoining node ran or voted")
        // Caught up (its writes durable): it counts again, and the highest node takes over.
        d.holdDurable = []
        d.sync(3)
        #expect(d.run(withinMs: 5_000) { !d.node(3).rejoining && d.allFollow(3, [1, 2]) })
        #expect(d.events.contains { $0.node == 3 && $0.event.name == "rejoined" })
        d.expectElectionSafety()
    }

    @Test func withoutItsVoteNoMajorityIsLeft() {
        let d = electionCluster()
        d.corrupt(3, keep: 0)
        d.start([1, 3])
        d.pass(5_000)
        #expect(d.leaders.isEmpty, "node 1 led with the vote of a node that lost its log")
        #expect(d.leadersByEpoch.isEmpty)
        #expect(d.node(3).role == .follower)
        #expect(!campaignedOrVoted(d, 3))
    }

    @Test func aCatchingUpNodeSendsOnlyAbstain() {
        var e = election(2, standing: .rejoining)
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
