// LeaderReplication: the leader's view of each follower's log, in the spirit
// of etcd raft's tracker/progress.go. Each follower has a `Progress`: `match`
// (durable and matching through this index) and `next` (the next index to
// send). While a follower's log is not known to match (after a start, a
// mismatch or a loss: raft's "probe" state) one message is in flight at a
// time; once it acknowledged a match (raft's "replicate" state) up to
// `maxInflight` batches of entries stream to it, so a follower far behind
// overlaps its fsyncs with the transfer. The next goes as it acknowledges;
// messages unanswered for the retransmit interval (or sent to a peer found
// dead) are deemed lost: `next` goes back to where the oldest started. A
// follower behind the in-memory window gets a snapshot of the
// commit point instead of entries; when that snapshot is too large for one
// frame it streams as a `ChunkSender` transfer (a window of chunks in flight,
// the next sent as the follower acknowledges), which counts as the one
// message in flight: each acknowledged chunk renews it, and a silence goes
// back to the last acknowledged byte instead of starting over.
// Invariant: `match < next`, and while `inflight`, `sentFrom` is where the
// oldest message in flight not yet acknowledged started; several are in
// flight only while `streaming`, and a snapshot is only ever alone; a follower has a transfer only while
// its snapshot is in flight. A message in flight is freed by an answer
// that covers its last index (raft's inflights.FreeLE), never by counting
// answers: a duplicated or late answer (a resent batch answered twice)
// frees nothing more, so the batch after it is still retransmitted if lost.
// The parts here decide what to send; NodeCore sends it.

struct LeaderReplication {
    struct Progress {
        /// Known durable and matching through this index.
        var match: UInt64 = 0
        /// The next index to send.
        var next: UInt64
        /// The last index of each message on its way, oldest first; `next`
        /// goes back to `sentFrom` if they are lost.
        var inflightLast: [UInt64] = []
        var inflightCount: Int { inflightLast.count }
        var inflight: Bool { !inflightLast.isEmpty }
        /// Known to match: more than one batch may be in flight.
        var streaming = false
        var sentFrom: UInt64 = 0
        var sentAt: Int64 = 0
        /// The message in flight is a snapshot (through `next - 1`).
        var sentSnapshot = false

        fileprivate mutating func sent(now: Int64, next newNext: UInt64, snapshot: Bool = false) {
            if inflightLast.isEmpty { sentFrom = next }
            inflightLast.append(newNext - 1)
            sentAt = now
            next = newNext
            sentSnapshot = snapshot
        }

        /// A lost snapshot may still have been installed (a large one keeps
        /// the follower busy past the timeouts, and its answer may be lost
        /// with the link): `next` stays after it, so the next message probes
        /// with entries from there, and a follower without it answers with
        /// its commit point, where sending resumes.
        fileprivate mutating func lost() {
            inflightLast.removeAll()
            streaming = false
            if !sentSnapshot { next = sentFrom }
        }
    }

    /// What a follower is sent next.
    enum Message {
        /// The state at the commit point (it lacks entries no longer in memory).
        case snapshot
        case entries(prevIndex: UInt64, prevEpoch: UInt64, [LogEntry])
    }

    /// Batches of entries in flight to a follower known to match: the next
    /// batches are on the wire while the follower writes and syncs one (a
    /// 1 GiB catch-up on loopback: about 320 MB/s against 285 with one at a
    /// time). The seeds that once stopped a leader with 4 were a simulator
    /// bug (a paused node rebuilding after a full disk), fixed since.
    var maxInflight = 4

    /// One per follower while this node leads; empty otherwise.
    private(set) var progress: [Int: Progress] = [:]
    /// Chunked snapshot transfers in flight, per follower.
    private(set) var transfers: [Int: ChunkSender] = [:]
    private var transferIds: UInt64 = 0
    /// Followers whose finished transfer went unanswered: probe them once.
    private var probes: Set<Int> = []

    /// A leadership starts with every follower to be sent entries from `next`.
    mutating func start(followers: [Int], next: UInt64) {
        progress = Dictionary(uniqueKeysWithValues: followers.map { ($0, Progress(next: next)) })
    }

    mutating func stop() {
        progress.removeAll()
        transfers.removeAll()
        probes.removeAll()
    }

    /// Reserves the next message for follower `id` (nil: nothing to send, or
    /// one is already in flight).
    mutating func nextMessage(to id: Int, log: ReplicatedLog, commitIndex: UInt64, now: Int64) -> Message? {
        guard var p = progress[id] else { return nil }
        let prev = p.next - 1
        if p.inflight {
            // Streaming: another batch of entries that follows on, if any.
            guard p.streaming, !p.sentSnapshot, p.inflightCount < maxInflight, p.next <= log.lastIndex,
                  prev >= log.baseIndex else { return nil }
        }
        if prev < log.baseIndex {
            p.sent(now: now, next: commitIndex + 1, snapshot: true)
            progress[id] = p
            return .snapshot
        }
        guard p.next <= log.lastIndex || p.match < commitIndex, let prevEpoch = log.epoch(at: prev) else { return nil }
        let entries = log.entries(from: p.next, through: log.lastIndex, maxBytes: PeerEnvelope.maxBatchBytes)
        p.sent(now: now, next: (entries.last?.index ?? prev) + 1)
        progress[id] = p
        return .entries(prevIndex: prev, prevEpoch: prevEpoch, entries)
    }

    /// The follower answered. Returns where sending resumes when its log did
    /// not match (its committed prefix is ours too: resend from just after it).
    mutating func acknowledged(by id: Int, matched: Bool, index: UInt64, lastIndex: UInt64) -> UInt64? {
        guard var p = progress[id] else { return nil }
        if let t = transfers[id] {
            // A late answer to an earlier message: the snapshot stays in flight.
            if matched && index < t.index {
                progress[id]!.match = max(p.match, index)
                return nil
            }
            endTransfer(id)
        }
        var resend: UInt64?
        if matched {
            p.match = max(p.match, index)
            p.next = max(p.next, index + 1)
            if p.sentSnapshot {
                p.inflightLast.removeAll()
            } else {
                p.inflightLast.removeAll { $0 <= index }
            }
            p.sentFrom = max(p.sentFrom, index + 1)
            p.streaming = true
        } else {
            p.inflightLast.removeAll()
            p.streaming = false
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
        progress[id]?.inflightLast.removeAll()
        progress[id]?.streaming = false
        endTransfer(id)
    }

    /// The peer is gone: a message in flight to it is lost. A chunked
    /// snapshot stays, to resume from the last acknowledged byte when the
    /// peer is back (it holds what it acknowledged unless it restarted, and
    /// then it answers 0 and the transfer starts over).
    mutating func lost(_ id: Int) {
        if transfers[id] != nil {
            transfers[id]!.rewind()
            return
        }
        if progress[id]?.inflight == true { progress[id]!.lost() }
    }

    /// Followers whose message went unanswered for `afterMs`, in id order,
    /// each marked lost (so it can be sent again); a chunked snapshot goes
    /// back to the last acknowledged byte instead (or, when every chunk was
    /// acknowledged and the follower is still installing it, is probed).
    mutating func retransmitsDue(now: Int64, afterMs: Int64) -> [Int] {
        let due = progress.filter { $0.value.inflight && now - $0.value.sentAt >= afterMs }.keys.sorted()
        for id in due {
            if transfers[id] != nil {
                progress[id]!.sentAt = now
                transfers[id]!.rewind()
                if transfers[id]!.done { probes.insert(id) }
            } else {
                progress[id]!.lost()
            }
        }
        return due
    }

    // MARK: chunked snapshots

    /// The snapshot reserved by `nextMessage` is too large for one frame:
    /// it goes as a transfer. Returns the first chunks to send.
    mutating func startTransfer(to id: Int, epoch: UInt64, index: UInt64, source: ChunkSource, chunkBytes: Int,
                                window: Int) -> [Chunk] {
        guard progress[id]?.inflight == true else { return [] }
        transferIds += 1
        var t = ChunkSender(kind: .snapshot, epoch: epoch, transfer: transferIds, index: index, source: source,
                            chunkBytes: chunkBytes, window: window)
        let chunks = t.next()
        transfers[id] = t
        return chunks
    }

    /// What to send follower `id` for its transfer now: the chunks the window
    /// allows, or a probe after a silence once all were acknowledged.
    mutating func pendingChunks(to id: Int) -> [Chunk] {
        guard var t = transfers[id] else { return [] }
        let chunks = probes.remove(id) != nil && t.done ? [t.lastChunk()] : t.next()
        transfers[id] = t
        return chunks
    }

    /// The follower holds `received` bytes of transfer `transfer`: the
    /// message in flight is alive; returns the chunks that now fit.
    mutating func chunkAcknowledged(by id: Int, transfer: UInt64, received: UInt64, now: Int64) -> [Chunk] {
        guard var t = transfers[id], t.transfer == transfer else { return [] }
        t.acknowledged(received: received)
        transfers[id] = t
        progress[id]?.sentAt = now
        return pendingChunks(to: id)
    }

    private mutating func endTransfer(_ id: Int) {
        transfers[id] = nil
        probes.remove(id)
    }

    /// When the earliest message in flight is due for retransmission.
    func nextRetransmit(afterMs: Int64) -> Int64? {
        progress.values.filter(\.inflight).map { $0.sentAt + afterMs }.min()
    }
}
