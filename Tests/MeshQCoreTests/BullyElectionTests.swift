import Testing
@testable import MeshQCore

/// N elections on an instant network with links that can be cut, a virtual
/// clock, and a log of who led in which epoch.
final class ElectionNet {
    var nodes: [Int: BullyElection] = [:]
    var alive: Set<Int>
    var cut: Set<[Int]> = []
    var now: Int64 = 0
    var queue: [(from: Int, to: Int, BullyElection.Message)] = []
    var leadersByEpoch: [UInt64: Set<Int>] = [:]
    var persistedVotes: [Int: UInt64] = [:]

    init(_ ids: [Int], alive: Set<Int>? = nil) {
        self.alive = alive ?? Set(ids)
        for id in ids {
            nodes[id] = BullyElection(nodeId: id, members: ids, epoch: 0, votedEpoch: 0,
                                      heartbeatIntervalMs: 100, leaderTimeoutMs: 500, electionTimeoutMs: 300)
        }
        refreshLinks()
    }

    func linked(_ a: Int, _ b: Int) -> Bool {
        alive.contains(a) && alive.contains(b) && !cut.contains([min(a, b), max(a, b)])
    }

    func refreshLinks() {
        for id in nodes.keys {
            // The election is told what a failure detector would conclude.
            for p in nodes.keys where p != id { if linked(id, p) { nodes[id]!.peerUp(p) } else { nodes[id]!.peerDown(p) } }
        }
    }

    func apply(_ id: Int, _ outs: [BullyElection.Output]) {
        for o in outs {
            switch o {
            case .send(let to, let m): queue.append((id, to, m))
            case .persistVote(let e):
                #expect(e >= persistedVotes[id, default: 0], "vote epochs go backwards on \(id)")
                persistedVotes[id] = e
            case .becameLeader(let e, _, _): leadersByEpoch[e, default: []].insert(id)
            default: break
            }
        }
    }

    func deliver() {
        while !queue.isEmpty {
            let (f, t, m) = queue.removeFirst()
            guard linked(f, t), nodes[t] != nil else { continue }
            apply(t, nodes[t]!.receive(from: f, m, now: now))
        }
    }

    func start(_ ids: [Int]? = nil) {
        for id in (ids ?? nodes.keys.sorted()) where alive.contains(id) { apply(id, nodes[id]!.start(now: now)) }
        deliver()
    }

    func run(ms: Int64) {
        let end = now + ms
        while now < end {
            now += 10
            for id in nodes.keys.sorted() where alive.contains(id) { apply(id, nodes[id]!.tick(now: now)) }
            deliver()
            for (e, ls) in leadersByEpoch { #expect(ls.count <= 1, "two leaders in epoch \(e): \(ls)") }
        }
    }

    func leaders() -> [Int] { nodes.filter { alive.contains($0.key) && $0.value.role == .leader }.map(\.key).sorted() }

    func crash(_ id: Int) { alive.remove(id); refreshLinks() }

    func restart(_ id: Int) {
        let old = nodes[id]!
        // Durable: the highest vote. Leadership and epoch beyond it are not.
        nodes[id] = BullyElection(nodeId: id, members: old.members, epoch: 0, votedEpoch: persistedVotes[id] ?? 0,
                                  heartbeatIntervalMs: 100, leaderTimeoutMs: 500, electionTimeoutMs: 300)
        alive.insert(id)
        refreshLinks()
        apply(id, nodes[id]!.start(now: now))
        deliver()
    }
}

@Suite struct BullyElectionTests {
    @Test func highestIdLeadsAndEveryoneAgrees() {
        let net = ElectionNet([1, 2, 3])
        net.start()
        net.run(ms: 1_000)
        #expect(net.leaders() == [3])
        let epoch = net.nodes[3]!.epoch
        for id in [1, 2] {
            #expect(net.nodes[id]!.leaderId == 3)
            #expect(net.nodes[id]!.epoch == epoch)
            #expect(net.nodes[id]!.role == .follower)
        }
    }

    @Test func simultaneousCandidatesYieldOneLeader() {
        let net = ElectionNet([1, 2, 3], alive: [1, 2])
        net.start()          // 1 and 2 both start elections at the same instant
        net.run(ms: 2_000)
        #expect(net.leaders() == [2])
        #expect(net.nodes[1]!.leaderId == 2)
    }

    @Test func leaderCrashElectsTheNextHighestInAHigherEpoch() {
        let net = ElectionNet([1, 2, 3])
        net.start()
        net.run(ms: 1_000)
        let e3 = net.nodes[3]!.epoch
        net.crash(3)
        net.run(ms: 2_000)
        #expect(net.leaders() == [2])
        #expect(net.nodes[2]!.epoch > e3)
        #expect(net.nodes[1]!.leaderId == 2)
    }

    @Test func returningHigherIdTakesOver() {
        let net = ElectionNet([1, 2, 3])
        net.start()
        net.run(ms: 1_000)
        net.crash(3)
        net.run(ms: 2_000)
        let e2 = net.nodes[2]!.epoch
        net.restart(3)
        net.run(ms: 2_000)
        #expect(net.leaders() == [3])
        #expect(net.nodes[3]!.epoch > e2)
        #expect(net.nodes[2]!.leaderId == 3 && net.nodes[1]!.leaderId == 3)
    }

    @Test func loneSurvivorNeverLeads() {
        let net = ElectionNet([1, 2, 3])
        net.start()
        net.run(ms: 1_000)
        net.crash(3)
        net.crash(2)
        net.run(ms: 3_000)
        #expect(net.leaders().isEmpty)
        #expect(net.nodes[1]!.leaderId == nil)
    }

    @Test func leaderCutOffFromTheMajorityStepsDown() {
        let net = ElectionNet([1, 2, 3])
        net.start()
        net.run(ms: 1_000)
        net.cut = [[1, 3], [2, 3]]
        net.refreshLinks()
        net.run(ms: 3_000)
        #expect(net.nodes[3]!.role != .leader)
        #expect(net.leaders() == [2])
    }

    @Test func staleLeaderStepsDownWhenItSeesAHigherEpoch() {
        var n = BullyElection(nodeId: 3, members: [1, 2, 3], epoch: 0, votedEpoch: 0,
                              heartbeatIntervalMs: 100, leaderTimeoutMs: 500, electionTimeoutMs: 300)
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
        var n = BullyElection(nodeId: 1, members: [1, 2, 3], epoch: 0, votedEpoch: 0,
                              heartbeatIntervalMs: 100, leaderTimeoutMs: 500, electionTimeoutMs: 300)
        let first = n.receive(from: 2, .election(epoch: 5, position: .zero), now: 0)
        #expect(first == [.persistVote(epoch: 5), .send(to: 2, .vote(epoch: 5, position: .zero, leaseWaitMs: 0, leaseHolder: 0))])
        #expect(n.receive(from: 3, .election(epoch: 5, position: .zero), now: 1).isEmpty)
        #expect(n.receive(from: 3, .election(epoch: 4, position: .zero), now: 2).isEmpty)
        #expect(n.receive(from: 3, .election(epoch: 6, position: .zero), now: 3).contains(.persistVote(epoch: 6)))
    }

    @Test func votesCarryPositionsForRecovery() {
        let net = ElectionNet([1, 2, 3])
        net.nodes[1]!.logMoved(to: LogPosition(epoch: 2, index: 40))
        net.nodes[2]!.logMoved(to: LogPosition(epoch: 2, index: 45))
        var won: [Int: LogPosition] = [:]
        for o in net.nodes[3]!.start(now: 0) {
            if case .send(let to, let m) = o, net.nodes[to] != nil {
                for r in net.nodes[to]!.receive(from: 3, m, now: 0) {
                    if case .send(3, let reply) = r {
                        for w in net.nodes[3]!.receive(from: to, reply, now: 0) {
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
