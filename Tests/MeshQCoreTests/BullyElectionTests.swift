// BullyElection: the election value alone (one message at a time), and
// election scenarios — crashes, restarts, partitions, simultaneous
// candidates — run as whole NodeCores on the NodeCoreDriver, where after
// each scenario no epoch had two leaders (invariant 1) and no node's
// persisted vote went backwards.
import MeshQTestSupport
import Testing
@testable import MeshQCore

/// The election of node `id` of `members` with the default timings
/// (heartbeat 100 ms, leader timeout 500 ms, election timeout 300 ms).
func election(_ id: Int, members: [Int] = [1, 2, 3], standing: BullyElection.Standing = .voter,
              votedEpoch: UInt64 = 0) -> BullyElection {
    let s = ClusterSettings()
    return BullyElection(nodeId: id, members: members, epoch: 0, votedEpoch: votedEpoch,
                         heartbeatIntervalMs: s.heartbeatIntervalMs, leaderTimeoutMs: s.leaderTimeoutMs,
                         electionTimeoutMs: s.electionTimeoutMs, standing: standing)
}

/// NodeCores electing on the driver, with the default timings (as above).
func electionCluster(_ count: Int = 3) -> NodeCoreDriver {
    NodeCoreDriver(nodes: count, settings: ClusterSettings())
}

extension NodeCoreDriver {
    /// Lets `ms` of virtual time pass.
    func pass(_ ms: Int64) { run(withinMs: ms) { false } }

    /// Whether every node in `ids` follows `leader` (which leads).
    func allFollow(_ leader: Int, _ ids: [Int]) -> Bool {
        leaders == [leader] && ids.allSatisfy { node($0).leaderId == leader && node($0).role == .follower }
    }

    /// Invariant 1 over the whole run so far, and durable votes never go back.
    func expectElectionSafety(sourceLocation: SourceLocation = #_sourceLocation) {
        for (e, ls) in leadersByEpoch {
            #expect(ls.count <= 1, "two leaders in epoch \(e): \(ls.sorted())", sourceLocation: sourceLocation)
        }
        #expect(votesBackwards.isEmpty, "\(votesBackwards)", sourceLocation: sourceLocation)
    }
}

@Suite struct BullyElectionTests {
    @Test func highestIdLeadsAndEveryoneAgrees() {
        let d = electionCluster()
        d.start()
        #expect(d.run(withinMs: 5_000) { d.allFollow(3, [1, 2]) })
        d.pass(1_000)
        #expect(d.allFollow(3, [1, 2]), "leadership did not stay put")
        let epoch = d.node(3).epoch
        for id in [1, 2] { #expect(d.node(id).epoch == epoch) }
        #expect(d.leadersByEpoch[epoch] == [3])
        // The elected leader serves.
        guard case .ok? = d.request(.enqueue(payload: Array("x".utf8)), at: 3) else {
            Issue.record("the elected leader does not serve: \(d.replies)")
            return
        }
        d.expectElectionSafety()
    }

    @Test func simultaneousCandidatesYieldOneLeader() {
        let d = electionCluster()
        d.start([1, 2])          // 1 and 2 both start elections at the same instant; 3 is down
        #expect(d.run(withinMs: 5_000) { d.allFollow(2, [1]) })
        d.pass(1_000)
        #expect(d.allFollow(2, [1]))
        d.expectElectionSafety()
    }

    @Test func leaderCrashElectsTheNextHighestInAHigherEpoch() {
        let d = electionCluster()
        d.start()
        #expect(d.run(withinMs: 5_000) { d.allFollow(3, [1, 2]) })
        let e3 = d.node(3).epoch
        d.crash(3)
        #expect(d.run(withinMs: 5_000) { d.allFollow(2, [1]) })
        #expect(d.node(2).epoch > e3)
        d.expectElectionSafety()
    }

    @Test func returningHigherIdTakesOver() {
        let d = electionCluster()
        d.start()
        #expect(d.run(withinMs: 5_000) { d.allFollow(3, [1, 2]) })
        d.crash(3)
        #expect(d.run(withinMs: 5_000) { d.allFollow(2, [1]) })
        let e2 = d.node(2).epoch
        d.start([3])
        #expect(d.run(withinMs: 5_000) { d.allFollow(3, [1, 2]) })
        #expect(d.node(3).epoch > e2)
        d.expectElectionSafety()
    }

    @Test func loneSurvivorNeverLeads() {
        let d = electionCluster()
        d.start()
        #expect(d.run(withinMs: 5_000) { d.allFollow(3, [1, 2]) })
        let elected = d.leadersByEpoch.count
        d.crash(3)
        d.crash(2)
        d.pass(3_000)
        #expect(d.leaders.isEmpty)
        #expect(d.node(1).leaderId == nil)
        #expect(d.leadersByEpoch.count == elected, "the survivor won an election alone")
        d.expectElectionSafety()
    }

    @Test func leaderCutOffFromTheMajorityStepsDown() {
        let d = electionCluster()
        d.start()
        #expect(d.run(withinMs: 5_000) { d.allFollow(3, [1, 2]) })
        for p in [1, 2] {
            d.cutLink(from: 3, to: p)
            d.cutLink(from: p, to: 3)
        }
        #expect(d.run(withinMs: 5_000) { d.node(3).role != .leader && d.allFollow(2, [1]) })
        d.pass(1_000)
        #expect(d.node(3).role != .leader)
        #expect(d.leaders == [2])
        d.expectElectionSafety()
    }

    /// A reload (SIGHUP) reaches the election: with leader_timeout_ms raised
    /// from 500 to 2000, the followers wait that long before they give up on
    /// a crashed leader, then elect the next.
    @Test func reloadedTimingsApplyFromTheNextTimer() {
        let d = electionCluster()
        d.start()
        #expect(d.run(withinMs: 5_000) { d.allFollow(3, [1, 2]) })
        var slower = ClusterSettings()
        slower.leaderTimeoutMs = 2_000
        for id in d.ids { d.node(id).reload(slower) }
        d.crash(3)
        d.pass(1_500)
        #expect(d.node(1).leaderId == 3 && d.node(2).leaderId == 3, "a follower gave up before the reloaded timeout")
        #expect(d.run(withinMs: 5_000) { d.allFollow(2, [1]) })
        d.expectElectionSafety()
    }

    @Test func staleLeaderStepsDownWhenItSeesAHigherEpoch() {
        var n = election(3)
        n.peerUp(1)
        n.peerUp(2)
        _ = n.start(now: 0)
        _ = n.receive(from: 1, .vote(epoch: 1, position: .zero, leaseWaitMs: 0, leaseHolder: 0), now: 1)
        #expect(n.role == .leader && n.epoch == 1)
        let out = n.receive(from: 2, .heartbeatAck(epoch: 7, sentAt: 2), now: 2)
        #expect(n.role == .follower && n.epoch == 7)
        #expect(out.contains(.leaderLost))
        // A heartbeat from an older epoch is refused and answered with ours.
        let stale = n.receive(from: 1, .heartbeat(epoch: 3, sentAt: 3), now: 3)
        #expect(stale == [.send(to: 1, .heartbeatAck(epoch: 7, sentAt: 3))])
        #expect(n.leaderId == nil)
    }

    @Test func oneVotePerEpoch() {
        var n = election(1)
        let first = n.receive(from: 2, .election(epoch: 5, position: .zero), now: 0)
        #expect(first == [.persistVote(epoch: 5), .send(to: 2, .vote(epoch: 5, position: .zero, leaseWaitMs: 0, leaseHolder: 0))])
        #expect(n.receive(from: 3, .election(epoch: 5, position: .zero), now: 1).isEmpty)
        #expect(n.receive(from: 3, .election(epoch: 4, position: .zero), now: 2).isEmpty)
        #expect(n.receive(from: 3, .election(epoch: 6, position: .zero), now: 3).contains(.persistVote(epoch: 6)))
    }

    /// A node that voted for a higher candidate leaves a late election from
    /// a lower node to that candidate: running itself would raise the epoch
    /// over the candidate, whose voters would then fence it once it won.
    @Test func aVoterForAHigherCandidateOnlyAnswersALateLowerElection() {
        var n = election(2)
        for p in [1, 3] { n.peerUp(p) }
        _ = n.start(now: 0)                                                      // candidate in epoch 1
        #expect(n.receive(from: 3, .election(epoch: 2, position: .zero), now: 1).contains(.persistVote(epoch: 2)))
        let late = n.receive(from: 1, .election(epoch: 1, position: .zero), now: 2)
        #expect(late == [.send(to: 1, .answer(epoch: 1))])
        #expect(n.role == .follower && n.votedEpoch == 2)
        // A lower election of a later epoch is a new round: the bully step runs.
        let later = n.receive(from: 1, .election(epoch: 3, position: .zero), now: 3)
        #expect(later.contains(.persistVote(epoch: 4)))
        #expect(n.role == .candidate)
    }

    /// Leader stickiness: a follower of a live higher leader withholds its
    /// vote from a lower candidate (it would fence out the leader it follows),
    /// and votes once that leader is silent past the timeout or its link is down.
    @Test func aFollowerOfALiveHigherLeaderWithholdsItsVoteFromALowerCandidate() {
        let timeout = Int64(ClusterSettings().leaderTimeoutMs)
        var n = election(1)
        for p in [2, 3] { n.peerUp(p) }
        _ = n.receive(from: 3, .heartbeat(epoch: 1, sentAt: 0), now: 0)
        #expect(n.leaderId == 3)
        #expect(!n.receive(from: 2, .election(epoch: 2, position: .zero), now: 10).contains(.persistVote(epoch: 2)))
        #expect(n.leaderId == 3 && n.votedEpoch == 1)
        // Silent past the timeout: the vote is given.
        var m = election(1)
        for p in [2, 3] { m.peerUp(p) }
        _ = m.receive(from: 3, .heartbeat(epoch: 1, sentAt: 0), now: 0)
        #expect(m.receive(from: 2, .election(epoch: 2, position: .zero), now: timeout).contains(.persistVote(epoch: 2)))
        // The leader's link is down: the vote is given at once.
        var k = election(1)
        for p in [2, 3] { k.peerUp(p) }
        _ = k.receive(from: 3, .heartbeat(epoch: 1, sentAt: 0), now: 0)
        k.peerDown(3)
        #expect(k.receive(from: 2, .election(epoch: 2, position: .zero), now: 10).contains(.persistVote(epoch: 2)))
    }

    /// The same for a vote just given to a higher candidate whose coordinator
    /// has not arrived: the lower candidate waits that election out.
    @Test func aVoterForAHigherCandidateWithholdsItsVoteForAnElectionTimeout() {
        let electionTimeout = Int64(ClusterSettings().electionTimeoutMs)
        var n = election(1)
        for p in [2, 3] { n.peerUp(p) }
        #expect(n.receive(from: 3, .election(epoch: 1, position: .zero), now: 0).contains(.persistVote(epoch: 1)))
        #expect(!n.receive(from: 2, .election(epoch: 2, position: .zero), now: 10).contains(.persistVote(epoch: 2)))
        #expect(n.receive(from: 2, .election(epoch: 3, position: .zero), now: electionTimeout).contains(.persistVote(epoch: 3)))
    }

    @Test func votesCarryPositionsForRecovery() {
        var nodes = [1: election(1), 2: election(2), 3: election(3)]
        for id in [1, 2, 3] { for p in [1, 2, 3] where p != id { nodes[id]!.peerUp(p) } }
        nodes[1]!.logMoved(to: LogPosition(epoch: 2, index: 40))
        nodes[2]!.logMoved(to: LogPosition(epoch: 2, index: 45))
        var won: [Int: LogPosition] = [:]
        for o in nodes[3]!.start(now: 0) {
            if case .send(let to, let m) = o, nodes[to] != nil {
                for r in nodes[to]!.receive(from: 3, m, now: 0) {
                    if case .send(3, let reply) = r {
                        for w in nodes[3]!.receive(from: to, reply, now: 0) {
                            if case .becameLeader(_, let v, _) = w { won = v }
                        }
                    }
                }
            }
        }
        #expect(won[1] == LogPosition(epoch: 2, index: 40) || won[2] == LogPosition(epoch: 2, index: 45))
    }

    /// A voter that acknowledged another leader's heartbeat passes on how
    /// long that leader's lease may last; the winner waits it out, unless the
    /// old leader voted for it too (a leader steps down before it votes).
    @Test func theWinnerWaitsOutAnOlderLeadersLeaseUnlessThatLeaderVoted() {
        func won(_ outs: [BullyElection.Output]) -> Int64? {
            for case .becameLeader(_, _, let wait) in outs { return wait }
            return nil
        }
        var a = BullyElection(nodeId: 3, members: [1, 2, 3], epoch: 4, votedEpoch: 4,
                              heartbeatIntervalMs: 100, leaderTimeoutMs: 500, electionTimeoutMs: 300)
        _ = a.start(now: 0)
        #expect(won(a.receive(from: 1, .vote(epoch: 5, position: .zero, leaseWaitMs: 320, leaseHolder: 2), now: 1)) == 320)

        var b = BullyElection(nodeId: 5, members: [1, 2, 3, 4, 5], epoch: 4, votedEpoch: 4,
                              heartbeatIntervalMs: 100, leaderTimeoutMs: 500, electionTimeoutMs: 300)
        _ = b.start(now: 0)
        #expect(won(b.receive(from: 1, .vote(epoch: 5, position: .zero, leaseWaitMs: 320, leaseHolder: 2), now: 1)) == nil)
        #expect(won(b.receive(from: 2, .vote(epoch: 5, position: .zero, leaseWaitMs: 0, leaseHolder: 0), now: 2)) == 0)

        // The voter's side: it acked leader 2 at t=100 and votes for 3 at t=250.
        var v = BullyElection(nodeId: 1, members: [1, 2, 3], epoch: 4, votedEpoch: 4,
                              heartbeatIntervalMs: 100, leaderTimeoutMs: 500, electionTimeoutMs: 300)
        _ = v.receive(from: 2, .heartbeat(epoch: 4, sentAt: 90), now: 100)
        let vote = v.receive(from: 3, .election(epoch: 5, position: .zero), now: 250)
        #expect(vote.contains(.send(to: 3, .vote(epoch: 5, position: .zero, leaseWaitMs: 350, leaseHolder: 2))))
    }
}
