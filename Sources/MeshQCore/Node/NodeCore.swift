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
// commits, the queue changes and clients get OK. A few rounds run at once
// (LeaderRounds.maxInFlight) and commit in log order; the next batch grows
// while they are in flight (group commit).
//
// Safety rests on three rules. Log matching: a follower appends only after
// its entry at prevIndex matches the leader's, cutting a conflicting
// uncommitted tail. Recovery: a new leader adopts the log of the voter with
// the highest (last epoch, last index) among the majority that elected it,
// which holds every committed entry, and commits it with a first entry of its
// own epoch before it serves anyone. Apply on commit: the queue changes only
// when an entry commits, so what clients were told is what recovery rebuilds.
//
// Composition. This file holds the inputs, `takeEffects`, `nextWakeup` and
// the state; each concern has its own named place:
//   LogReplay                 replay of the snapshot and log records at start
//   RoleState, LeaderState    the role the election gave, and all a leader holds
//   LeaderPhase, Recovery     where a leadership stands (recovering, committing
//                             its first entry, serving)
//   LeaderRounds              the section, the batch, the 2PC rounds in flight
//   LeaderReplication         per-follower Progress (match, next, in flight)
//   EpochFence                the newest epoch promised (older leaders refused)
//   Proposal                  a change waiting in the batch, and how to answer it
//   CommandRouter, ReplyTarget held commands, relays to the leader, relays taken
//   LeaderMatch               a follower's match with the leader it replicates
//   Rejoin                    a node that lost part of its log, until it holds a leader's
//   TimeSync                  Cristian sampling of the leader's clock
//   NodeCore+Peers            the peer bus, link reports, failure detector glue
//   NodeCore+Leadership       election glue, taking and ending a leadership, recovery
//   NodeCore+Rounds           carrying out LeaderRounds' actions, sending, acks
//   NodeCore+Following        follower apply, snapshots, committing
//   NodeCore+Clients          client commands, queue service and waiters
//   MailboxDelivery           the mailbox and handing its entries to a leader
//   NodeCore+Mailbox          parking and delivering the mailbox (glue)
//   NodeCore+Rejoin           a node that lost part of its log, and the durable promise
//   NodeCore+Halt             storage refused a write: answer everything, fall silent
// The value types keep their own state and return decisions; NodeCore
// applies them (replies, sends, log lines) in the order the effects need.

public final class NodeCore {
    public typealias Role = MeshQCore.Role

    public enum Effect: Sendable {
        case reply(ClientRef, Reply)
        /// Append these records to the durable log and sync, then call `persisted`.
        case persist([LogRecord])
        /// Replace the durable state by this snapshot (catch-up), then call
        /// `persisted`. `encoded`: the snapshot's bytes as received (a
        /// chunked transfer), to be written as they are instead of encoded again.
        case installSnapshot(QueueSnapshot, encoded: [UInt8]?)
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
        /// This node, started as catching up (its log was found damaged),
        /// now holds a leader's log and votes again: the driver removes the
        /// marker that made it start that way.
        case rejoined
    }

    // MARK: identity and the replicated state

    public let nodeId: Int
    public let memberIds: [Int]
    public internal(set) var settings: ClusterSettings
    /// Committed entries kept in memory to catch followers up; beyond, a snapshot.
    public var logWindow = 100_000
    /// The leader the election last named (NodeCore's copy, moved only when
    /// it applies the election's outputs, so it can tell a change of leader).
    public internal(set) var leaderId: Int?
    public internal(set) var epoch: UInt64
    public internal(set) var clock: LamportClock
    public internal(set) var store = TaskStore()
    public internal(set) var log: ReplicatedLog
    public var commitIndex: UInt64 { log.commitIndex }
    public var lastIndex: UInt64 { log.lastIndex }
    /// Replicated: the highest mailbox sequence applied from each node.
    public internal(set) var parkedApplied: [Int: UInt64] = [:]
    /// Leaderships won since start, and entries committed (for metrics).
    public internal(set) var elections = 0
    public internal(set) var entriesCommitted = 0
    /// Entries out of sequence found at start (reported by `start`).
    var skippedRecords = 0
    /// Effects produced since the last `takeEffects`, in order.
    var effects: [Effect] = []
    /// The latest `now` an input brought (routing decisions need it).
    var lastNow: Int64 = 0
    /// Whether debug-level events are built at all: a daemon logging at
    /// info or above turns them off, so the hot path formats no line that
    /// would be dropped (tests and the simulator keep them).
    public var debugEvents = true {
        didSet { leader?.rounds.debugEvents = debugEvents }
    }

    // MARK: storage

    var unsyncedPersists = 0
    /// The commit point last written to the log (a `.commit` record).
    var lastCommitMark: UInt64 = 0

    // MARK: peers: election, liveness, routing

    /// Multi-node clusters elect; a cluster of one simply leads.
    public internal(set) var election: BullyElection?
    /// Which peers are alive, from the frames that arrive (never the sockets).
    var detector: FailureDetector
    /// Routing around a cut link (direct when up, else through a neighbour).
    var router: Router
    var nextRoutedId: UInt64
    var nextLinkReport: Int64 = 0

    // MARK: the role

    /// What this node does now, as the election last decided; a leader's
    /// case carries everything only a leader holds (LeaderState).
    var roleState: RoleState = .follower
    public var role: Role {
        switch roleState {
        case .follower, .halted: return .follower
        case .candidate: return .candidate
        case .leader: return .leader
        }
    }
    /// The leadership's state while this node leads.
    var leader: LeaderState? {
        if case .leader(let s) = roleState { return s }
        return nil
    }
    /// Why this core stopped (storage refused a write), or nil while it runs.
    public var halted: String? {
        if case .halted(let reason) = roleState { return reason }
        return nil
    }
    /// Whether this leader has recovered and committed its first entry.
    public var serving: Bool { leader?.serving ?? false }
    var recovering: Recovery? { leader?.recovering }

    // MARK: queues and time

    /// What this node applied, per queue (for /metrics).
    var queueCounters: [String: QueueCounters] = [:]
    /// Cluster time as of the last input that brought a wall clock, and the
    /// monotonic time it came at (to turn cluster deadlines into wakeups).
    var lastClusterMs: Int64 = 0
    var lastClusterAt: Int64 = 0
    var nextTaskId: UInt64
    /// Chunked snapshots and recovery replies on their way (NodeCore+Transfers).
    var transfers = CatchUpTransfers()

    // MARK: following

    /// The epoch whose leader we replicate, and how far our log is known to
    /// match its log (only then may its commit apply).
    var matched = LeaderMatch()
    /// Acknowledgements sent once what they acknowledge is durable.
    var pendingAcks: [(to: Int, round: UInt64, through: UInt64)] = []
    var timeSync = TimeSync()
    /// The newest epoch promised: older leaders are refused.
    var fence: EpochFence
    /// Set while this node, having lost part of its log, must not vote.
    var rejoin: Rejoin?
    /// Whether this node is catching up after losing part of its log.
    public var rejoining: Bool { rejoin != nil }
    /// The epoch promise the vote file holds: accepting a newer leader
    /// writes it before acknowledging anything, so a damaged log cannot
    /// take the promise with it.
    var durablePromise: UInt64
    /// Followers' estimate of the leader's clock (Cristian).
    public var cristian: CristianClock { timeSync.cristian }

    // MARK: clients and the mailbox

    /// DEQUEUEs and TAKEs waiting for a task.
    var waiters = TakeWaiters()
    /// Held commands, relays to the leader, relays taken from followers.
    var commands: CommandRouter
    var dispatchingHeld = false
    var delivery: MailboxDelivery
    /// ENQUEUEs parked here while no leader was reachable.
    public var mailbox: Mailbox { delivery.mailbox }

    /// Rebuilds the state from a snapshot and the records logged after it.
    public init(nodeId: Int, memberIds: [Int], settings: ClusterSettings,
                snapshot: QueueSnapshot?, records: [LogRecord], votedEpoch: UInt64 = 0,
                promisedEpoch: UInt64 = 0, relayIdBase: UInt64 = 1, mailbox: Mailbox = Mailbox(),
                rejoining: Bool = false) {
        self.nodeId = nodeId
        self.durablePromise = promisedEpoch
        self.delivery = MailboxDelivery(mailbox: mailbox)
        // Relay ids must not repeat across restarts: the leader may still
        // answer a relay of our previous incarnation (the simulator found a
        // client told OK for another client's entry), so the driver picks a
        // random base.
        self.commands = CommandRouter(relayIdBase: relayIdBase)
        self.nextRoutedId = relayIdBase
        self.router = Router(nodeId: nodeId, staleMs: Int64(settings.leaderTimeoutMs) * 2)
        self.detector = FailureDetector(nodeId: nodeId, peers: memberIds, timeoutMs: settings.leaderTimeoutMs,
                                        directTimeoutMs: Self.directLinkTimeoutMs(settings))
        self.memberIds = memberIds.sorted()
        self.settings = settings
        // Alone, everything this node made durable was committed.
        let single = memberIds.count <= 1
        let replay = LogReplay(snapshot: snapshot, records: records, commitAll: single)
        let log = replay.log
        self.store = replay.store
        self.parkedApplied = replay.parkedApplied
        self.skippedRecords = replay.skippedRecords
        self.clock = replay.clock
        // A wiped or damaged mailbox must not reuse sequences already applied.
        self.delivery.continueAbove(parkedApplied[nodeId] ?? 0)
        self.lastCommitMark = log.commitIndex
        self.log = log
        self.epoch = log.lastEpoch
        self.nextTaskId = max(store.highestTaskId, LogReplay.highestTaskId(in: log)) + 1
        fence = EpochFence(promised: max(log.lastEpoch, promisedEpoch))
        if !single {
            let e = BullyElection(nodeId: nodeId, members: memberIds, epoch: log.lastEpoch, votedEpoch: votedEpoch,
                                  heartbeatIntervalMs: settings.heartbeatIntervalMs,
                                  leaderTimeoutMs: settings.leaderTimeoutMs,
                                  electionTimeoutMs: settings.electionTimeoutMs,
                                  standing: rejoining ? .rejoining : .voter, position: log.position)
            election = e
            if rejoining { rejoin = Rejoin(probeId: relayIdBase, startedEmpty: log.lastIndex == 0 && promisedEpoch == 0) }
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

    /// Effects produced since the last call, in the order they must be applied.
    public func takeEffects() -> [Effect] {
        defer { effects.removeAll(keepingCapacity: true) }
        return effects
    }

    public var hasEffects: Bool { !effects.isEmpty }

    /// Whether a batch is waiting that `flush` can start now (with the
    /// pipeline full, it waits for the oldest round to commit, which starts it).
    public var hasProposals: Bool { leader?.rounds.canStart(open: roundsOpen, livePeers: livePeers) ?? false }

    var peers: [Int] { memberIds.filter { $0 != nodeId } }
    var peersUp: Set<Int> { election?.peersUp ?? [] }

    /// The earliest time `tick` has work to do.
    public func nextWakeup() -> Int64? {
        guard halted == nil else { return nil }
        let sync: Int64? = role == .follower ? leaderId.map { timeSync.nextWakeup(leader: $0) } : nil
        var times = [store.nextDue().map { lastClusterAt + max(1, $0 - lastClusterMs) }, waiters.nextDeadline(), election?.nextWakeup(), sync, delivery.retryAt,
                     election == nil ? nil : nextLinkReport, detector.nextExpiry(),
                     leader?.rounds.nextDeadline, recovering?.deadline, recovering?.nextAsk, commands.nextDeadline,
                     leader.flatMap { !$0.serving && $0.servingNotBefore > lastNow ? $0.servingNotBefore : nil },
                     role == .follower && leaderId != nil ? rejoin?.nextWakeup : nil,
                     log.lastIndex == 0 ? rejoin?.nextLogProbeAt : nil]
        if let leader { times.append(leader.replication.nextRetransmit(afterMs: retransmitMs)) }
        return times.compactMap { $0 }.min()
    }

    /// A replication message unanswered this long is sent again (lost with a link).
    var retransmitMs: Int64 { Int64(max(settings.heartbeatIntervalMs * 4, 200)) }

    // MARK: inputs

    /// Called once the node's storage is open and recovered.
    public func start(now: Int64) {
        lastNow = now
        emit(.info, "tasks_recovered", [("node", "\(nodeId)"), ("count", "\(store.count)"),
                                       ("commit", "\(commitIndex)"), ("uncommitted", "\(log.lastIndex - commitIndex)"),
                                       ("epoch", "\(epoch)"), ("lamport", "\(clock.time)")])
        if skippedRecords > 0 {
            emit(.error, "log_records_skipped", [("node", "\(nodeId)"), ("count", "\(skippedRecords)"),
                                                ("reason", "entries out of sequence")])
        }
        if election != nil {
            if let r = rejoin {
                // An empty log is how every new cluster starts: a warning only once a peer holds entries.
                emit(r.startedEmpty ? .info : .warn, "rejoin_start", [("node", "\(nodeId)"), ("reason", r.startedEmpty
                    ? "log empty (a new or wiped data_dir): not voting until it holds a leader's log, or blank peers show the cluster new"
                    : "log damaged: not voting until it holds a leader's log")])
            }
            applyElection(election?.start(now: now) ?? [], now: now)
            probePeerLogs(now: now)
        } else {
            // A cluster of one: this node is the majority, so it leads at once
            // in a new epoch, made durable by the epoch's first (noop) entry.
            leaderId = nodeId
            becomeLeader(epoch: epoch + 1, votes: [:], now: now, tookMs: 0)
        }
    }

    #if MESHQ_TESTING
    /// Test hooks (see PlantedBug): compiled only with -D MESHQ_TESTING.
    var plantedBugs: Set<PlantedBug> = [] {
        didSet {
            election?.plant(plantedBugs)
            leader?.rounds.plant(plantedBugs)
            detector.trustTransport = plantedBugs.contains(.trustTransport)
            // Each where it applies: every new cluster starts with empty logs.
            if let r = rejoin, plantedBugs.contains(r.startedEmpty ? .emptyLogVotesAtOnce : .corruptionAsTornTail) {
                rejoin = nil
                election?.rejoined()
                // As before the empty-log rule: no marker either.
                if r.startedEmpty { effects.append(.rejoined) }
            }
        }
    }
    @inline(__always) func planted(_ bug: PlantedBug) -> Bool { plantedBugs.contains(bug) }
    #else
    @inline(__always) func planted(_ bug: PlantedBug) -> Bool { false }
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
        election?.reload(new)
        detector.reload(timeoutMs: new.leaderTimeoutMs, directTimeoutMs: Self.directLinkTimeoutMs(new))
        router.staleMs = Int64(new.leaderTimeoutMs) * 2
    }

    /// An envelope from a peer (already checked to come from `env.from`),
    /// over the direct link from it: proof that it is alive.
    public func peerMessage(_ env: PeerEnvelope, now: Int64, wallMs: Int64) {
        lastNow = now
        guard halted == nil, election != nil, memberIds.contains(env.from), env.from != nodeId else { return }
        detector.heard(from: env.from, directly: true, now: now)
        applyDetector(now: now)
        receive(env, now: now, wallMs: wallMs)
        observeClock(now: now, wallMs: wallMs)
    }

    /// The transport connected to `id`. That proves nothing about the peer
    /// (a frozen process's kernel still accepts), but a report sent now lets
    /// it hear us without waiting for the next interval.
    public func peerUp(_ id: Int, now: Int64 = 0) {
        lastNow = max(lastNow, now)
        guard halted == nil, peers.contains(id) else { return }
        reportLinks(now: now, to: id)
        if let r = rejoin, r.mayFindNewCluster, !r.blankPeers.contains(id) { sendPeer(to: id, .logProbe(id: r.probeId)) }
    }

    /// The transport lost the connection to `id` (closed or reset by the
    /// peer's kernel: a loud failure), so the direct link is down now.
    public func peerDown(_ id: Int, now: Int64 = 0) {
        lastNow = max(lastNow, now)
        guard halted == nil else { return }
        detector.closed(id, now: now)
        applyDetector(now: now)
    }

    /// Storage reports durable every record and snapshot handed out so far.
    public func persisted(now: Int64) {
        guard halted == nil else { return }
        unsyncedPersists = 0
        sendPendingAcks()
        checkRejoined(now: now)
        if let leader { applyRounds(leader.rounds.localDurable(through: log.lastIndex), now: now) }
    }

    /// A client command that needs the queue (HELLO, ENQUEUE, DEQUEUE, ACK, NACK, STATUS).
    public func handle(_ command: ClientCommand, from client: ClientRef, owner: String, now: Int64, wallMs: Int64) {
        let target = ReplyTarget.session(client)
        lastNow = now
        checkLease(now: now)
        switch command {
        case .hello(_, let lamport):
            let l = lamport.map { clock.merge($0) } ?? clock.tick()
            reply(target, .hello(nodeId: nodeId, lamport: l))
        case .status:
            reply(target, .status(status().line))
        case .enqueue, .dequeue, .ack, .nack, .put, .take, .touch, .bury, .kick, .pause, .stats, .peek:
            observeClock(now: now, wallMs: wallMs)
            if let reason = halted {
                refuseHalted(target, reason: reason)
                return
            }
            submit(command, target: target, owner: owner, now: now, wallMs: wallMs)
        case .auth, .ping, .help, .quit:
            preconditionFailure("session-local command routed to the node core")
        }
    }

    /// Storage reports the mailbox records handed out so far durable.
    public func mailboxPersisted(now: Int64) {
        guard halted == nil else { return }
        for p in delivery.takeDurableParks() {
            let ref = "\(nodeId)-\(p.seq)"
            emit(.info, "mailbox_park", [("node", "\(nodeId)"), ("ref", ref), ("mailbox", "\(mailbox.count)"),
                                        ("lamport", "\(clock.time)")])
            reply(p.target, .queued(ref: ref, lamport: clock.tick()))
        }
        deliverMailbox(now: now)
    }

    /// End of a loop iteration: everything proposed since the last flush
    /// becomes one batch, replicated as soon as no round is running.
    public func flush(now: Int64) {
        guard halted == nil else { return }
        startRound(now: now)
    }

    /// Time passes: elections, retransmits, expired leases, waits and holds.
    public func tick(now: Int64, wallMs: Int64 = 0) {
        lastNow = now
        guard halted == nil else { return }
        if election != nil {
            applyDetector(now: now)
            if now >= nextLinkReport { reportLinks(now: now) }
        }
        if election != nil {
            applyElection(election?.tick(now: now) ?? [], now: now)
            sampleLeaderClock(now: now, wallMs: wallMs)
            askRejoinTarget(now: now)
            probePeerLogs(now: now)
        }
        if let leader { applyRounds(leader.rounds.tick(roundContext(now: now), clock: &clock), now: now) }
        startServingIfReady(now: now)
        tickRecovery(now: now)
        if let leader {
            for id in leader.replication.retransmitsDue(now: now, afterMs: retransmitMs) {
                sendReplication(to: id, now: now)
            }
        }
        observeClock(now: now, wallMs: wallMs)
        serveWaiters(now: now)
        for w in waiters.expire(now: now) { reply(w.target, .empty) }
        expireHeld(now: now)
        expireForwards(now: now)
        deliverMailbox(now: now)
    }

    /// A client connection closed: drop its waits (its leases run their course).
    public func sessionClosed(_ session: UInt64) {
        waiters.remove(session: session)
        commands.dropHeld(session: session)
    }

    public func status(extra: [(String, String)] = []) -> StatusReport {
        StatusReport(id: nodeId, role: role.rawValue, leader: leaderId, epoch: epoch, lamport: clock.time,
                     commit: commitIndex, ready: store.readyCount, inflight: store.leasedCount + (leader?.leasing.count ?? 0),
                     mailbox: mailbox.count, peersUp: election?.peersUp.count ?? 0,
                     offsetMs: role == .leader ? 0 : cristian.offsetMs,
                     extra: [("tasks", "\(store.count)"), ("queues", "\(store.queueCount)"), ("members", "\(memberIds.count)"),
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
            + "commit=\(commitIndex) last=\(log.lastIndex) proposals=\(leader?.rounds.batch.count ?? 0) awaiting=\(leader?.awaiting.count ?? 0) "
            + "held=\(commands.held.count) forwards=\(commands.forwardCount) mutex=\(leader.map { "\($0.rounds.mutex.state)" } ?? "-") rounds=\(leader?.rounds.roundsInFlight ?? 0) "
            + "recovering=\(recovering.map { "\($0.from)" } ?? "-") peersUp=\(peersUp.sorted()) "
            + "mailbox=\(mailbox.pending.map(\.seq)) retry=\(delivery.retryAt.map(String.init) ?? "-") parkedApplied=\(parkedApplied) "
            + "mutexWaits=\(leader?.rounds.mutex.pendingReplies.sorted() ?? []) mutexTs=\(leader?.rounds.mutex.requestTs ?? 0) "
            + "mutexRetry=\(leader?.rounds.retryAt.map(String.init) ?? "-") "
            + "direct=\(router.direct.sorted())"
    }

    /// For the simulator's mutual-exclusion check.
    var inCriticalSection: Bool { leader?.rounds.mutex.state == .inside }
    var mutexRepliedBy: Set<Int> { leader?.rounds.mutex.repliedBy ?? [] }

    func reply(_ target: ReplyTarget, _ r: Reply) {
        switch target {
        case .parked(let from, let seq):
            // Only a commit confirms a delivery; anything else, the node retries.
            guard case .ok = r else { return }
            if from == nodeId { delivery.committedHere(through: seq) }
            else { sendPeer(to: from, .parkedDelivered(through: seq)) }
        case .forwarded(let from, let id):
            var line: [UInt8] = []
            r.render(into: &line)
            line.removeLast()
            sendPeer(to: from, .forwardReply(id: id, reply: line))
        case .session(let client):
            effects.append(.reply(client, r))
        }
    }

    /// A log line; a debug one only while `debugEvents` (its fields are
    /// not even formatted otherwise).
    func emit(_ level: LogLevel, _ name: String, _ fields: @autoclosure () -> [(String, String)]) {
        guard level > .debug || debugEvents else { return }
        effects.append(.log(LogEvent(level, name, fields())))
    }
}
