// A node that lost part of its log (Rejoin, BullyElection's rejoining
// standing): it never votes or runs, it abstains so candidates need not wait
// for it, and it counts again only once it holds the log of the leader that
// answered this incarnation's probe. A node that starts with an empty log
// does the same, unless its peers' logs show the cluster new.
import MeshQTestSupport
import Testing
@testable import MeshQCore

@Suite struct RejoinTests {
    /// Whether `id` asked for or gave a vote (an ELECTION or a VOTE it sent),
    /// after the first `since` deliveries.
    private func campaignedOrVoted(_ d: NodeCoreDriver, _ id: Int, since: Int = 0) -> Bool {
        d.delivered.dropFirst(since).contains { env in
            guard env.from == id, case .election(let m) = env.body else { return false }
            switch m {
            case .election, .vote: return true
            default: return false
            }
        }
    }

    /// A cluster that elected a leader and committed its first entry, then
    /// went down whole: every disk holds that history. `since`: the
    /// deliveries and elections of that history, to look past.
    private func clusterWithHistory() -> (NodeCoreDriver, since: Int, epochs: Set<UInt64>) {
        let d = electionCluster()
        d.start()
        #expect(d.run(withinMs: 5_000) { d.ids.allSatisfy { d.node($0).commitIndex >= 1 } })
        for id in d.ids { d.crash(id) }
        return (d, d.delivered.count, Set(d.leadersByEpoch.keys))
    }

    /// What NodeBoot does before the core starts: a node holding nothing catches up.
    private func bootMarks(_ d: NodeCoreDriver) {
        for id in d.ids { d.editDisk(id) { $0.markRejoiningIfEmpty(members: d.ids.count) } }
    }

    @Test func aCatchingUpNodeNeitherVotesNorRunsButAbstains() {
        let (d, since, _) = clusterWithHistory()
        d.corrupt(3, keep: 0)
        d.holdDurable = [3]      // it cannot finish catching up until `sync`
        d.start()
        // Node 3 is up and highest, yet node 2 wins at once: 3 abstained.
        #expect(d.run(withinMs: 100) { d.leaders == [2] })
        d.pass(2_000)
        #expect(d.leaders == [2], "a rejoining node must not bully its way in")
        #expect(d.node(3).leaderId == 2 && d.node(3).rejoining)
        #expect(!campaignedOrVoted(d, 3, since: since), "a rejoining node ran or voted")
        // Caught up (its writes durable): it counts again, and the highest node takes over.
        d.holdDurable = []
        d.sync(3)
        #expect(d.run(withinMs: 5_000) { !d.node(3).rejoining && d.allFollow(3, [1, 2]) })
        #expect(d.events.contains { $0.node == 3 && $0.event.name == "rejoined" })
        d.expectElectionSafety()
    }

    @Test func withoutItsVoteNoMajorityIsLeft() {
        let (d, since, historyEpochs) = clusterWithHistory()
        d.corrupt(3, keep: 0)
        d.start([1, 3])
        d.pass(5_000)
        #expect(d.leaders.isEmpty, "node 1 led with the vote of a node that lost its log")
        #expect(Set(d.leadersByEpoch.keys) == historyEpochs)
        #expect(d.node(3).role == .follower)
        #expect(!campaignedOrVoted(d, 3, since: since))
    }

    @Test func aNewClusterOfEmptyNodesFindsItselfNewAndElects() {
        let d = electionCluster()
        bootMarks(d)
        #expect(d.ids.allSatisfy { d.disks[$0]!.rejoining }, "every empty node starts catching up")
        d.start()
        #expect(d.run(withinMs: 2_000) { d.allFollow(3, [1, 2]) })
        #expect(d.ids.allSatisfy { !d.node($0).rejoining && !d.disks[$0]!.rejoining })
        #expect(d.ids.allSatisfy { id in d.events.contains { $0.node == id && $0.event.name == "new_cluster" } })
        d.expectElectionSafety()
    }

    @Test func twoEmptyNodesOfThreeAreAMajorityAndStartTheCluster() {
        let d = electionCluster()
        bootMarks(d)
        d.start([1, 2])
        #expect(d.run(withinMs: 2_000) { d.allFollow(2, [1]) })
        // The third comes later: the others hold entries now, so it catches up first.
        d.start([3])
        #expect(d.events.contains { $0.node == 3 && $0.event.name == "rejoin_behind" })
        #expect(d.run(withinMs: 5_000) { !d.node(3).rejoining && d.allFollow(3, [1, 2]) })
        #expect(!d.events.contains { $0.node == 3 && $0.event.name == "new_cluster" })
        d.expectElectionSafety()
    }

    /// A node whose data_dir was wiped cannot tell itself from a new one;
    /// its peers' logs can. It must not vote with its empty log: with node 1
    /// down, nodes 2 and 3 must not elect (node 3 may have acknowledged
    /// entries that only node 1 still holds).
    @Test func aWipedNodeDoesNotVoteUntilItHoldsTheLeadersLog() {
        let (d, since, _) = clusterWithHistory()
        d.editDisk(3) { $0.wipeReplicatedState() }
        bootMarks(d)
        #expect(d.disks[3]!.rejoining && !d.disks[1]!.rejoining && !d.disks[2]!.rejoining)
        d.start([2, 3])
        d.pass(5_000)
        #expect(d.leaders.isEmpty, "node 2 led with the vote of a wiped node")
        #expect(!campaignedOrVoted(d, 3, since: since))
        #expect(d.events.contains { $0.node == 3 && $0.event.name == "rejoin_behind" })
        // Node 1 returns: 2 leads (3 abstains), 3 catches up, then counts again.
        d.start([1])
        #expect(d.run(withinMs: 10_000) { !d.node(3).rejoining && d.allFollow(3, [1, 2]) })
        #expect(d.node(3).commitIndex >= 1)
        d.expectElectionSafety()
    }

    /// A late answer to an earlier incarnation's question describes the peer
    /// as it was then (blank, perhaps, before the cluster ran): only answers
    /// to this incarnation's question count.
    @Test func onlyAnswersToThisIncarnationsQuestionCount() {
        let n = LoneNode.start(3, relayIdBase: 77, rejoining: true)
        func report(id: UInt64) {
            n.peerMessage(PeerEnvelope(from: 2, to: 3, lamport: 1, epoch: 0,
                                       body: .logReport(id: id, lastIndex: 0, votedEpoch: 0, promisedEpoch: 0)),
                          now: 10, wallMs: 10)
        }
        report(id: 76)
        #expect(n.rejoining, "an earlier incarnation's answer made the cluster new")
        report(id: 77)
        #expect(!n.rejoining)
    }

    /// Entries from a leader before any peer answered: the log is no longer
    /// empty, so no more questions, and no wakeup left due for them (it
    /// would fire again at once, forever).
    @Test func aNodeThatGotEntriesStopsAskingAndSetsNoWakeupForIt() {
        let n = LoneNode.start(3, relayIdBase: 77, rejoining: true)
        n.receiveFirstEntries([LogEntry(index: 1, epoch: 1, lamport: 5, op: .noop)], from: 2, epoch: 1, now: 10)
        n.persisted(now: 10)
        #expect(n.log.lastIndex == 1 && n.rejoining)
        n.tick(now: 5_000, wallMs: 5_000)
        let probes = n.takeEffects().filter { if case .sendPeer(let e) = $0, case .logProbe = e.body { return true } else { return false } }
        #expect(probes.isEmpty)
        #expect((n.nextWakeup() ?? .max) > 5_000, "a wakeup due at once: \(n.nextWakeup() ?? -1)")
    }

    @Test func emptyReportsProveANewClusterOnlyAsAMajorityAndNeverAfterEntries() {
        var r = Rejoin(probeId: 1, startedEmpty: true)
        #expect(!r.provesNewCluster(size: 5))
        r.reported(by: 2, lastIndex: 0, votedEpoch: 0, promisedEpoch: 0)
        #expect(!r.provesNewCluster(size: 5), "two of five")
        r.reported(by: 2, lastIndex: 0, votedEpoch: 0, promisedEpoch: 0)
        #expect(!r.provesNewCluster(size: 5), "the same peer twice")
        r.reported(by: 3, lastIndex: 0, votedEpoch: 0, promisedEpoch: 0)
        #expect(r.provesNewCluster(size: 5))
        r.reported(by: 4, lastIndex: 9, votedEpoch: 0, promisedEpoch: 0)
        #expect(!r.provesNewCluster(size: 5) && !r.mayFindNewCluster, "one log with entries settles it")
        r.reported(by: 5, lastIndex: 0, votedEpoch: 0, promisedEpoch: 0)
        #expect(!r.provesNewCluster(size: 5))
        var afterALeader = Rejoin(probeId: 1, startedEmpty: true)
        afterALeader.reported(by: 2, lastIndex: 0, votedEpoch: 0, promisedEpoch: 8)
        afterALeader.reported(by: 3, lastIndex: 0, votedEpoch: 0, promisedEpoch: 0)
        #expect(!afterALeader.provesNewCluster(size: 3), "an empty log that accepted a leader: the cluster ran")
        var afterAVote = Rejoin(probeId: 1, startedEmpty: true)
        afterAVote.reported(by: 2, lastIndex: 0, votedEpoch: 3, promisedEpoch: 0)
        #expect(!afterAVote.provesNewCluster(size: 3) && afterAVote.mayFindNewCluster, "a vote proves nothing either way")
        afterAVote.reported(by: 3, lastIndex: 0, votedEpoch: 0, promisedEpoch: 0)
        #expect(afterAVote.provesNewCluster(size: 3))
        var damaged = Rejoin(probeId: 1, startedEmpty: false)
        damaged.reported(by: 2, lastIndex: 0, votedEpoch: 0, promisedEpoch: 0)
        damaged.reported(by: 3, lastIndex: 0, votedEpoch: 0, promisedEpoch: 0)
        #expect(!damaged.provesNewCluster(size: 3), "a log with records is never new")
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
