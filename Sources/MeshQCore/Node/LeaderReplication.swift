// LeaderReplication: the leader's view of each follower's log, in the spirit
// of etcd raft's tracker/progress.go. Each follower has a `Progress`: `match`
// (durable and matching through this index) and `next` (the next index to
// send). One message is in flight per follower at a time; the next goes when
// it acknowledges, and a message unanswered for the retransmit interval (or
// sent to a peer found dead) is deemed lost: `next` goes back to where it
// started. A follower behind the in-memory window gets a snapshot of the
// commit point instead of entries.
// Invariant: `match < next`, and while `inflight`, `sentFrom` is the `next`
// the message in flight started from. The parts here decide what to send;
// NodeCore sends it.

struct LeaderReplication {
    struct Progress {
        /// Known durable and matching through this index.
        var match: UInt64 = 0
        /// The next index to send.
        var next: UInt64
        /// A message is on its way; `next` goes back to `sentFrom` if it is lost.
        var inflight = false
        var sentFrom: UInt64 = 0
        var sentAt: Int64 = 0

        fileprivate mutating func sent(now: Int64, next newNext: UInt64) {
            inflight = true
            sentFrom = next
            sentAt = now
            next = newNext
        }

        fileprivate mutating func lost() {
            inflight = false
            next = sentFrom
        }
    }

    /// What a follower is sent next.
    enum Message {
        /// The state at the commit point (it lacks entries no longer in memory).
        case snapshot
        case entries(prevIndex: UInt64, prevEpoch: UInt64, [LogEntry])
    }

    /// One per follower while this node leads; empty otherwise.
    private(set) var progress: [Int: Progress] = [:]
    /// The number of the latest replication round (never reused by this node).
    private(set) var round: UInt64 = 0

    /// A leadership starts with every follower to be sent entries from `next`.
    mutating func start(followers: [Int], next: UInt64) {
        progress = Dictionary(uniqueKeysWithValues: followers.map { ($0, Progress(next: next)) })
    }

    mutating func stop() {
        progress.removeAll()
    }

    mutating func nextRound() -> UInt64 {
        round += 1
        return round
    }

    /// Reserves the next message for follower `id` (nil: nothing to send, or
    /// one is already in flight).
    mutating func nextMessage(to id: Int, log: ReplicatedLog, commitIndex: UInt64, now: Int64) -> Message? {
        guard var p = progress[id], !p.inflight else { return nil }
        let prev = p.next - 1
        if prev < log.baseIndex {
            p.sent(now: now, next: commitIndex + 1)
            progress[id] = p
            return .snapshot
        }
        guard p.next <= log.lastIndex || p.match < commitIndex, let prevEpoch = log.epoch(at: prev) else { return nil }
        let entries = log.entries(from: p.next, through: log.lastIndex, maxBytes: 4 << 20)
        p.sent(now: now, next: (entries.last?.index ?? prev) + 1)
        progress[id] = p
        return .entries(prevIndex: prev, prevEpoch: prevEpoch, entries)
    }

    /// The follower answered. Returns where sending resumes when its log did
    /// not match (its committed prefix is ours too: resend from just after it).
    mutating func acknowledged(by id: Int, matched: Bool, index: UInt64, lastIndex: UInt64) -> UInt64? {
        guard var p = progress[id] else { return nil }
        p.inflight = false
        var resend: UInt64?
        if matched {
            p.match = max(p.match, index)
            p.next = max(p.next, index + 1)
        } else {
            let known = min(index, lastIndex)
            p.match = max(p.match, known)
            p.next = known + 1
            resend = known + 1
        }
        progress[id] = p
        return resend
    }

    /// The follower refused us (it promised a newer epoch): nothing is in flight.
    mutating func refused(by id: Int) {
        progress[id]?.inflight = false
    }

    /// The peer is gone: a message in flight to it is lost.
    mutating func lost(_ id: Int) {
        if progress[id]?.inflight == true { progress[id]!.lost() }
    }

    /// Followers whose message went unanswered for `afterMs`, in id order,
    /// each marked lost (so it can be sent again).
    mutating func retransmitsDue(now: Int64, afterMs: Int64) -> [Int] {
        let due = progress.filter { $0.value.inflight && now - $0.value.sentAt >= afterMs }.keys.sorted()
        for id in due { progress[id]!.lost() }
        return due
    }

    /// When the earliest message in flight is due for retransmission.
    func nextRetransmit(afterMs: Int64) -> Int64? {
        progress.values.filter(\.inflight).map { $0.sentAt + afterMs }.min()
    }
}
