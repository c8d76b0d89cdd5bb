// NodeCore: one node's protocol logic as a state machine, free of I/O. The
// driver (meshqd's reactor, or a simulator) feeds it inputs — client commands,
// "end of this loop iteration" (flush), "the log is durable up to index i"
// (persisted), the time (tick) — and applies the effects it returns, in order:
// replies, log appends, log lines.
//
// Durability rule: a change is answered OK only after its entry is durable on
// a majority (in a cluster of one, on this node's disk), and the queue state
// changes only when an entry commits, so what clients were told is exactly what
// recovery rebuilds. Commands read in one loop iteration become one batch, and
// one append + fsync (group commit).
import DequeModule

public final class NodeCore {
    public enum Role: String, Sendable { case leader, follower, candidate }

    public enum Effect: Sendable {
        case reply(ClientRef, Reply)
        /// Append these entries to the durable log and sync, then call `persisted(through:)`.
        case persist([LogEntry])
        case log(LogEvent)
        /// Send to a peer (over the cluster bus).
        case sendPeer(PeerEnvelope)
        /// Make the vote epoch durable before any later effect is applied.
        case persistVote(UInt64)
    }

    private struct Proposal {
        var entry: LogEntry
        var client: ClientRef?
    }

    public let nodeId: Int
    public let memberIds: [Int]
    public var settings: ClusterSettings

    public private(set) var role: Role = .follower
    public private(set) var leaderId: Int?
    public private(set) var epoch: UInt64
    public private(set) var clock: LamportClock
    public private(set) var queue = TaskQueue()
    public private(set) var commitIndex: UInt64
    /// Index of the last entry handed to storage.
    public private(set) var lastIndex: UInt64
    public private(set) var lastEpoch: UInt64
    /// Leaderships won since start, and entries committed (for metrics).
    public private(set) var elections = 0
    public private(set) var entriesCommitted = 0

    private var proposals: [Proposal] = []
    private var inflight = Deque<Proposal>()
    private var nextTaskId: UInt64
    private var pendingPayloadBytes = 0
    private var waiters = WaiterQueue()
    private var effects: [Effect] = []
    /// Multi-node clusters elect; a cluster of one simply leads.
    public let election: BullyElection?
    /// Followers' estimate of the leader's clock (Cristian).
    public private(set) var cristian = CristianClock()
    private var nextTimeSync: Int64 = 0
    private var timeSyncSeq: UInt64 = 0
    private var timeRequests: [UInt64: Int64] = [:]
    private var syncedLeader: Int?

    /// Rebuilds the state from a snapshot and the entries logged after it.
    public init(nodeId: Int, memberIds: [Int], settings: ClusterSettings,
                snapshot: QueueSnapshot?, entries: [LogEntry], votedEpoch: UInt64 = 0) {
        self.nodeId = nodeId
        self.memberIds = memberIds.sorted()
        self.settings = settings
        var clock = LamportClock()
        var index: UInt64 = 0
        var epoch: UInt64 = 0
        if let s = snapshot {
            for t in s.tasks { queue.apply(enqueue: t) }
            queue.observeTaskId(s.highestTaskId)
            clock.observe(s.lamport)
            index = s.lastIndex
            epoch = s.lastEpoch
        }
        for e in entries where e.index > index {
            Self.apply(e.op, to: &queue)
            clock.observe(e.lamport)
            index = e.index
            epoch = max(epoch, e.epoch)
        }
        self.clock = clock
        self.commitIndex = index
        self.lastIndex = index
        self.lastEpoch = epoch
        self.epoch = epoch
        self.nextTaskId = queue.highestTaskId + 1
        if memberIds.count > 1 {
            let e = BullyElection(nodeId: nodeId, members: memberIds, epoch: epoch, votedEpoch: votedEpoch,
                                  heartbeatIntervalMs: settings.heartbeatIntervalMs,
                                  leaderTimeoutMs: settings.leaderTimeoutMs,
                                  electionTimeoutMs: settings.electionTimeoutMs)
            e.position = LogPosition(epoch: epoch, index: index)
            election = e
        } else {
            election = nil
        }
    }

    private static func apply(_ op: LogEntry.Operation, to queue: inout TaskQueue) {
        switch op {
        case .noop: break
        case .enqueue(let t): queue.apply(enqueue: t)
        case .ack(let id): queue.apply(ack: id)
        }
    }

    /// Effects produced since the last call, in the order they must be applied.
    public func takeEffects() -> [Effect] {
        defer { effects.removeAll(keepingCapacity: true) }
        return effects
    }

    public var hasEffects: Bool { !effects.isEmpty }

    /// Whether a batch is waiting for `flush`.
    public var hasProposals: Bool { !proposals.isEmpty }

    /// The earliest time `tick` has work to do.
    public func nextWakeup() -> Int64? {
        let sync: Int64? = role == .follower && leaderId != nil ? (syncedLeader == leaderId ? nextTimeSync : 0) : nil
        return [queue.nextLeaseDeadline(), waiters.nextDeadline(), election?.nextWakeup(), sync].compactMap { $0 }.min()
    }

    // MARK: inputs

    /// Called once the node's storage is open and recovered.
    public func start(now: Int64) {
        log(.info, "tasks_recovered", [("node", "\(nodeId)"), ("count", "\(queue.count)"),
                                       ("commit", "\(commitIndex)"), ("epoch", "\(epoch)"),
                                       ("lamport", "\(clock.time)")])
        if memberIds == [nodeId] {
            // A cluster of one: this node is the majority, so it leads at once
            // in a new epoch, made durable by the epoch's first (noop) entry.
            becomeLeader(epoch: epoch + 1, now: now, tookMs: 0)
        } else if let election {
            log(.warn, "replication_unavailable", [("node", "\(nodeId)"), ("members", "\(memberIds.count)"),
                                                   ("reason", "replication is not built yet: commands that need a leader answer ERR NOLEADER")])
            apply(election.start(now: now))
        }
    }

    // MARK: the cluster

    /// An envelope from a peer (already checked to come from `env.from`).
    /// Test hooks (see PlantedBug); empty in production.
    var plantedBugs: Set<PlantedBug> = [] {
        didSet { election?.plantedBugs = plantedBugs }
    }

    public func peerMessage(_ env: PeerEnvelope, now: Int64, wallMs: Int64) {
        if plantedBugs.contains(.skipLamportMerge) { clock.tick() } else { clock.merge(env.lamport) }
        guard let election else { return }
        switch env.body {
        case .hello, .challenge:
            break
        case .election(let m):
            apply(election.receive(from: env.from, m, now: now))
        case .timeRequest(let seq):
            if role == .leader { sendPeer(to: env.from, .timeReply(seq: seq, serverMs: wallMs)) }
        case .timeReply(let seq, let serverMs):
            guard env.from == leaderId, let t0 = timeRequests.removeValue(forKey: seq),
                  let s = cristian.add(sentAtMs: Double(t0), serverTimeMs: Double(serverMs), receivedAtMs: Double(wallMs))
            else { return }
            log(.info, "time_sync", [("node", "\(nodeId)"), ("leader", "\(env.from)"), ("offset_ms", formatMs(cristian.offsetMs)),
                                     ("rtt_ms", formatMs(s.rttMs)), ("sample_offset_ms", formatMs(s.offsetMs))])
        }
    }

    private func sendPeer(to: Int, _ body: PeerEnvelope.Body) {
        effects.append(.sendPeer(PeerEnvelope(from: nodeId, to: to, lamport: clock.tick(),
                                              epoch: election?.epoch ?? epoch, body: body)))
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

    public func peerUp(_ id: Int) {
        election?.peersUp.insert(id)
    }

    public func peerDown(_ id: Int) {
        election?.peerDown(id)
    }

    private func apply(_ outputs: [BullyElection.Output]) {
        guard let election else { return }
        for o in outputs {
            switch o {
            case .send(let to, let m):
                sendPeer(to: to, .election(m))
            case .persistVote(let e):
                effects.append(.persistVote(e))
            case .becameLeader, .following, .leaderLost:
                break
            case .log(var event):
                if event.field("lamport") == nil { event.fields.append(("lamport", "\(clock.time)")) }
                effects.append(.log(event))
            }
        }
        let wasLeader = role == .leader
        role = Role(rawValue: election.role.rawValue) ?? .follower
        leaderId = election.leaderId
        epoch = max(epoch, election.epoch)
        if wasLeader && role != .leader {
            // Leases are leader-local; blocked consumers learn there is no leader here.
            queue.releaseAllLeases()
            for w in waiters.removeAll() { reply(w.ref, .error(.noleader, "this node stopped leading")) }
        }
    }

    private func becomeLeader(epoch newEpoch: UInt64, now: Int64, tookMs: Int64) {
        role = .leader
        leaderId = nodeId
        elections += 1
        epoch = newEpoch
        queue.releaseAllLeases()
        let l = clock.tick()
        propose(.noop, lamport: l, client: nil)
        log(.info, "leader_elected", [("node", "\(nodeId)"), ("epoch", "\(epoch)"),
                                      ("lamport", "\(l)"), ("took_ms", "\(tookMs)")])
    }

    /// A client command that needs the queue (HELLO, ENQUEUE, DEQUEUE, ACK, NACK, STATUS).
    public func handle(_ command: ClientCommand, from ref: ClientRef, owner: String, now: Int64, wallMs: Int64) {
        switch command {
        case .hello(_, let lamport):
            let l = lamport.map { clock.merge($0) } ?? clock.tick()
            reply(ref, .hello(nodeId: nodeId, lamport: l))
        case .enqueue(let payload):
            enqueue(payload, ref: ref, wallMs: wallMs)
        case .dequeue(let waitMs):
            dequeue(ref: ref, owner: owner, waitMs: waitMs ?? 0, now: now)
        case .ack(let id):
            ack(id, ref: ref)
        case .nack(let id):
            nack(id, ref: ref, now: now)
        case .status:
            reply(ref, .status(status().line))
        case .auth, .ping, .help, .quit:
            preconditionFailure("session-local command routed to the node core")
        }
    }

    private func requireLeader(_ ref: ClientRef) -> Bool {
        guard role == .leader, election == nil else {
            let why = election == nil ? "no leader is reachable"
                : "replication is not built yet, so no node of a multi-node cluster serves the queue"
            reply(ref, .error(.noleader, why))
            return false
        }
        return true
    }

    private func enqueue(_ payload: [UInt8], ref: ClientRef, wallMs: Int64) {
        guard requireLeader(ref) else { return }
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
        let task = QueuedTask(id: nextTaskId, lamport: l, enqueuedAtMs: wallMs, payload: payload)
        nextTaskId += 1
        pendingPayloadBytes += payload.count
        propose(.enqueue(task), lamport: l, client: ref)
    }

    private func ack(_ id: UInt64, ref: ClientRef) {
        guard requireLeader(ref) else { return }
        guard queue.markAcking(id) else {
            reply(ref, .error(.notfound, "no task \(id) (never enqueued, or already acked)"))
            return
        }
        propose(.ack(taskId: id), lamport: clock.tick(), client: ref)
    }

    private func nack(_ id: UInt64, ref: ClientRef, now: Int64) {
        guard requireLeader(ref) else { return }
        guard queue.release(id) else {
            reply(ref, .error(.notfound, "task \(id) is not leased"))
            return
        }
        reply(ref, .ok(taskId: id, lamport: clock.tick()))
        serveWaiters(now: now)
    }

    private func dequeue(ref: ClientRef, owner: String, waitMs: Int, now: Int64) {
        guard requireLeader(ref) else { return }
        if let t = queue.leaseNext(owner: owner, deadline: now + Int64(settings.ackTimeoutMs)) {
            reply(ref, .task(taskId: t.id, lamport: clock.tick(), payload: t.payload))
        } else if waitMs > 0 {
            waiters.add(.init(ref: ref, owner: owner, deadline: now + Int64(waitMs)))
        } else {
            reply(ref, .empty)
        }
    }

    private func serveWaiters(now: Int64) {
        while queue.readyCount > 0, let w = waiters.popFirst() {
            guard let t = queue.leaseNext(owner: w.owner, deadline: now + Int64(settings.ackTimeoutMs)) else {
                waiters.add(w)
                return
            }
            reply(w.ref, .task(taskId: t.id, lamport: clock.tick(), payload: t.payload))
        }
    }

    private func propose(_ op: LogEntry.Operation, lamport: UInt64, client: ClientRef?) {
        lastIndex += 1
        let e = LogEntry(index: lastIndex, epoch: epoch, lamport: lamport, op: op)
        proposals.append(Proposal(entry: e, client: client))
    }

    /// End of a loop iteration: everything proposed since the last flush
    /// becomes one batch for storage.
    public func flush(now: Int64) {
        guard !proposals.isEmpty else { return }
        effects.append(.persist(proposals.map(\.entry)))
        inflight.append(contentsOf: proposals)
        proposals.removeAll(keepingCapacity: true)
    }

    /// Storage reports every entry up to `index` durable on this node. With a
    /// cluster of one that is a majority: the entries commit.
    public func persisted(through index: UInt64, now: Int64) {
        var committed = 0
        while let p = inflight.first, p.entry.index <= index {
            inflight.removeFirst()
            commit(p)
            committed += 1
        }
        if committed > 0 {
            log(.debug, "repl_commit", [("node", "\(nodeId)"), ("epoch", "\(epoch)"),
                                        ("commit", "\(commitIndex)"), ("entries", "\(committed)")])
            serveWaiters(now: now)
        }
    }

    private func commit(_ p: Proposal) {
        commitIndex = p.entry.index
        entriesCommitted += 1
        lastEpoch = p.entry.epoch
        switch p.entry.op {
        case .noop:
            break
        case .enqueue(let t):
            pendingPayloadBytes -= t.payload.count
            queue.apply(enqueue: t)
            if let c = p.client { reply(c, .ok(taskId: t.id, lamport: p.entry.lamport)) }
        case .ack(let id):
            queue.apply(ack: id)
            if let c = p.client { reply(c, .ok(taskId: id, lamport: p.entry.lamport)) }
        }
    }

    /// Time passes: expired leases return their tasks, ended waits answer EMPTY.
    public func tick(now: Int64, wallMs: Int64 = 0) {
        if let election {
            apply(election.tick(now: now))
            timeSync(now: now, wallMs: wallMs)
        }
        for id in queue.expireLeases(now: now) {
            log(.info, "task_requeued", [("node", "\(nodeId)"), ("task", "\(id)"),
                                         ("reason", "lease_expired"), ("lamport", "\(clock.time)")])
        }
        serveWaiters(now: now)
        for w in waiters.expire(now: now) { reply(w.ref, .empty) }
    }

    /// A client connection closed: drop its waits (its leases run their course).
    public func sessionClosed(_ session: UInt64) {
        waiters.remove(session: session)
    }

    public func status(extra: [(String, String)] = []) -> StatusReport {
        StatusReport(id: nodeId, role: role.rawValue, leader: leaderId, epoch: epoch, lamport: clock.time,
                     commit: commitIndex, ready: queue.readyCount, inflight: queue.leasedCount,
                     mailbox: 0, peersUp: election?.peersUp.count ?? 0,
                     offsetMs: role == .leader ? 0 : cristian.offsetMs,
                     extra: [("tasks", "\(queue.count)"), ("members", "\(memberIds.count)")] + extra)
    }

    /// The state as of the last committed entry, for compaction. Only valid
    /// when nothing is in flight (every logged entry is applied).
    public func snapshot() -> QueueSnapshot? {
        guard inflight.isEmpty else { return nil }
        return QueueSnapshot(lastIndex: commitIndex, lastEpoch: lastEpoch, lamport: clock.time,
                             highestTaskId: queue.highestTaskId, tasks: queue.allTasks())
    }

    private func reply(_ ref: ClientRef, _ r: Reply) { effects.append(.reply(ref, r)) }

    private func log(_ level: LogLevel, _ name: String, _ fields: [(String, String)]) {
        effects.append(.log(LogEvent(level, name, fields)))
    }
}
