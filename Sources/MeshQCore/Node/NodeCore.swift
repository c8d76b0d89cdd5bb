// NodeCore: one node's protocol logic as a state machine, free of I/O. The
// driver (meshqd's reactor, or a simulator) feeds it inputs — client commands,
// peer messages, link changes, "end of this loop iteration" (flush), "what you
// asked to persist is durable" (persisted), the time (tick) — and applies the
// effects it returns, in order: replies, log records, peer messages, log lines.
//
// Replication. The leader gathers the commands of a loop iteration into one
// batch; it takes the Ricart-Agrawala section, appends the batch to its log
// (one write, one fsync) and runs a two-phase commit round: each live follower
// receives the entries it lacks after (prevIndex, prevEpoch), persists them
// and acknowledges; with a majority durable (the leader included) the round
// commits, the queue changes and clients get OK. Only one round runs at a
// time, so the next batch grows while one is in flight (group commit).
//
// Safety rests on three rules. Log matching: a follower appends only after
// its entry at prevIndex matches the leader's, cutting a conflicting
// uncommitted tail. Recovery: a new leader adopts the log of the voter with
// the highest (last epoch, last index) among the majority that elected it,
// which holds every committed entry, and commits it with a first entry of its
// own epoch before it serves anyone. Apply on commit: the queue changes only
// when an entry commits, so what clients were told is what recovery rebuilds.
import DequeModule
import HeapModule

public final class NodeCore {
    public enum Role: String, Sendable { case leader, follower, candidate }

    public enum Effect: Sendable {
        case reply(ClientRef, Reply)
        /// Append these records to the durable log and sync, then call `persisted`.
        case persist([LogRecord])
        /// Replace the durable state by this snapshot (catch-up), then call `persisted`.
        case installSnapshot(QueueSnapshot)
        case log(LogEvent)
        /// Send to a peer (over the cluster bus).
        case sendPeer(PeerEnvelope)
        /// Append to the mailbox's durable log and sync, then call `mailboxPersisted`.
        case persistMailbox([MailboxRecord])
        /// Make the vote (and the epoch promised by voting for another node)
        /// durable before any later effect is applied.
        case persistVote(UInt64, promised: UInt64)
        /// The link to this peer went silent: close the connection and dial
        /// again (its buffered output is stale, and it may be wedged).
        case resetPeerLink(Int)
    }

    private struct Proposal {
        var op: LogEntry.Operation
        var lamport: UInt64
        var client: ClientRef?
    }

    /// A command waiting for a leader to be reachable.
    private struct Held {
        var command: ClientCommand
        var ref: ClientRef
        var owner: String
        var wallMs: Int64
        var deadline: Int64
    }

    private struct ForwardDeadline: Comparable {
        var at: Int64
        var id: UInt64
        static func < (a: Self, b: Self) -> Bool { (a.at, a.id) < (b.at, b.id) }
    }

    /// The leader's view of one follower's log.
    private struct Follower {
        /// Known durable and matching through this index.
        var match: UInt64 = 0
        /// The next index to send.
        var next: UInt64
        /// A message is on its way; `next` goes back to `sentFrom` if it is lost.
        var inflight = false
        var sentFrom: UInt64 = 0
        var sentAt: Int64 = 0
    }

    public let nodeId: Int
    public let memberIds: [Int]
    public private(set) var settings: ClusterSettings
    /// Committed entries kept in memory to catch followers up; beyond, a snapshot.
    public var logWindow = 100_000

    public private(set) var role: Role = .follower
    public private(set) var leaderId: Int?
    public private(set) var epoch: UInt64
    public private(set) var clock: LamportClock
    public private(set) var queue = TaskQueue()
    public private(set) var log: ReplicatedLog
    public var commitIndex: UInt64 { log.commitIndex }
    public var lastIndex: UInt64 { log.lastIndex }
    /// Leaderships won since start, and entries committed (for metrics).
    public private(set) var elections = 0
    public private(set) var entriesCommitted = 0
    /// Whether this leader has recovered and committed its first entry.
    public private(set) var serving = false
    /// Replicated: the highest mailbox sequence applied from each node.
    public private(set) var parkedApplied: [Int: UInt64] = [:]
    /// ENQUEUEs parked here while no leader was reachable.
    public private(set) var mailbox: Mailbox
    private var parkReplies: [(ref: ClientRef, seq: UInt64)] = []
    private var mailboxRetryAt: Int64?
    /// Our own parked entries committed while we lead (settled after the commit).
    private var localParkedCommitted: UInt64?

    private var proposals: [Proposal] = []
    /// Clients waiting for their entry (in the log, uncommitted) to commit.
    private var awaiting = Deque<(index: UInt64, ref: ClientRef)>()
    private var nextTaskId: UInt64
    private var pendingPayloadBytes = 0
    private var waiters = WaiterQueue()
    private var held = Deque<Held>()
    private var dispatchingHeld = false
    private var effects: [Effect] = []
    private var unsyncedPersists = 0
    private var lastCommitMark: UInt64 = 0
    /// Multi-node clusters elect; a cluster of one simply leads.
    public let election: BullyElection?
    private let mutex: RicartAgrawalaMutex
    private let twoPC: TwoPhaseCommit
    /// While requesting the section: when to ask again (a reply lost with a
    /// link that was reconnecting), and when to give up the leadership.
    private var mutexRetryAt: Int64?
    private var mutexGiveUpAt: Int64 = 0
    private var roundSeq: UInt64 = 0
    private var followers: [Int: Follower] = [:]
    /// A new leader serves from its state only once an older leader's lease
    /// (renewed by a voter before it voted) has run out.
    private var servingNotBefore: Int64 = 0
    /// The new leader's first entry: serving starts when it commits.
    private var readyIndex: UInt64 = 0
    /// Recovering from the best voter: ask again at `nextAsk` (a lost request
    /// or reply), give the leadership up at `deadline`. `request` names the
    /// latest ask (a reply must echo it and this epoch), `position` is where
    /// the voter said its log ends (a reply ending before it is refused).
    private var recovering: (from: Int, deadline: Int64, nextAsk: Int64, request: UInt64, position: LogPosition)?
    private var recoveryRequests: UInt64 = 0
    /// Follower side: the epoch whose leader we replicate, and how far our
    /// log is known to match its log (only then may its commit apply).
    private var matchedEpoch: UInt64 = 0
    private var matchedThrough: UInt64 = 0
    /// The newest replication round seen from the leader of `matchedEpoch`
    /// (an ABORT of an older round is stale).
    private var matchedRound: UInt64 = 0
    private var pendingAcks: [(to: Int, round: UInt64, through: UInt64)] = []
    /// Commands relayed to the leader, by relay id, and when to stop waiting
    /// for the answer (a message or its reply lost with a link).
    private var forwards: [UInt64: (ref: ClientRef, leader: Int)] = [:]
    private var forwardDeadlines = Heap<ForwardDeadline>()
    /// Leader side: relays already taken, so a duplicated message is not
    /// applied twice (relay ids are unique per follower incarnation).
    private var seenRelays: Set<RelayKey> = []
    private var seenRelayOrder = Deque<RelayKey>()
    private struct RelayKey: Hashable { var from: Int; var id: UInt64 }
    private var nextForwardId: UInt64
    /// Followers' estimate of the leader's clock (Cristian).
    public private(set) var cristian = CristianClock()
    private var nextTimeSync: Int64 = 0
    private var timeSyncSeq: UInt64 = 0
    private var timeRequests: [UInt64: Int64] = [:]
    private var syncedLeader: Int?
    private var skippedRecords = 0
    /// Which peers are alive, from the frames that arrive (never the sockets).
    private var detector: FailureDetector
    /// Routing around a cut link (direct when up, else through a neighbour).
    private var router: Router
    private var nextRoutedId: UInt64
    private var nextLinkReport: Int64 = 0
    /// The latest `now` an input brought (routing decisions need it).
    private var lastNow: Int64 = 0

    /// Rebuilds the state from a snapshot and the records logged after it.
    public init(nodeId: Int, memberIds: [Int], settings: ClusterSettings,
                snapshot: QueueSnapshot?, records: [LogRecord], votedEpoch: UInt64 = 0,
                promisedEpoch: UInt64 = 0, relayIdBase: UInt64 = 1, mailbox: Mailbox = Mailbox()) {
        self.nodeId = nodeId
        self.mailbox = mailbox
        // Relay ids must not repeat across restarts: the leader may still
        // answer a relay of our previous incarnation (the simulator found a
        // client told OK for another client's entry), so the driver picks a
        // random base.
        self.nextForwardId = relayIdBase
        self.nextRoutedId = relayIdBase
        self.router = Router(nodeId: nodeId, staleMs: Int64(settings.leaderTimeoutMs) * 2)
        self.detector = FailureDetector(nodeId: nodeId, peers: memberIds, timeoutMs: settings.leaderTimeoutMs,
                                        directTimeoutMs: Self.directLinkTimeoutMs(settings))
        self.memberIds = memberIds.sorted()
        self.settings = settings
        var clock = LamportClock()
        var log = ReplicatedLog(baseIndex: snapshot?.lastIndex ?? 0, baseEpoch: snapshot?.lastEpoch ?? 0)
        if let s = snapshot {
            for t in s.tasks { queue.apply(enqueue: t) }
            queue.observeTaskId(s.highestTaskId)
            clock.observe(s.lamport)
            parkedApplied = s.parkedApplied
        }
        var commitMark = log.baseIndex
        for r in records {
            switch r {
            case .entry(let e):
                guard e.index > log.baseIndex else { continue }
                if e.index <= log.lastIndex { log.truncate(after: e.index - 1) }
                guard e.index == log.lastIndex + 1 else { skippedRecords += 1; continue }
                log.append(e)
                clock.observe(e.lamport)
            case .commit(let i):
                commitMark = max(commitMark, i)
            case .truncate(let after):
                if after >= log.baseIndex && after < log.lastIndex { log.truncate(after: max(after, log.commitIndex)) }
            }
        }
        self.clock = clock
        // Alone, everything this node made durable was committed.
        let single = memberIds.count <= 1
        for e in log.commit(through: single ? log.lastIndex : commitMark) {
            _ = Self.apply(e.op, to: &queue, parked: &parkedApplied)
        }
        // A wiped or damaged mailbox must not reuse sequences already applied.
        self.mailbox.continueAbove(parkedApplied[nodeId] ?? 0)
        self.lastCommitMark = log.commitIndex
        self.log = log
        self.epoch = log.lastEpoch
        self.nextTaskId = max(queue.highestTaskId, Self.highestTaskId(in: log)) + 1
        mutex = RicartAgrawalaMutex(nodeId: nodeId)
        twoPC = TwoPhaseCommit(nodeId: nodeId, clusterSize: max(1, memberIds.count),
                               promisedEpoch: max(log.lastEpoch, promisedEpoch))
        if !single {
            let e = BullyElection(nodeId: nodeId, members: memberIds, epoch: log.lastEpoch, votedEpoch: votedEpoch,
                                  heartbeatIntervalMs: settings.heartbeatIntervalMs,
                                  leaderTimeoutMs: settings.leaderTimeoutMs,
                                  electionTimeoutMs: settings.electionTimeoutMs)
            e.position = log.position
            election = e
        } else {
            election = nil
        }
        self.log.trim(keep: logWindow)
    }

    /// Rebuilds from plain entries (a log of one node, or a test).
    public convenience init(nodeId: Int, memberIds: [Int], settings: ClusterSettings,
                            snapshot: QueueSnapshot?, entries: [LogEntry], votedEpoch: UInt64 = 0) {
        self.init(nodeId: nodeId, memberIds: memberIds, settings: settings, snapshot: snapshot,
                  records: entries.map { .entry($0) }, votedEpoch: votedEpoch, relayIdBase: 1)
    }

    /// Applies a committed operation; false when it was a duplicate
    /// delivery of a parked task (skipped, the same on every node).
    private static func apply(_ op: LogEntry.Operation, to queue: inout TaskQueue, parked: inout [Int: UInt64]) -> Bool {
        switch op {
        case .noop: break
        case .enqueue(let t): queue.apply(enqueue: t)
        case .ack(let id): queue.apply(ack: id)
        case .enqueueParked(let t, let from, let seq):
            queue.observeTaskId(t.id)
            guard seq > parked[from, default: 0] else { return false }
            parked[from] = seq
            queue.apply(enqueue: t)
        }
        return true
    }

    private static func highestTaskId(in log: ReplicatedLog) -> UInt64 {
        var top: UInt64 = 0
        for i in stride(from: log.lastIndex, to: log.commitIndex, by: -1) {
            switch log.entry(at: i)?.op {
            case .enqueue(let t)?, .enqueueParked(let t, _, _)?: top = max(top, t.id)
            default: break
            }
        }
        return top
    }

    /// Effects produced since the last call, in the order they must be applied.
    public func takeEffects() -> [Effect] {
        defer { effects.removeAll(keepingCapacity: true) }
        return effects
    }

    public var hasEffects: Bool { !effects.isEmpty }

    /// Whether a batch is waiting that `flush` can start now (while a round
    /// runs, the batch waits for it and the round's end starts the next).
    public var hasProposals: Bool {
        !proposals.isEmpty && role == .leader && recovering == nil && !twoPC.inRound && mutex.state == .idle
    }

    private var peers: [Int] { memberIds.filter { $0 != nodeId } }
    private var peersUp: Set<Int> { election?.peersUp ?? [] }

    /// The earliest time `tick` has work to do.
    public func nextWakeup() -> Int64? {
        let sync: Int64? = role == .follower && leaderId != nil ? (syncedLeader == leaderId ? nextTimeSync : 0) : nil
        var times = [queue.nextLeaseDeadline(), waiters.nextDeadline(), election?.nextWakeup(), sync, mailboxRetryAt,
                     election == nil ? nil : nextLinkReport, detector.nextExpiry(),
                     twoPC.deadline, mutexRetryAt, recovering?.deadline, recovering?.nextAsk, held.first?.deadline,
                     role == .leader && !serving && servingNotBefore > lastNow ? servingNotBefore : nil,
                     forwardDeadlines.min?.at]
        if role == .leader {
            times += followers.values.filter(\.inflight).map { $0.sentAt + retransmitMs }
        }
        return times.compactMap { $0 }.min()
    }

    /// A replication message unanswered this long is sent again (lost with a link).
    private var retransmitMs: Int64 { Int64(max(settings.heartbeatIntervalMs * 4, 200)) }

    // MARK: inputs

    /// Called once the node's storage is open and recovered.
    public func start(now: Int64) {
        lastNow = now
        emit(.info, "tasks_recovered", [("node", "\(nodeId)"), ("count", "\(queue.count)"),
                                       ("commit", "\(commitIndex)"), ("uncommitted", "\(log.lastIndex - commitIndex)"),
                                       ("epoch", "\(epoch)"), ("lamport", "\(clock.time)")])
        if skippedRecords > 0 {
            emit(.error, "log_records_skipped", [("node", "\(nodeId)"), ("count", "\(skippedRecords)"),
                                                ("reason", "entries out of sequence")])
        }
        if let election {
            applyElection(election.start(now: now), now: now)
        } else {
            // A cluster of one: this node is the majority, so it leads at once
            // in a new epoch, made durable by the epoch's first (noop) entry.
            role = .leader
            leaderId = nodeId
            becomeLeader(epoch: epoch + 1, votes: [:], now: now, tookMs: 0)
        }
    }

    #if MESHQ_TESTING
    /// Test hooks (see PlantedBug): compiled only with -D MESHQ_TESTING.
    var plantedBugs: Set<PlantedBug> = [] {
        didSet {
            election?.plantedBugs = plantedBugs
            mutex.plantedBugs = plantedBugs
            detector.trustTransport = plantedBugs.contains(.trustTransport)
        }
    }
    @inline(__always) private func planted(_ bug: PlantedBug) -> Bool { plantedBugs.contains(bug) }
    #else
    @inline(__always) private func planted(_ bug: PlantedBug) -> Bool { false }
    #endif

    /// A direct link with no frame for this long carries nothing more: half
    /// the leader timeout (at least 2.5 heartbeat intervals), so a follower
    /// cut off from the leader hears it over a relay before its own leader
    /// timeout runs out.
    static func directLinkTimeoutMs(_ s: ClusterSettings) -> Int {
        max(s.heartbeatIntervalMs * 5 / 2, s.leaderTimeoutMs / 2)
    }

    /// New settings (SIGHUP): the timings apply from the next timer.
    public func reload(_ new: ClusterSettings) {
        settings = new
        election?.reload(heartbeatIntervalMs: new.heartbeatIntervalMs, leaderTimeoutMs: new.leaderTimeoutMs,
                         electionTimeoutMs: new.electionTimeoutMs)
        detector.reload(timeoutMs: new.leaderTimeoutMs, directTimeoutMs: Self.directLinkTimeoutMs(new))
        router.staleMs = Int64(new.leaderTimeoutMs) * 2
    }

    /// An envelope from a peer (already checked to come from `env.from`),
    /// over the direct link from it: proof that it is alive.
    public func peerMessage(_ env: PeerEnvelope, now: Int64, wallMs: Int64) {
        lastNow = now
        guard election != nil, memberIds.contains(env.from), env.from != nodeId else { return }
        detector.heard(from: env.from, directly: true, now: now)
        applyDetector(now: now)
        receive(env, now: now, wallMs: wallMs)
    }

    private func receive(_ env: PeerEnvelope, now: Int64, wallMs: Int64) {
        if planted(.skipLamportMerge) { clock.tick() } else { clock.merge(env.lamport) }
        guard let election, memberIds.contains(env.from), env.from != nodeId else { return }
        // Fencing: a message stamped with a newer epoch than ours means a
        // newer leader was accepted; a leader of an older epoch steps down.
        if role == .leader && env.epoch > epoch {
            applyElection(election.observe(epoch: env.epoch, now: now), now: now)
        }
        switch env.body {
        case .hello, .challenge:
            break
        case .election(let m):
            // Having promised a newer epoch (by voting, or by accepting its
            // leader's entries), we no longer acknowledge an older leader:
            // its heartbeats learn of the newer epoch instead, so its lease
            // cannot be renewed by a node that may help a newer leader commit.
            switch m {
            case .heartbeat(let e, let sentAt) where e < twoPC.promisedEpoch:
                sendPeer(to: env.from, .election(.heartbeatAck(epoch: twoPC.promisedEpoch, sentAt: sentAt)))
                return
            case .coordinator(let e) where e < twoPC.promisedEpoch:
                return
            default:
                break
            }
            applyElection(election.receive(from: env.from, m, now: now), now: now)
        case .timeRequest(let seq):
            if role == .leader { sendPeer(to: env.from, .timeReply(seq: seq, serverMs: wallMs)) }
        case .timeReply(let seq, let serverMs):
            guard env.from == leaderId, let t0 = timeRequests.removeValue(forKey: seq),
                  let s = cristian.add(sentAtMs: Double(t0), serverTimeMs: Double(serverMs), receivedAtMs: Double(wallMs))
            else { return }
            emit(.info, "time_sync", [("node", "\(nodeId)"), ("leader", "\(env.from)"), ("offset_ms", formatMs(cristian.offsetMs)),
                                     ("rtt_ms", formatMs(s.rttMs)), ("sample_offset_ms", formatMs(s.offsetMs))])
        case .mutex(let m):
            applyMutex(mutex.receive(from: env.from, m), now: now)
        case .replicate(let r):
            receiveReplicate(r, from: env.from, epoch: env.epoch, now: now)
        case .replicateAck(let round, let matched, let index):
            receiveAck(from: env.from, epoch: env.epoch, round: round, matched: matched, index: index, now: now)
        case .commit(_, let through):
            guard env.epoch == matchedEpoch, role != .leader else { return }
            commit(through: min(through, matchedThrough), now: now)
        case .abort(let round, let keep):
            receiveAbort(epoch: env.epoch, round: round, keep: keep, now: now)
        case .snapshot(let snap):
            receiveSnapshot(snap, from: env.from, epoch: env.epoch, now: now)
        case .recoverRequest(let id, let after):
            answerRecovery(to: env.from, epoch: env.epoch, id: id, after: after)
        case .recoverReply(let e, let id, let snap, let entries):
            receiveRecovery(from: env.from, epoch: e, id: id, snapshot: snap, entries: entries, now: now)
        case .forward(let id, let owner, let command):
            let key = RelayKey(from: env.from, id: id)
            guard seenRelays.insert(key).inserted else { return }
            seenRelayOrder.append(key)
            if seenRelayOrder.count > 100_000 { seenRelays.remove(seenRelayOrder.removeFirst()) }
            let ref = ClientRef(session: Self.remoteSession | UInt64(env.from), seq: id)
            checkLease(now: now)
            // Relayed to an earlier leadership (a late or repeated message,
            // perhaps across our restart, which forgets the relay ids seen):
            // its relaying node has already told its client the outcome is
            // unknown, so it must not apply now.
            if role == .leader && env.epoch < epoch {
                reply(ref, .error(.noleader, "relayed to an earlier leadership (epoch \(env.epoch)); not applied"))
                return
            }
            submit(command, ref: ref, owner: "\(env.from)/\(owner)", now: now, wallMs: wallMs)
        case .forwardReply(let id, let line):
            guard let f = forwards.removeValue(forKey: id), f.leader == env.from else { return }
            reply(f.ref, .relayed(line))
        case .deliverParked(let entries):
            receiveParked(entries, from: env.from, now: now)
        case .parkedDelivered(let through):
            parkedDelivered(through: through, now: now)
        case .links(let direct, let heard):
            router.report(from: env.from, links: direct, now: now)
            detector.report(from: env.from, heard: heard)
            applyDetector(now: now)
            dispatchHeld(now: now)
        case .relay(let id, let origin, let dest, let ttl, let inner):
            guard router.firstSight(origin: origin, id: id) else { return }
            if dest == nodeId {
                guard inner.envelope.from == origin, inner.envelope.to == nodeId,
                      memberIds.contains(origin), origin != nodeId else { return }
                // Heard over a relay: alive, though not over its own link.
                detector.heard(from: origin, directly: false, now: now)
                applyDetector(now: now)
                receive(inner.envelope, now: now, wallMs: wallMs)
                return
            }
            guard ttl > 1, memberIds.contains(dest),
                  let hop = router.nextHop(to: dest, avoid: [env.from, origin], now: now) else {
                emit(.debug, "route_drop", [("node", "\(nodeId)"), ("origin", "\(origin)"), ("dest", "\(dest)"), ("ttl", "\(ttl)")])
                return
            }
            emit(.debug, "route_forward", [("node", "\(nodeId)"), ("origin", "\(origin)"), ("dest", "\(dest)"),
                                           ("via", "\(hop)"), ("ttl", "\(ttl - 1)")])
            effects.append(.sendPeer(PeerEnvelope(from: nodeId, to: hop, lamport: clock.tick(), epoch: epoch,
                                                  body: .relay(id: id, origin: origin, dest: dest, ttl: ttl - 1, inner: inner))))
        }
    }

    private func sendPeer(to: Int, _ body: PeerEnvelope.Body, epoch e: UInt64? = nil) {
        let env = PeerEnvelope(from: nodeId, to: to, lamport: clock.tick(), epoch: e ?? epoch, body: body)
        // The direct link, or (when it is down) a neighbour that reaches `to`.
        guard !router.direct.contains(to), let hop = router.nextHop(to: to, now: lastNow) else {
            effects.append(.sendPeer(env))
            return
        }
        nextRoutedId &+= 1
        effects.append(.sendPeer(PeerEnvelope(from: nodeId, to: hop, lamport: env.lamport, epoch: env.epoch,
                                              body: .relay(id: nextRoutedId, origin: nodeId, dest: to,
                                                           ttl: settings.routeTTL, inner: .init(env)))))
    }

    /// Peers heard from within leader_timeout_ms (directly or over a relay):
    /// the Ricart-Agrawala wait set and the 2PC participants. A silent peer
    /// is waited on for no longer than that.
    private var livePeers: Set<Int> { detector.alive }

    /// Every heartbeat interval, on every link (never relayed: it probes the
    /// link itself): which peers this node hears directly, and which links it
    /// can send on. It is the traffic that proves this node alive to each
    /// peer, whatever its role, and what routing around a cut link uses.
    private func reportLinks(now: Int64, to only: Int? = nil) {
        guard election != nil else { return }
        if only == nil { nextLinkReport = now + Int64(settings.heartbeatIntervalMs) }
        let heard = detector.heardDirectly(now: now)
        for p in only.map({ [$0] }) ?? peers {
            effects.append(.sendPeer(PeerEnvelope(from: nodeId, to: p, lamport: clock.tick(), epoch: epoch,
                                                  body: .links(direct: router.direct, heard: heard))))
        }
    }

    /// Followers sample the leader's clock every time_sync_interval_ms, and at
    /// once when they start following a new leader.
    private func timeSync(now: Int64, wallMs: Int64) {
        guard role == .follower, let leader = leaderId else { return }
        if syncedLeader != leader {
            syncedLeader = leader
            cristian.reset()
            timeRequests.removeAll()
            nextTimeSync = now
        }
        guard now >= nextTimeSync else { return }
        nextTimeSync = now + Int64(settings.timeSyncIntervalMs)
        timeSyncSeq += 1
        timeRequests[timeSyncSeq] = wallMs
        if timeRequests.count > 16, let oldest = timeRequests.keys.min() { timeRequests.removeValue(forKey: oldest) }
        sendPeer(to: leader, .timeRequest(seq: timeSyncSeq))
    }

    /// The transport connected to `id`. That proves nothing about the peer
    /// (a frozen process's kernel still accepts), but a report sent now lets
    /// it hear us without waiting for the next interval.
    public func peerUp(_ id: Int, now: Int64 = 0) {
        lastNow = max(lastNow, now)
        guard peers.contains(id) else { return }
        reportLinks(now: now, to: id)
    }

    /// The transport lost the connection to `id` (closed or reset by the
    /// peer's kernel: a loud failure), so the direct link is down now.
    public func peerDown(_ id: Int, now: Int64 = 0) {
        lastNow = max(lastNow, now)
        detector.closed(id, now: now)
        applyDetector(now: now)
    }

    /// Applies the failure detector's verdicts as they change.
    private func applyDetector(now: Int64) {
        for change in detector.evaluate(now: now) {
            switch change {
            case .directUp(let id):
                router.linkUp(id)
                reportLinks(now: now)
            case .directDown(let id):
                router.linkDown(id)
                reportLinks(now: now)
            case .resetLink(let id):
                effects.append(.resetPeerLink(id))
            case .alive(let id):
                emit(.info, "peer_alive", [("node", "\(nodeId)"), ("peer", "\(id)")])
                // Tell it at once that we hear it (its direct link needs that).
                reportLinks(now: now, to: id)
                election?.peerUp(id)
                if role == .leader { sendReplication(to: id, now: now) }
                dispatchHeld(now: now)
            case .dead(let id):
                emit(.warn, "peer_silent", [("node", "\(nodeId)"), ("peer", "\(id)"),
                                            ("timeout_ms", "\(settings.leaderTimeoutMs)")])
                peerLost(id, now: now)
            }
        }
    }

    /// A peer is down for everything: stop waiting on it.
    private func peerLost(_ id: Int, now: Int64) {
        election?.peerDown(id)
        applyMutex(mutex.peerDown(id), now: now)
        applyTwoPC(twoPC.peerDown(id), now: now)
        if var f = followers[id], f.inflight {
            f.inflight = false
            f.next = f.sentFrom
            followers[id] = f
        }
        failForwards { $0 == id }
        if let r = recovering, r.from == id { resign(now: now, reason: "recovery_source_lost") }
    }

    /// A leader answers nothing from its state unless a majority heard it
    /// within leader_timeout_ms (else it steps down here): run before any
    /// command is served, so a process waking from a pause cannot hand out
    /// a stale TASK first.
    private func checkLease(now: Int64) {
        guard role == .leader, let election else { return }
        let lost = election.checkQuorum(now: now)
        if !lost.isEmpty { applyElection(lost, now: now) }
    }

    private func applyElection(_ outputs: [BullyElection.Output], now: Int64) {
        guard let election else { return }
        var won: (epoch: UInt64, votes: [Int: LogPosition], leaseWaitMs: Int64)?
        // Having voted for another node in epoch e, no older leader may add to
        // our log: the vote carries our log position, and that node's recovery
        // relies on it. The promise is made (and persisted with the vote)
        // before the vote leaves. Our own candidacy fences nothing: we know
        // our own log.
        for case .send(_, .vote(let e, _, _, _)) in outputs { twoPC.promise(epoch: e) }
        for o in outputs {
            switch o {
            case .send(let to, let m):
                sendPeer(to: to, .election(m))
            case .persistVote(let e):
                effects.append(.persistVote(e, promised: twoPC.promisedEpoch))
            case .becameLeader(let e, let votes, let wait):
                won = (e, votes, wait)
            case .following(_, let e):
                twoPC.promise(epoch: e)
            case .leaderLost:
                break
            case .log(var event):
                if event.field("lamport") == nil { event.fields.append(("lamport", "\(clock.time)")) }
                effects.append(.log(event))
            }
        }
        let wasLeader = role == .leader
        let oldLeader = leaderId
        role = Role(rawValue: election.role.rawValue) ?? .follower
        leaderId = election.leaderId
        epoch = max(epoch, election.epoch)
        if wasLeader && (role != .leader || won != nil) { stoppedLeading(now: now) }
        if oldLeader != leaderId { failForwards { $0 == oldLeader } }
        if let won {
            elections += 1
            servingNotBefore = now + (planted(.leaseNeverExpires) ? 0 : won.leaseWaitMs)
            becomeLeader(epoch: won.epoch, votes: won.votes, now: now, tookMs: nil)
        }
        dispatchHeld(now: now)
    }

    /// A leader that cannot commit steps down and calls a new election, so
    /// whoever leads next starts from a fresh epoch and a fresh majority.
    private func resign(now: Int64, reason: String) {
        guard let election else { return }
        applyElection(election.resign(now: now, reason: reason), now: now)
    }

    // MARK: leading

    private func becomeLeader(epoch newEpoch: UInt64, votes: [Int: LogPosition], now: Int64, tookMs: Int64?) {
        epoch = newEpoch
        serving = false
        queue.releaseAllLeases()
        twoPC.promise(epoch: newEpoch)
        if let tookMs {
            elections += 1
            emit(.info, "leader_elected", [("node", "\(nodeId)"), ("epoch", "\(epoch)"),
                                          ("lamport", "\(clock.time)"), ("took_ms", "\(tookMs)")])
        }
        // Recovery: the voter with the best log holds every committed entry.
        var best = votes.filter { $0.key != nodeId }.max { ($0.value, -$0.key) < ($1.value, -$1.key) }
        if planted(.recoveryByIndexOnly) {
            best = votes.filter { $0.key != nodeId }.max { ($0.value.index, -$0.key) < ($1.value.index, -$1.key) }
            if let b = best, b.value.index <= log.lastIndex { best = nil }
        }
        if let best, best.value > log.position || planted(.recoveryByIndexOnly),
           !planted(.skipRecovery) {
            recoveryRequests += 1
            recovering = (best.key, now + Int64(settings.commitTimeoutMs), now + retransmitMs, recoveryRequests, best.value)
            emit(.info, "leader_recovery", [("node", "\(nodeId)"), ("epoch", "\(epoch)"), ("from", "\(best.key)"),
                                           ("their_last", "\(best.value.index)"), ("our_last", "\(log.lastIndex)")])
            sendPeer(to: best.key, .recoverRequest(id: recoveryRequests, after: commitIndex))
        } else {
            recovered(now: now)
        }
    }

    private func recovered(now: Int64) {
        recovering = nil
        nextTaskId = max(nextTaskId, queue.highestTaskId + 1, Self.highestTaskId(in: log) + 1)
        followers = Dictionary(uniqueKeysWithValues: peers.map { ($0, Follower(next: log.lastIndex + 1)) })
        // The first entry of the epoch commits everything adopted before it.
        let l = clock.tick()
        proposals.insert(Proposal(op: .noop, lamport: l, client: nil), at: 0)
        readyIndex = log.lastIndex + 1
        startRound(now: now)
    }

    /// A new leader of `epoch` asks for our log after `after`; the answer
    /// echoes the epoch and request id.
    private func answerRecovery(to: Int, epoch e: UInt64, id: UInt64, after: UInt64) {
        let from = max(after, commitIndex) + 1
        if after >= log.baseIndex {
            let all = log.entries(from: after + 1, through: log.lastIndex, maxBytes: 32 << 20)
            if all.last?.index ?? after == log.lastIndex {
                sendPeer(to: to, .recoverReply(epoch: e, id: id, snapshot: nil, entries: all))
                return
            }
        }
        sendPeer(to: to, .recoverReply(epoch: e, id: id, snapshot: committedSnapshot(),
                                       entries: log.entries(from: from, through: log.lastIndex)))
    }

    private func receiveRecovery(from: Int, epoch e: UInt64, id: UInt64, snapshot: QueueSnapshot?,
                                 entries: [LogEntry], now: Int64) {
        // Only the answer to this leadership's latest request counts: a late
        // answer to an earlier one may describe a log that has moved on.
        guard role == .leader, let r = recovering, r.from == from, e == epoch, id == r.request else { return }
        // The voter's log reached `r.position` when it voted for us, and it
        // has promised this epoch since, so its answer must reach that far.
        let replyLast = entries.last.map { LogPosition(epoch: $0.epoch, index: $0.index) }
            ?? snapshot.map { LogPosition(epoch: $0.lastEpoch, index: $0.lastIndex) }
        if !planted(.recoveryByIndexOnly) {
            guard let replyLast, replyLast >= r.position else {
                emit(.warn, "recovery_reply_refused", [("node", "\(nodeId)"), ("epoch", "\(epoch)"), ("from", "\(from)"),
                                                      ("voted_last", "\(r.position.index)"),
                                                      ("reply_last", "\(replyLast?.index ?? 0)")])
                return
            }
        }
        if let snapshot, snapshot.lastIndex > commitIndex { install(snapshot) }
        var records: [LogRecord] = []
        guard merge(entries, into: &records) else {
            resign(now: now, reason: "recovery_conflict")
            return
        }
        // Adopt exactly the best voter's log: anything of ours past it never committed.
        let theirLast = entries.last?.index ?? max(snapshot?.lastIndex ?? 0, commitIndex)
        if log.lastIndex > theirLast, theirLast >= commitIndex {
            log.truncate(after: theirLast)
            records.append(.truncate(after: theirLast))
        }
        if !records.isEmpty { persist(records) }
        election?.position = log.position
        emit(.info, "leader_recovered", [("node", "\(nodeId)"), ("epoch", "\(epoch)"), ("last", "\(log.lastIndex)"),
                                        ("commit", "\(commitIndex)")])
        recovered(now: now)
    }

    /// Merges entries that follow on from our log (a leader's, or the best
    /// voter's): equal entries are kept, a conflicting uncommitted tail is cut.
    /// False when the entries would cut a committed one (a broken invariant).
    private func merge(_ entries: [LogEntry], into records: inout [LogRecord]) -> Bool {
        for e in entries where e.index > log.baseIndex {
            if e.index <= log.lastIndex {
                if log.epoch(at: e.index) == e.epoch { continue }
                guard e.index > commitIndex else {
                    emit(.error, "log_conflict", [("node", "\(nodeId)"), ("index", "\(e.index)"), ("commit", "\(commitIndex)")])
                    return false
                }
                log.truncate(after: e.index - 1)
            }
            guard e.index == log.lastIndex + 1 else { return false }
            log.append(e)
            records.append(.entry(e))
            switch e.op {
            case .enqueue(let t), .enqueueParked(let t, _, _): nextTaskId = max(nextTaskId, t.id + 1)
            default: break
            }
        }
        return true
    }

    /// Replaces the committed state by a snapshot. Entries after the
    /// snapshot's last one stay when that entry is ours too (log matching
    /// makes them the leader's as well); they are written again after the
    /// snapshot, which replaces the log on disk.
    private func install(_ snap: QueueSnapshot) {
        queue = TaskQueue()
        for t in snap.tasks { queue.apply(enqueue: t) }
        queue.observeTaskId(snap.highestTaskId)
        clock.observe(snap.lamport)
        parkedApplied = snap.parkedApplied
        let kept: [LogEntry]
        if planted(.snapshotDropsSuffix) {
            log.reset(toSnapshotAt: snap.lastIndex, epoch: snap.lastEpoch)
            kept = []
        } else {
            kept = log.rebase(toSnapshotAt: snap.lastIndex, epoch: snap.lastEpoch)
        }
        matchedThrough = min(matchedThrough, log.lastIndex)
        lastCommitMark = snap.lastIndex
        nextTaskId = max(nextTaskId, snap.highestTaskId + 1, Self.highestTaskId(in: log) + 1)
        unsyncedPersists += 1
        effects.append(.installSnapshot(snap))
        if !kept.isEmpty { persist(kept.map { .entry($0) }) }
        election?.position = log.position
    }

    /// The queue as of the commit point (valid at any time: the queue only
    /// ever holds committed changes).
    private func committedSnapshot() -> QueueSnapshot {
        QueueSnapshot(lastIndex: commitIndex, lastEpoch: log.epoch(at: commitIndex) ?? log.baseEpoch,
                      lamport: clock.time, highestTaskId: queue.highestTaskId, tasks: queue.allTasks(),
                      parkedApplied: parkedApplied)
    }

    /// The whole leadership ends: what was in flight is answered, nothing is kept.
    private func stoppedLeading(now: Int64) {
        serving = false
        recovering = nil
        twoPC.abandon()
        mutexRetryAt = nil
        applyMutex(mutex.state == .inside ? mutex.release() : mutex.cancel(), now: now)
        queue.releaseAllLeases()
        for a in awaiting {
            if case .ack(let id)? = log.entry(at: a.index)?.op { queue.unmarkAcking(id) }
            reply(a.ref, .error(.noleader, "leadership was lost before this change committed; the next leader may still apply it"))
        }
        awaiting.removeAll()
        failProposals(.noleader, "this node stopped leading before the change was replicated; nothing was committed")
        for w in waiters.removeAll() { reply(w.ref, .error(.noleader, "this node stopped leading")) }
        pendingPayloadBytes = 0
        followers.removeAll()
    }

    private func failProposals(_ code: ErrorCode, _ text: String) {
        for p in proposals {
            switch p.op {
            case .ack(let id): queue.unmarkAcking(id)
            case .enqueue(let t): pendingPayloadBytes -= t.payload.count
            case .noop, .enqueueParked: break
            }
            if let c = p.client { reply(c, .error(code, text)) }
        }
        proposals.removeAll()
        pendingPayloadBytes = max(0, pendingPayloadBytes)
    }

    /// Starts a replication round with the waiting batch, unless one runs.
    private func startRound(now: Int64) {
        guard role == .leader, recovering == nil, !twoPC.inRound, mutex.state == .idle, !proposals.isEmpty else { return }
        mutexRetryAt = now + retransmitMs
        mutexGiveUpAt = now + Int64(settings.commitTimeoutMs)
        applyMutex(mutex.request(ts: clock.tick(), livePeers: livePeers), now: now)
    }

    private func applyMutex(_ outputs: [RicartAgrawalaMutex.Output], now: Int64) {
        for o in outputs {
            switch o {
            case .send(let to, let m): sendPeer(to: to, .mutex(m))
            case .log(let e): effects.append(.log(e))
            case .granted: beginRound(now: now)
            }
        }
    }

    /// Inside the critical section: the batch becomes log entries, persisted
    /// here and sent to every live follower.
    private func beginRound(now: Int64) {
        mutexRetryAt = nil
        guard role == .leader, recovering == nil, !proposals.isEmpty else {
            applyMutex(mutex.release(), now: now)
            return
        }
        let first = log.lastIndex + 1
        var records: [LogRecord] = []
        records.reserveCapacity(proposals.count + 1)
        if election != nil && commitIndex > lastCommitMark {
            records.append(.commit(commitIndex))
            lastCommitMark = commitIndex
        }
        for p in proposals {
            let e = LogEntry(index: log.lastIndex + 1, epoch: epoch, lamport: p.lamport, op: p.op)
            log.append(e)
            records.append(.entry(e))
            if let c = p.client { awaiting.append((e.index, c)) }
        }
        proposals.removeAll(keepingCapacity: true)
        election?.position = log.position
        roundSeq += 1
        // The followers' copies leave before our own fsync, so the two overlap.
        applyTwoPC(twoPC.begin(round: roundSeq, epoch: epoch, first: first, last: log.lastIndex,
                               participants: livePeers, now: now, timeoutMs: settings.commitTimeoutMs), now: now)
        persist(records)
    }

    private func applyTwoPC(_ outputs: [TwoPhaseCommit.Output], now: Int64) {
        for o in outputs {
            switch o {
            case .send(let to, .prepare):
                sendReplication(to: to, now: now)
            case .send(let to, .commit(_, let round, let last)):
                sendPeer(to: to, .commit(round: round, through: last))
            case .send(let to, .abort(_, let round)):
                sendPeer(to: to, .abort(round: round, keep: commitIndex))
            case .log(let e):
                effects.append(.log(e))
            case .committed(_, let through):
                commit(through: through, now: now)
                // Work is waiting: the acquisition carries over to the next
                // batch (it spares a round trip per round under load). A
                // deferred requester waits at most until this node goes idle
                // or stops leading.
                if !proposals.isEmpty && role == .leader && mutex.state == .inside {
                    beginRound(now: now)
                } else {
                    applyMutex(mutex.release(), now: now)
                    startRound(now: now)
                }
            case .aborted(_, let reason):
                abortRound(reason: reason, now: now)
            }
        }
    }

    /// No majority in time: the clients learn the outcome is unknown (a
    /// follower may hold the entry, and a later leader may commit it), our own
    /// uncommitted entries of this epoch are cut (so we never commit them
    /// later), and we resign. Entries adopted from older epochs stay: they
    /// may have committed under an earlier leader.
    private func abortRound(reason: String, now: Int64) {
        var cut: UInt64?
        var i = commitIndex + 1
        while i <= log.lastIndex {
            if log.entry(at: i)?.epoch == epoch { cut = i - 1; break }
            i += 1
        }
        if let cut {
            for a in awaiting where a.index > cut {
                if case .ack(let id)? = log.entry(at: a.index)?.op { queue.unmarkAcking(id) }
                if case .enqueue(let t)? = log.entry(at: a.index)?.op { pendingPayloadBytes -= t.payload.count }
                reply(a.ref, .error(.noquorum, reason == "timeout"
                    ? "no majority acknowledged within commit_timeout_ms (\(settings.commitTimeoutMs) ms); the outcome is unknown: a later leader may still apply it"
                    : "a majority cannot be reached (too few peers up or willing); the outcome is unknown: a later leader may still apply it"))
            }
            awaiting.removeAll { $0.index > cut }
            log.truncate(after: cut)
            persist([.truncate(after: cut)])
            election?.position = log.position
        }
        applyMutex(mutex.release(), now: now)
        failProposals(.noquorum, "no majority acknowledged within commit_timeout_ms; this change was not replicated")
        resign(now: now, reason: "no_quorum_\(reason)")
    }

    /// Sends a follower what it lacks, one message at a time (the next goes
    /// when it acknowledges); past the in-memory window, a snapshot.
    private func sendReplication(to id: Int, now: Int64) {
        guard role == .leader, var f = followers[id], !f.inflight, detector.alive.contains(id) else { return }
        let prev = f.next - 1
        if prev < log.baseIndex {
            f.inflight = true
            f.sentFrom = f.next
            f.sentAt = now
            let snap = committedSnapshot()
            f.next = snap.lastIndex + 1
            followers[id] = f
            emit(.debug, "sync", [("node", "\(nodeId)"), ("peer", "\(id)"), ("mode", "snapshot"),
                                  ("index", "\(snap.lastIndex)"), ("tasks", "\(snap.tasks.count)")])
            sendPeer(to: id, .snapshot(snap))
            return
        }
        guard f.next <= log.lastIndex || f.match < commitIndex, let prevEpoch = log.epoch(at: prev) else { return }
        let entries = log.entries(from: f.next, through: log.lastIndex, maxBytes: 4 << 20)
        f.inflight = true
        f.sentFrom = f.next
        f.sentAt = now
        f.next = (entries.last?.index ?? prev) + 1
        followers[id] = f
        sendPeer(to: id, .replicate(.init(round: roundSeq, prevIndex: prev, prevEpoch: prevEpoch,
                                          commit: commitIndex, entries: entries)))
    }

    private func receiveAck(from: Int, epoch e: UInt64, round: UInt64, matched: Bool, index: UInt64, now: Int64) {
        guard role == .leader, var f = followers[from] else { return }
        guard e == epoch else {
            guard e > epoch else { return }
            // It promised a newer epoch to another candidate: it will refuse
            // us for as long as we lead in this one.
            f.inflight = false
            followers[from] = f
            applyTwoPC(twoPC.refused(from: from, epoch: epoch), now: now)
            if role == .leader { resign(now: now, reason: "newer_epoch") }
            return
        }
        f.inflight = false
        if matched {
            f.match = max(f.match, index)
            f.next = max(f.next, index + 1)
        } else {
            // Its committed prefix is ours too: resend from just after it.
            let known = min(index, log.lastIndex)
            f.match = max(f.match, known)
            f.next = known + 1
            emit(.debug, "sync", [("node", "\(nodeId)"), ("peer", "\(from)"), ("mode", "entries"),
                                  ("from", "\(known + 1)"), ("last", "\(log.lastIndex)")])
        }
        followers[from] = f
        if matched { applyTwoPC(twoPC.acknowledged(from: from, epoch: epoch, through: index), now: now) }
        sendReplication(to: from, now: now)
    }

    // MARK: following

    private func receiveReplicate(_ m: PeerEnvelope.Replicate, from: Int, epoch e: UInt64, now: Int64) {
        // A leader meeting a newer one steps down through the election first;
        // until then its own rounds own the log.
        guard role != .leader else { return }
        guard twoPC.acceptPrepare(epoch: e) || planted(.prepareWithoutPromise) else {
            // A deposed leader: the newer epoch we promised tells it so.
            sendPeer(to: from, .replicateAck(round: m.round, matched: false, index: commitIndex),
                     epoch: twoPC.promisedEpoch)
            return
        }
        if matchedEpoch != e {
            matchedEpoch = e
            matchedThrough = commitIndex
            matchedRound = 0
            epoch = max(epoch, e)
        }
        matchedRound = max(matchedRound, m.round)
        guard m.prevIndex <= log.lastIndex, log.matches(index: m.prevIndex, epoch: m.prevEpoch) else {
            sendPeer(to: from, .replicateAck(round: m.round, matched: false, index: commitIndex))
            return
        }
        var records: [LogRecord] = []
        guard merge(m.entries, into: &records) else {
            sendPeer(to: from, .replicateAck(round: m.round, matched: false, index: commitIndex))
            return
        }
        let through = max(m.prevIndex, m.entries.last?.index ?? 0)
        matchedThrough = max(matchedThrough, through)
        let newCommit = min(m.commit, matchedThrough)
        if newCommit > lastCommitMark && !records.isEmpty {
            records.append(.commit(min(newCommit, log.lastIndex)))
            lastCommitMark = newCommit
        }
        election?.position = log.position
        if !records.isEmpty { persist(records) }
        pendingAcks.append((from, m.round, through))
        if unsyncedPersists == 0 { sendPendingAcks() }
        commit(through: newCommit, now: now)
    }

    private func receiveSnapshot(_ snap: QueueSnapshot, from: Int, epoch e: UInt64, now: Int64) {
        guard role != .leader, twoPC.acceptPrepare(epoch: e) else { return }
        if matchedEpoch != e {
            matchedEpoch = e
            matchedThrough = commitIndex
            matchedRound = 0
            epoch = max(epoch, e)
        }
        if snap.lastIndex > commitIndex {
            install(snap)
            emit(.info, "snapshot_installed", [("node", "\(nodeId)"), ("from", "\(from)"), ("index", "\(snap.lastIndex)"),
                                              ("tasks", "\(snap.tasks.count)")])
        }
        matchedThrough = max(matchedThrough, snap.lastIndex)
        pendingAcks.append((from, 0, max(snap.lastIndex, commitIndex)))
        if unsyncedPersists == 0 { sendPendingAcks() }
    }

    /// The leader aborted a round: our uncommitted entries of its epoch past
    /// its commit point were never committed; drop them so no later recovery
    /// adopts them. Only the leader we replicate, in its own epoch, for its
    /// latest round, and only a tail made wholly of that epoch's entries: a
    /// late ABORT must never cut what a newer leader wrote or committed.
    private func receiveAbort(epoch e: UInt64, round: UInt64, keep: UInt64, now: Int64) {
        guard role != .leader else { return }
        var i = max(keep, commitIndex) + 1
        if planted(.abortIgnoresEpoch) {
            while i <= log.lastIndex, log.entry(at: i)?.epoch != e { i += 1 }
        } else {
            guard e == matchedEpoch, e >= twoPC.promisedEpoch, round >= matchedRound else { return }
            while i <= log.lastIndex, log.entry(at: i)?.epoch != e { i += 1 }
            var j = i
            while j <= log.lastIndex {
                guard log.entry(at: j)?.epoch == e else { return }
                j += 1
            }
        }
        guard i <= log.lastIndex else { return }
        log.truncate(after: i - 1)
        matchedThrough = min(matchedThrough, i - 1)
        persist([.truncate(after: i - 1)])
        election?.position = log.position
    }

    private func sendPendingAcks() {
        for a in pendingAcks { sendPeer(to: a.to, .replicateAck(round: a.round, matched: true, index: a.through)) }
        pendingAcks.removeAll()
    }

    // MARK: committing

    private func persist(_ records: [LogRecord]) {
        unsyncedPersists += 1
        effects.append(.persist(records))
    }

    /// Storage reports durable every record and snapshot handed out so far.
    public func persisted(now: Int64) {
        unsyncedPersists = 0
        sendPendingAcks()
        if role == .leader { applyTwoPC(twoPC.localDurable(through: log.lastIndex), now: now) }
    }

    /// Entries up to `index` are committed: apply them, answer their clients.
    private func commit(through index: UInt64, now: Int64) {
        let entries = log.commit(through: index)
        guard !entries.isEmpty else { return }
        for e in entries {
            entriesCommitted += 1
            let client: ClientRef? = awaiting.first?.index == e.index ? awaiting.removeFirst().ref : nil
            switch e.op {
            case .noop:
                break
            case .enqueue(let t):
                queue.apply(enqueue: t)
                nextTaskId = max(nextTaskId, t.id + 1)
                if let client {
                    pendingPayloadBytes -= t.payload.count
                    reply(client, .ok(taskId: t.id, lamport: e.lamport))
                }
            case .ack(let id):
                if !planted(.ackNotApplied) { queue.apply(ack: id) }
                if let client { reply(client, .ok(taskId: id, lamport: e.lamport)) }
            case .enqueueParked(let t, _, let seq):
                if planted(.parkedAppliedTwice) { queue.apply(enqueue: t) } else {
                    _ = Self.apply(e.op, to: &queue, parked: &parkedApplied)
                }
                nextTaskId = max(nextTaskId, t.id + 1)
                // A duplicate is acknowledged too: the entry is in the queue once.
                if let client { reply(client, .ok(taskId: seq, lamport: e.lamport)) }
            }
        }
        if election == nil { emit(.debug, "repl_commit", [("node", "\(nodeId)"), ("epoch", "\(epoch)"),
                                                         ("commit", "\(commitIndex)"), ("entries", "\(entries.count)")]) }
        log.trim(keep: logWindow)
        if let t = localParkedCommitted {
            localParkedCommitted = nil
            parkedDelivered(through: t, now: now)
        }
        if role == .leader {
            startServingIfReady(now: now)
            serveWaiters(now: now)
        }
    }

    /// A new leader serves once its first entry committed (so it holds every
    /// committed entry) and no older leader's lease can still be in force.
    private func startServingIfReady(now: Int64) {
        guard role == .leader, !serving, recovering == nil, commitIndex >= readyIndex, now >= servingNotBefore else { return }
        serving = true
        dispatchHeld(now: now)
        deliverMailbox(now: now)
    }

    // MARK: clients

    /// A client command that needs the queue (HELLO, ENQUEUE, DEQUEUE, ACK, NACK, STATUS).
    public func handle(_ command: ClientCommand, from ref: ClientRef, owner: String, now: Int64, wallMs: Int64) {
        lastNow = now
        checkLease(now: now)
        switch command {
        case .hello(_, let lamport):
            let l = lamport.map { clock.merge($0) } ?? clock.tick()
            reply(ref, .hello(nodeId: nodeId, lamport: l))
        case .status:
            reply(ref, .status(status().line))
        case .enqueue, .dequeue, .ack, .nack:
            submit(command, ref: ref, owner: owner, now: now, wallMs: wallMs)
        case .auth, .ping, .help, .quit:
            preconditionFailure("session-local command routed to the node core")
        }
    }

    /// Where a queue command goes: served here when this node leads, relayed
    /// when a leader is reachable, else held until one is (or NOLEADER).
    private func submit(_ command: ClientCommand, ref: ClientRef, owner: String, now: Int64, wallMs: Int64) {
        if held.isEmpty, dispatch(command, ref: ref, owner: owner, now: now, wallMs: wallMs) { return }
        held.append(Held(command: command, ref: ref, owner: owner, wallMs: wallMs,
                         deadline: now + Int64(max(settings.commitTimeoutMs, settings.leaderTimeoutMs))))
    }

    private func dispatch(_ command: ClientCommand, ref: ClientRef, owner: String, now: Int64, wallMs: Int64) -> Bool {
        if role == .leader {
            guard serving else { return false }
            serve(command, ref: ref, owner: owner, now: now, wallMs: wallMs)
            return true
        }
        if Self.isRemote(ref) {
            // Relayed to a node that no longer leads: the relaying follower
            // answers its client (it never loops the command onwards).
            reply(ref, .error(.noleader, "node \(nodeId) is not the leader"))
            return true
        }
        guard role == .follower, let leader = leaderId, detector.alive.contains(leader) else { return false }
        let id = nextForwardId
        nextForwardId &+= 1
        forwards[id] = (ref, leader)
        var patience = Int64(settings.commitTimeoutMs + settings.leaderTimeoutMs)
        if case .dequeue(let wait?) = command { patience += Int64(wait) }
        forwardDeadlines.insert(ForwardDeadline(at: now + patience, id: id))
        emit(.debug, "route_forward", [("node", "\(nodeId)"), ("to", "\(leader)"), ("id", "\(id)")])
        sendPeer(to: leader, .forward(id: id, owner: owner, command: command))
        return true
    }

    /// Dispatches held commands in order. Not reentrant: a step-down while
    /// dispatching calls back here, and the loop below already goes on.
    private func dispatchHeld(now: Int64) {
        guard !dispatchingHeld else { return }
        dispatchingHeld = true
        defer { dispatchingHeld = false }
        checkLease(now: now)
        deliverMailbox(now: now)
        while let h = held.first {
            guard dispatch(h.command, ref: h.ref, owner: h.owner, now: now, wallMs: h.wallMs) else { return }
            held.removeFirst()
        }
    }

    private func expireForwards(now: Int64) {
        while let d = forwardDeadlines.min, d.at <= now {
            forwardDeadlines.removeMin()
            guard let f = forwards.removeValue(forKey: d.id) else { continue }
            reply(f.ref, .error(.noleader, "no answer from leader \(f.leader) in time; the command may have been applied"))
        }
    }

    private func expireHeld(now: Int64) {
        while let h = held.first, h.deadline <= now {
            held.removeFirst()
            if case .enqueue(let payload) = h.command, !Self.isRemote(h.ref), payload.count <= settings.maxPayloadBytes {
                park(payload, ref: h.ref, wallMs: h.wallMs)
            } else {
                reply(h.ref, .error(.noleader, "no leader is reachable"))
            }
        }
    }

    // MARK: the mailbox

    /// No leader is reachable: the task is kept here durably, and the client
    /// hears QUEUED once it is.
    private func park(_ payload: [UInt8], ref: ClientRef, wallMs: Int64) {
        let e = mailbox.park(payload: payload, at: wallMs + Int64(cristian.offsetMs))
        parkReplies.append((ref, e.seq))
        effects.append(.persistMailbox([.park(e)]))
    }

    /// Storage reports the mailbox records handed out so far durable.
    public func mailboxPersisted(now: Int64) {
        for p in parkReplies {
            let ref = "\(nodeId)-\(p.seq)"
            emit(.info, "mailbox_park", [("node", "\(nodeId)"), ("ref", ref), ("mailbox", "\(mailbox.count)"),
                                        ("lamport", "\(clock.time)")])
            reply(p.ref, .queued(ref: ref, lamport: clock.tick()))
        }
        parkReplies.removeAll()
        deliverMailbox(now: now)
    }

    /// Hands the parked entries to a leader once one is reachable, in
    /// sequence order; again after a while if no confirmation came.
    private func deliverMailbox(now: Int64) {
        guard !mailbox.isEmpty, mailboxRetryAt.map({ now >= $0 }) ?? true else { return }
        let batch = Array(mailbox.pending.prefix(1_000))
        if role == .leader {
            guard serving else { return }
            receiveParked(batch, from: nodeId, now: now)
        } else {
            guard role == .follower, let leader = leaderId, detector.alive.contains(leader) else { return }
            sendPeer(to: leader, .deliverParked(batch))
        }
        // A delivery commits in a round trip or two; one lost with a link is
        // sent again (duplicates are skipped where they apply).
        mailboxRetryAt = now + Int64(settings.leaderTimeoutMs)
    }

    /// The leader takes a node's parked entries like ENQUEUEs; duplicates of
    /// an earlier delivery are skipped when they apply.
    private func receiveParked(_ entries: [MailboxEntry], from: Int, now: Int64) {
        guard role == .leader, serving else { return }
        for e in entries {
            let t = QueuedTask(id: nextTaskId, lamport: clock.tick(), enqueuedAtMs: e.enqueuedAtMs, payload: e.payload)
            nextTaskId += 1
            proposals.append(Proposal(op: .enqueueParked(t, from: from, seq: e.seq), lamport: t.lamport,
                                      client: ClientRef(session: Self.parkedSession | UInt64(from), seq: e.seq)))
        }
        startRound(now: now)
    }

    /// A leader committed our parked entries up to `seq`.
    private func parkedDelivered(through seq: UInt64, now: Int64) {
        let n = mailbox.delivered(through: seq)
        guard n > 0 else { return }
        effects.append(.persistMailbox([.delivered(through: seq)]))
        emit(.info, "mailbox_deliver", [("node", "\(nodeId)"), ("through", "\(nodeId)-\(seq)"), ("entries", "\(n)"),
                                       ("mailbox", "\(mailbox.count)"), ("lamport", "\(clock.time)")])
        mailboxRetryAt = nil
        deliverMailbox(now: now)
    }

    /// Relayed commands whose leader went away: their outcome is unknown here.
    private func failForwards(where lost: (Int) -> Bool) {
        for (id, f) in forwards.sorted(by: { $0.key < $1.key }) where lost(f.leader) {
            forwards.removeValue(forKey: id)
            reply(f.ref, .error(.noleader, "the leader was lost while the command was in flight; it may have been applied"))
        }
    }

    private func serve(_ command: ClientCommand, ref: ClientRef, owner: String, now: Int64, wallMs: Int64) {
        switch command {
        case .enqueue(let payload): enqueue(payload, ref: ref, wallMs: wallMs)
        case .dequeue(let waitMs): dequeue(ref: ref, owner: owner, waitMs: waitMs ?? 0, now: now)
        case .ack(let id): ack(id, ref: ref)
        case .nack(let id): nack(id, ref: ref, now: now)
        default: break
        }
    }

    private func enqueue(_ payload: [UInt8], ref: ClientRef, wallMs: Int64) {
        guard payload.count <= settings.maxPayloadBytes else {
            reply(ref, .error(.toolarge, "payload is \(payload.count) bytes, max_payload_bytes is \(settings.maxPayloadBytes)"))
            return
        }
        let limit = settings.maxMemoryMB * 1_048_576
        guard queue.payloadBytes + pendingPayloadBytes + payload.count <= limit else {
            reply(ref, .error(.busy, "queued payload is at max_memory_mb (\(settings.maxMemoryMB))"))
            return
        }
        let l = clock.tick()
        // Task timestamps use the cluster's corrected clock (Cristian).
        let at = wallMs + Int64(role == .leader ? 0 : cristian.offsetMs)
        let task = QueuedTask(id: nextTaskId, lamport: l, enqueuedAtMs: at, payload: payload)
        nextTaskId += 1
        pendingPayloadBytes += payload.count
        proposals.append(Proposal(op: .enqueue(task), lamport: l, client: ref))
    }

    private func ack(_ id: UInt64, ref: ClientRef) {
        guard queue.markAcking(id) else {
            reply(ref, .error(.notfound, "no task \(id) (never enqueued, or already acked)"))
            return
        }
        proposals.append(Proposal(op: .ack(taskId: id), lamport: clock.tick(), client: ref))
    }

    private func nack(_ id: UInt64, ref: ClientRef, now: Int64) {
        guard queue.release(id) else {
            reply(ref, .error(.notfound, "task \(id) is not leased"))
            return
        }
        reply(ref, .ok(taskId: id, lamport: clock.tick()))
        serveWaiters(now: now)
    }

    private func dequeue(ref: ClientRef, owner: String, waitMs: Int, now: Int64) {
        if let t = queue.leaseNext(owner: owner, deadline: now + Int64(settings.ackTimeoutMs)) {
            reply(ref, .task(taskId: t.id, lamport: clock.tick(), payload: t.payload))
        } else if waitMs > 0 {
            waiters.add(.init(ref: ref, owner: owner, deadline: now + Int64(waitMs)))
        } else {
            reply(ref, .empty)
        }
    }

    private func serveWaiters(now: Int64) {
        guard queue.readyCount > 0 else { return }
        checkLease(now: now)
        guard role == .leader else { return }
        while queue.readyCount > 0, let w = waiters.popFirst() {
            guard let t = queue.leaseNext(owner: w.owner, deadline: now + Int64(settings.ackTimeoutMs)) else {
                waiters.add(w)
                return
            }
            reply(w.ref, .task(taskId: t.id, lamport: clock.tick(), payload: t.payload))
        }
    }

    /// End of a loop iteration: everything proposed since the last flush
    /// becomes one batch, replicated as soon as no round is running.
    public func flush(now: Int64) {
        startRound(now: now)
    }

    /// Time passes: elections, retransmits, expired leases, waits and holds.
    public func tick(now: Int64, wallMs: Int64 = 0) {
        lastNow = now
        if election != nil {
            applyDetector(now: now)
            if now >= nextLinkReport { reportLinks(now: now) }
        }
        if let election {
            applyElection(election.tick(now: now), now: now)
            timeSync(now: now, wallMs: wallMs)
        }
        applyTwoPC(twoPC.tick(now: now), now: now)
        if let d = mutexRetryAt, now >= d, mutex.state == .requesting {
            applyMutex(mutex.cancel(), now: now)
            if now >= mutexGiveUpAt {
                mutexRetryAt = nil
                failProposals(.noquorum, "the replication section was not granted within commit_timeout_ms; this change was not replicated")
                resign(now: now, reason: "mutex_timeout")
            } else {
                mutexRetryAt = now + retransmitMs
                applyMutex(mutex.request(ts: clock.tick(), livePeers: livePeers), now: now)
            }
        }
        startServingIfReady(now: now)
        if let r = recovering, now >= r.deadline {
            resign(now: now, reason: "recovery_timeout")
        } else if let r = recovering, now >= r.nextAsk {
            recoveryRequests += 1
            recovering?.nextAsk = now + retransmitMs
            recovering?.request = recoveryRequests
            sendPeer(to: r.from, .recoverRequest(id: recoveryRequests, after: commitIndex))
        }
        if role == .leader {
            for (id, f) in followers.sorted(by: { $0.key < $1.key }) where f.inflight && now - f.sentAt >= retransmitMs {
                followers[id]!.inflight = false
                followers[id]!.next = f.sentFrom
                sendReplication(to: id, now: now)
            }
        }
        for id in queue.expireLeases(now: now) {
            emit(.info, "task_requeued", [("node", "\(nodeId)"), ("task", "\(id)"),
                                         ("reason", "lease_expired"), ("lamport", "\(clock.time)")])
        }
        serveWaiters(now: now)
        for w in waiters.expire(now: now) { reply(w.ref, .empty) }
        expireHeld(now: now)
        expireForwards(now: now)
        deliverMailbox(now: now)
    }

    /// A client connection closed: drop its waits (its leases run their course).
    public func sessionClosed(_ session: UInt64) {
        waiters.remove(session: session)
        held.removeAll { $0.ref.session == session }
    }

    public func status(extra: [(String, String)] = []) -> StatusReport {
        StatusReport(id: nodeId, role: role.rawValue, leader: leaderId, epoch: epoch, lamport: clock.time,
                     commit: commitIndex, ready: queue.readyCount, inflight: queue.leasedCount,
                     mailbox: mailbox.count, peersUp: election?.peersUp.count ?? 0,
                     offsetMs: role == .leader ? 0 : cristian.offsetMs,
                     extra: [("tasks", "\(queue.count)"), ("members", "\(memberIds.count)"),
                             ("last", "\(log.lastIndex)")] + extra)
    }

    /// The state as of the last committed entry, for compaction; nil while
    /// the log holds uncommitted entries (they must stay on disk).
    public func snapshot() -> QueueSnapshot? {
        guard log.lastIndex == commitIndex else { return nil }
        return committedSnapshot()
    }

    /// One line of internals for the simulator's failure reports.
    var debugSummary: String {
        "role=\(role.rawValue) leader=\(leaderId.map(String.init) ?? "-") epoch=\(epoch) serving=\(serving) "
            + "commit=\(commitIndex) last=\(log.lastIndex) proposals=\(proposals.count) awaiting=\(awaiting.count) "
            + "held=\(held.count) forwards=\(forwards.count) mutex=\(mutex.state) round=\(twoPC.inRound) "
            + "recovering=\(recovering.map { "\($0.from)" } ?? "-") peersUp=\(peersUp.sorted()) "
            + "mailbox=\(mailbox.pending.map(\.seq)) retry=\(mailboxRetryAt.map(String.init) ?? "-") parkedApplied=\(parkedApplied) "
            + "mutexWaits=\(mutex.pendingReplies.sorted()) mutexTs=\(mutex.requestTs) mutexRetry=\(mutexRetryAt.map(String.init) ?? "-") "
            + "direct=\(router.direct.sorted())"
    }

    /// For the simulator's mutual-exclusion check.
    var inCriticalSection: Bool { mutex.state == .inside }
    var mutexAsked: Set<Int> { mutex.asked }
    var mutexRepliedBy: Set<Int> { mutex.repliedBy }

    /// Relayed commands are answered over the bus, not to a local session.
    static let remoteSession: UInt64 = 1 << 62
    static func isRemote(_ ref: ClientRef) -> Bool { ref.session & remoteSession != 0 }
    /// A parked entry's delivery (node in the low bits, mailbox sequence as seq).
    static let parkedSession: UInt64 = 1 << 61

    private func reply(_ ref: ClientRef, _ r: Reply) {
        if ref.session & Self.parkedSession != 0 {
            // Only a commit confirms a delivery; anything else, the node retries.
            guard case .ok = r else { return }
            let from = Int(ref.session & ~Self.parkedSession)
            if from == nodeId { localParkedCommitted = max(localParkedCommitted ?? 0, ref.seq) }
            else { sendPeer(to: from, .parkedDelivered(through: ref.seq)) }
        } else if Self.isRemote(ref) {
            var line: [UInt8] = []
            r.render(into: &line)
            line.removeLast()
            sendPeer(to: Int(ref.session & ~Self.remoteSession), .forwardReply(id: ref.seq, reply: line))
        } else {
            effects.append(.reply(ref, r))
        }
    }

    private func emit(_ level: LogLevel, _ name: String, _ fields: [(String, String)]) {
        effects.append(.log(LogEvent(level, name, fields)))
    }
}
