// The parts NodeCore is composed of, each against its own contract:
// LeaderReplication's per-follower progress (one message in flight, resend
// from where a lost one started, snapshot past the window), CommandRouter's
// holds, forwards and relay dedup, ReplyTarget's tags, LeaderMatch, TimeSync
// and LogReplay. NodeCoreTests and the simulator cover them composed.
import Testing
@testable import MeshQCore

@Suite struct NodePartsTests {
    private func log(through last: UInt64, epoch: UInt64 = 1) -> ReplicatedLog {
        var l = ReplicatedLog()
        for i in 1...last { l.append(LogEntry(index: i, epoch: epoch, lamport: i, op: .noop)) }
        return l
    }

    @Test func replicationSendsOneMessageAtATimeAndResendsALostOne() {
        var r = LeaderReplication()
        let l = log(through: 5)
        r.start(followers: [2, 3], next: 4)
        guard case .entries(let prev, let prevEpoch, let entries)? = r.nextMessage(to: 2, log: l, commitIndex: 3, now: 100)
        else { Issue.record("expected entries"); return }
        #expect(prev == 3 && prevEpoch == 1 && entries.map(\.index) == [4, 5])
        // One in flight: nothing more until it is answered or lost.
        let second = r.nextMessage(to: 2, log: l, commitIndex: 3, now: 101)
        #expect(second == nil)
        #expect(r.nextRetransmit(afterMs: 200) == 300)
        let early = r.retransmitsDue(now: 299, afterMs: 200), due = r.retransmitsDue(now: 300, afterMs: 200)
        #expect(early == [] && due == [2])
        #expect(r.progress[2]?.next == 4 && r.progress[2]?.inflight == false)
        _ = r.nextMessage(to: 2, log: l, commitIndex: 3, now: 300)
        let resend = r.acknowledged(by: 2, matched: true, index: 5, lastIndex: 5)
        #expect(resend == nil)
        #expect(r.progress[2]?.match == 5 && r.progress[2]?.next == 6)
        // Up to date, and the follower knows the commit point: nothing to send.
        let idle = r.nextMessage(to: 2, log: l, commitIndex: 3, now: 301)
        #expect(idle == nil)
    }

    @Test func aDuplicatedAnswerFreesNoLaterBatch() {
        // Streaming to a follower known to match: batches 6-7 and 8-9 in
        // flight. The answer for 6-7 arrives twice (a resent batch answered
        // again, or the network duplicated it); 8-9 is lost. It must still
        // count as in flight, so it is resent once the interval passes.
        // (Counting answers instead freed it, and a leader whose round
        // waited on it stalled until commit_timeout_ms: simulator seed 1746.)
        var r = LeaderReplication()
        var l = log(through: 5)
        r.start(followers: [2], next: 4)
        _ = r.nextMessage(to: 2, log: l, commitIndex: 3, now: 0)
        _ = r.acknowledged(by: 2, matched: true, index: 5, lastIndex: 5)
        #expect(r.progress[2]?.streaming == true && r.progress[2]?.inflight == false)
        for i: UInt64 in 6...7 { l.append(LogEntry(index: i, epoch: 1, lamport: i, op: .noop)) }
        _ = r.nextMessage(to: 2, log: l, commitIndex: 5, now: 10)
        for i: UInt64 in 8...9 { l.append(LogEntry(index: i, epoch: 1, lamport: i, op: .noop)) }
        guard case .entries(_, _, let second)? = r.nextMessage(to: 2, log: l, commitIndex: 5, now: 11) else {
            Issue.record("expected a second batch while streaming"); return
        }
        #expect(second.map(\.index) == [8, 9] && r.progress[2]?.inflightCount == 2)
        _ = r.acknowledged(by: 2, matched: true, index: 7, lastIndex: 9)
        _ = r.acknowledged(by: 2, matched: true, index: 7, lastIndex: 9)
        #expect(r.progress[2]?.inflight == true, "the answer for 6-7, twice, freed 8-9")
        #expect(r.retransmitsDue(now: 211, afterMs: 200) == [2])
        #expect(r.progress[2]?.next == 8)
        guard case .entries(let prev, _, let again)? = r.nextMessage(to: 2, log: l, commitIndex: 7, now: 211) else {
            Issue.record("expected 8-9 again"); return
        }
        #expect(prev == 7 && again.map(\.index) == [8, 9])
        _ = r.acknowledged(by: 2, matched: true, index: 9, lastIndex: 9)
        #expect(r.progress[2]?.inflight == false && r.progress[2]?.match == 9)
    }

    @Test func aMismatchResendsFromTheFollowersCommitPoint() {
        var r = LeaderReplication()
        let l = log(through: 8)
        r.start(followers: [2], next: 9)
        _ = r.nextMessage(to: 2, log: l, commitIndex: 8, now: 0)
        let resend = r.acknowledged(by: 2, matched: false, index: 3, lastIndex: 8)
        #expect(resend == 4)
        #expect(r.progress[2]?.next == 4 && r.progress[2]?.match == 3)
        // A peer found dead loses the message in flight.
        _ = r.nextMessage(to: 2, log: l, commitIndex: 8, now: 10)
        r.lost(2)
        #expect(r.progress[2]?.next == 4 && r.progress[2]?.inflight == false)
    }

    @Test func aFollowerBehindTheWindowGetsASnapshotOfTheCommitPoint() {
        var r = LeaderReplication()
        var l = log(through: 10)
        _ = l.commit(through: 9)
        l.trim(keep: 2)
        r.start(followers: [2], next: 1)
        let m = r.nextMessage(to: 2, log: l, commitIndex: 9, now: 0)
        guard case .snapshot? = m else { Issue.record("expected a snapshot"); return }
        #expect(r.progress[2]?.next == 10)
        r.stop()
        #expect(r.progress.isEmpty)
    }

    @Test func routerExpiresHeldCommandsInOrderAndDropsAClosedSession() {
        var c = CommandRouter(relayIdBase: 1)
        for (s, d) in [(1, 50), (2, 60), (1, 70)] as [(UInt64, Int64)] {
            c.hold(.init(command: .status, target: .session(ClientRef(session: s, seq: UInt64(d))), owner: "o", wallMs: 0, deadline: d))
        }
        #expect(c.nextDeadline == 50)
        let expired = c.expireHeld(now: 60).map(\.target)
        #expect(expired == [.session(ClientRef(session: 1, seq: 50)), .session(ClientRef(session: 2, seq: 60))])
        c.dropHeld(session: 1)
        #expect(c.held.isEmpty)
    }

    @Test func routerSettlesEachForwardOnce() {
        var c = CommandRouter(relayIdBase: 7)
        let a = ReplyTarget.session(ClientRef(session: 1, seq: 1)), b = ReplyTarget.session(ClientRef(session: 1, seq: 2))
        let d = ReplyTarget.forwarded(from: 4, id: 9)
        let ia = c.forward(a, to: 3, deadline: 100)
        let ib = c.forward(b, to: 3, deadline: 50)
        let id = c.forward(d, to: 2, deadline: 80)
        #expect([ia, ib, id] == [7, 8, 9])
        // An answer from another node settles the relay but answers no one.
        let wrongNode = c.answered(ia, from: 2), again = c.answered(ia, from: 3)
        #expect(wrongNode == nil && again == nil)
        let late = c.expireForwards(now: 60).map(\.target)
        #expect(late == [b])
        #expect(c.nextDeadline == 80)
        let lost = c.failForwards { $0 == 2 }.map(\.target)
        #expect(lost == [d])
        #expect(c.forwardCount == 0)
        let none = c.expireForwards(now: 1_000)
        #expect(none.isEmpty)
    }

    @Test func routerTakesARelayOnce() {
        var c = CommandRouter(relayIdBase: 1)
        let sights = [c.firstSight(relay: 5, from: 2), c.firstSight(relay: 5, from: 2), c.firstSight(relay: 5, from: 3)]
        #expect(sights == [true, false, true])
    }

    @Test func replyTargetsOrderSessionsThenParkedThenForwarded() {
        // The order waits that end together expire in: it must not depend on
        // how a target is stored, and it must be total.
        let targets: [ReplyTarget] = [
            .forwarded(from: 1, id: 2), .parked(from: 3, seq: 1), .session(ClientRef(session: 9, seq: 1)),
            .forwarded(from: 1, id: 1), .session(ClientRef(session: 2, seq: 7)), .parked(from: 2, seq: 8),
            .session(ClientRef(session: UInt64.max, seq: 0)),
        ]
        #expect(targets.sorted() == [
            .session(ClientRef(session: 2, seq: 7)), .session(ClientRef(session: 9, seq: 1)),
            .session(ClientRef(session: UInt64.max, seq: 0)),
            .parked(from: 2, seq: 8), .parked(from: 3, seq: 1),
            .forwarded(from: 1, id: 1), .forwarded(from: 1, id: 2),
        ])
        #expect(ReplyTarget.forwarded(from: 3, id: 1).isForwarded && !ReplyTarget.parked(from: 3, seq: 1).isForwarded)
        #expect(ReplyTarget.session(ClientRef(session: 4, seq: 1)).session == 4 && ReplyTarget.parked(from: 4, seq: 1).session == nil)
        // A session id with the bits the old encoding used for tags is still a session.
        #expect(ReplyTarget.session(ClientRef(session: 1 << 62 | 3, seq: 1)).session == 1 << 62 | 3)
    }

    @Test func leaderMatchStartsAtTheCommitPointForANewLeader() {
        var m = LeaderMatch()
        let first = m.follow(epoch: 4, commitIndex: 10)
        #expect(first)
        #expect(m.through == 10 && m.round == 0)
        m.saw(round: 3)
        m.matched(through: 15)
        let same = m.follow(epoch: 4, commitIndex: 12)
        #expect(!same)
        #expect(m.through == 15 && m.round == 3)
        m.cut(after: 13)
        #expect(m.through == 13)
        let newer = m.follow(epoch: 5, commitIndex: 12)
        #expect(newer)
        #expect(m.through == 12 && m.round == 0)
    }

    @Test func timeSyncSamplesANewLeaderAtOnceThenEveryInterval() {
        var t = TimeSync()
        #expect(t.nextWakeup(leader: 1) == 0)
        let s1 = t.due(leader: 1, now: 100, wallMs: 1_000, intervalMs: 500)
        let s2 = t.due(leader: 1, now: 200, wallMs: 1_100, intervalMs: 500)
        #expect(s1 == 1 && s2 == nil)
        #expect(t.nextWakeup(leader: 1) == 600)
        // An unknown request is ignored; the known one gives a sample once.
        let unknown = t.reply(seq: 9, serverMs: 2_000, wallMs: 1_010)
        let sample = t.reply(seq: 1, serverMs: 2_000, wallMs: 1_010)
        let twice = t.reply(seq: 1, serverMs: 2_000, wallMs: 1_010)
        #expect(unknown == nil && sample != nil && twice == nil)
        // A new leader is sampled at once.
        let s3 = t.due(leader: 2, now: 300, wallMs: 1_200, intervalMs: 500)
        #expect(s3 == 2)
    }

    @Test func logReplayCutsARewrittenTailAndSkipsAGap() {
        let e = { (i: UInt64, ep: UInt64) in LogRecord.entry(LogEntry(index: i, epoch: ep, lamport: i * 10, op: .noop)) }
        let r = LogReplay(snapshot: nil, records: [e(1, 1), e(2, 1), e(3, 1), .commit(1), e(2, 2), e(5, 2)],
                          commitAll: false)
        #expect(r.log.lastIndex == 2 && r.log.epoch(at: 2) == 2)
        #expect(r.log.commitIndex == 1)
        #expect(r.skippedRecords == 1)
        #expect(r.clock.time >= 30)
        let alone = LogReplay(snapshot: nil, records: [e(1, 1), e(2, 1)], commitAll: true)
        #expect(alone.log.commitIndex == 2)
    }
}
