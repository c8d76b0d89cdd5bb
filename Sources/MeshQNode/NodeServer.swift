// NodeServer: drives one NodeCore from the reactor. Client bytes become
// commands for the core; at the end of each loop iteration (a low-priority
// deferred event) the batch the core formed is written to the log with one
// fsync, the core commits it, and every reply produced is written out. Timers
// feed the core `now`; one wake-up timer follows the core's next deadline.
import MeshQCore
import Reactor

public final class NodeServer {
    public let loop: EventLoop
    public let core: NodeCore
    public let logger: Logger
    private let store: NodeStore
    private var settings: ClusterSettings
    private var listener: Listener?
    private var sessions: [UInt64: ClientSession] = [:]
    private var nextSessionId: UInt64 = 1
    private var dirty: [ClientSession] = []
    private var endOfIteration: DeferredEvent!
    private var wakeup: Timer!
    private var armedWakeup: Int64?
    /// (role, leader, epoch) changed: systemd's STATUS= line follows it.
    public var onRoleChange: ((StatusReport) -> Void)?
    private var reportedRole: String?
    /// A failed fsync: we must never answer OK again; the process exits.
    public var onFatal: ((String) -> Void)?
    public private(set) var connectionsAccepted = 0
    public let metrics = NodeMetrics()
    private var http: HTTPServer?
    private var transport: PeerTransport?

    public init(loop: EventLoop, core: NodeCore, store: NodeStore, settings: ClusterSettings, logger: Logger) {
        self.loop = loop
        self.core = core
        self.store = store
        self.settings = settings
        self.logger = logger
        endOfIteration = DeferredEvent(loop: loop) { [unowned self] in self.iterationEnded() }
        wakeup = Timer(loop: loop) { [unowned self] in self.wakeupFired() }
    }

    public var connectionCount: Int { sessions.count }

    /// Starts serving clients on `address`; returns the bound port.
    @discardableResult
    public func listen(on address: SocketAddress) throws(ReactorError) -> UInt16 {
        let l = try Listener(loop: loop, address: address) { [unowned self] conn in self.accept(conn) }
        l.onError = { [unowned self] reason in
            self.logger.log(.warn, "accept_failed", [("node", "\(self.core.nodeId)"), ("error", reason)])
        }
        listener = l
        return l.boundPort
    }

    /// Serves Prometheus text on /metrics and leader knowledge on /health.
    @discardableResult
    public func serveMetrics(host: String, port: UInt16) throws(ReactorError) -> UInt16 {
        let h = try HTTPServer(loop: loop, host: host, port: port) { [unowned self] path in
            switch path {
            case "/metrics":
                return .init(contentType: "text/plain; version=0.0.4; charset=utf-8",
                             body: self.metrics.render(core: self.core, connections: self.sessions.count))
            case "/health":
                let s = self.core.status()
                let line = "role=\(s.role) leader=\(s.leader.map(String.init) ?? "-") epoch=\(s.epoch)\n"
                return .init(status: s.leader == nil ? 503 : 200, body: line)
            default:
                return .init(status: 404, body: "not found: try /metrics or /health\n")
            }
        }
        http = h
        return h.boundPort
    }

    /// Joins the cluster bus: listens for peers and dials each of them.
    public func connectPeers(_ t: PeerTransport) {
        transport = t
        t.onEnvelope = { [unowned self] env in
            self.core.peerMessage(env, now: Clock.monotonicMs(), wallMs: Clock.wallMs())
            self.afterInput()
        }
        t.onLinkUp = { [unowned self] id in
            self.core.peerUp(id, now: Clock.monotonicMs())
            self.afterInput()
        }
        t.onLinkDown = { [unowned self] id in
            self.core.peerDown(id, now: Clock.monotonicMs())
            self.afterInput()
        }
        t.start()
    }

    private func afterInput() {
        if core.hasEffects { applyEffects() }
        endOfIteration.activate()
    }

    public func start() {
        core.start(now: Clock.monotonicMs())
        applyEffects()
        endOfIteration.activate()
    }

    /// Stops accepting and closes every client (SIGTERM).
    public func shutdown() {
        listener?.close()
        listener = nil
        http?.close()
        http = nil
        transport?.stop()
        // Whatever is proposed but not yet durable is simply not acknowledged.
        for s in Array(sessions.values) { s.connection.close() }
    }

    public func reload(_ new: ClusterSettings) {
        settings = new
        core.reload(new)
        transport?.reload(leaderTimeoutMs: new.leaderTimeoutMs)
        logger.level = new.logLevel
    }

    func checkToken(_ token: String) -> Bool {
        guard let expected = settings.clientToken else { return true }
        return constantTimeEqual(Array(token.utf8), Array(expected.utf8))
    }

    // MARK: clients

    private func accept(_ conn: Connection) {
        connectionsAccepted += 1
        guard sessions.count < settings.maxConnections else {
            conn.write(Reply.error(.busy, "too many connections (max_connections=\(settings.maxConnections))").line)
            conn.closeAfterFlush()
            return
        }
        let id = nextSessionId
        nextSessionId += 1
        let s = ClientSession(id: id, connection: conn, server: self,
                              maxLineBytes: settings.maxPayloadBytes + 64,
                              needsAuth: settings.clientToken != nil)
        sessions[id] = s
        conn.onReadable = { [unowned s, unowned self] _ in
            s.readable()
            self.endOfIteration.activate()
        }
        conn.onDrained = { [unowned s] _ in s.drained() }
        conn.onEndOfInput = { [unowned s, unowned self] _ in
            s.endOfInput()
            self.endOfIteration.activate()
        }
        conn.onClose = { [unowned self] _, _ in self.closed(id) }
    }

    private func closed(_ id: UInt64) {
        guard sessions.removeValue(forKey: id) != nil else { return }
        core.sessionClosed(id)
    }

    func submit(_ cmd: ClientCommand, seq: UInt64, session: ClientSession) {
        core.handle(cmd, from: ClientRef(session: session.id, seq: seq), owner: session.owner,
                    now: Clock.monotonicMs(), wallMs: Clock.wallMs())
        if core.hasEffects { applyEffects() }
        if core.hasProposals { endOfIteration.activate() }
    }

    func markDirty(_ s: ClientSession) {
        guard !s.isDirty else { return }
        s.isDirty = true
        dirty.append(s)
        endOfIteration.activate()
    }

    // MARK: the loop's rhythm

    /// Group commit: everything read during this iteration is one batch.
    private func iterationEnded() {
        if core.hasProposals {
            core.flush(now: Clock.monotonicMs())
            applyEffects()
        }
        // Replies may have unblocked sessions that proposed more; their batch
        // is committed on the next iteration, after other sockets had a turn.
        if core.hasProposals { endOfIteration.activate() }
        let toFlush = dirty
        dirty.removeAll(keepingCapacity: true)
        for s in toFlush { s.flushOutput() }
        armWakeup()
    }

    private func wakeupFired() {
        armedWakeup = nil
        core.tick(now: Clock.monotonicMs(), wallMs: Clock.wallMs())
        applyEffects()
        endOfIteration.activate()
    }

    private func armWakeup() {
        guard let next = core.nextWakeup() else {
            if armedWakeup != nil { wakeup.cancel(); armedWakeup = nil }
            return
        }
        if armedWakeup == next { return }
        armedWakeup = next
        wakeup.schedule(afterMs: Int(max(0, next - Clock.monotonicMs())) + 1)
    }

    private func reportRoleIfChanged() {
        let s = core.status()
        let key = "\(s.role) \(s.leader.map(String.init) ?? "-") \(s.epoch)"
        guard key != reportedRole else { return }
        reportedRole = key
        onRoleChange?(s)
    }

    private func applyEffects() {
        defer {
            reportRoleIfChanged()
            // Against the last commit point checked, not the one on entry: in a
            // cluster the commit moves while a peer message is handled, before this runs.
            if core.commitIndex != compactCheckedAt || store.compactionRunning {
                compactCheckedAt = core.commitIndex
                compactIfDue()
            }
        }
        while core.hasEffects {
            for effect in core.takeEffects() {
                switch effect {
                case .reply(let ref, let reply):
                    sessions[ref.session]?.fill(ref.seq, reply)
                case .log(let event):
                    logger.emit(event)
                case .persist(let records):
                    persist(records)
                case .persistMailbox(let records):
                    do {
                        try store.persistMailbox(records)
                        try store.compactMailboxIfEmpty(core.mailbox)
                    } catch {
                        // A parked task not durable must not be answered QUEUED.
                        onFatal?("mailbox write failed: \(error)")
                        return
                    }
                    core.mailboxPersisted(now: Clock.monotonicMs())
                case .installSnapshot(let snap):
                    do {
                        try store.compact(snap)
                    } catch {
                        onFatal?("snapshot install failed: \(error)")
                        return
                    }
                    core.persisted(now: Clock.monotonicMs())
                case .sendPeer(let env):
                    transport?.send(env)
                case .resetPeerLink(let id):
                    transport?.reset(id)
                case .persistVote(let voted, let promised):
                    do {
                        try store.persistVote(voted: voted, promised: promised)
                    } catch {
                        // A vote that is not durable must not be sent.
                        onFatal?("vote write failed: \(error)")
                        return
                    }
                }
            }
        }
    }

    private func persist(_ records: [LogRecord]) {
        let t0 = Clock.monotonicNs()
        // Replication messages queued in this pass leave before the fsync,
        // so the followers' writes overlap ours.
        transport?.flushOutput()
        do {
            try store.persist(records)
        } catch {
            // An fsync that failed may have dropped the data: answering OK now
            // would be a lie, and retrying cannot be trusted (fsyncgate).
            onFatal?("log write failed: \(error)")
            return
        }
        core.persisted(now: Clock.monotonicMs())
        metrics.observeCommit(seconds: Double(Clock.monotonicNs() - t0) / 1e9)
    }

    private func finishedCompaction() {
        guard let c = compacting else { return }
        compacting = nil
        logger.log(.info, "log_compacted", [("node", "\(core.nodeId)"), ("index", "\(c.index)"),
                                             ("tasks", "\(c.tasks)"), ("tail", "\(c.tail)"),
                                             ("log_bytes_before", "\(c.logBytes)"),
                                             ("took_ms", "\(Clock.monotonicMs() - c.startedMs)")])
    }

    /// The commit point at the last compaction check.
    private var compactCheckedAt: UInt64 = 0
    /// The compaction being written, for its log line.
    private var compacting: (index: UInt64, tasks: Int, tail: Int, logBytes: Int, startedMs: Int64)?

    private func compactIfDue() {
        do {
            // The snapshot is written on its own thread; each later pass checks whether it is done.
            if store.compactionRunning {
                if try store.finishCompaction() { finishedCompaction() }
                return
            }
            let live = core.queue.payloadBytes + 64 * core.queue.count
            // Every record handed out must be durable first: the image's tail is
            // what the old log holds after the commit point.
            guard !core.hasEffects, store.shouldCompact(liveBytes: live) else { return }
            // A small queue is written at once (milliseconds: no thread, and no
            // second copy of what arrives meanwhile); a big one in the background.
            let inBackground = live >= store.backgroundCompactionBytes
            let image = core.compactionImage(sorted: !inBackground)
            compacting = (image.snapshot.lastIndex, image.snapshot.tasks.count, image.tail.count, store.logBytes,
                          Clock.monotonicMs())
            if inBackground {
                try store.startCompaction(image)
            } else {
                try store.compact(image.snapshot, tail: image.tail)
                finishedCompaction()
            }
        } catch {
            onFatal?("log compaction failed: \(error)")
        }
    }
}

/// Token comparison whose time does not depend on where the first difference is.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var diff = UInt8(a.count == b.count ? 0 : 1)
    for i in 0..<max(a.count, b.count) {
        diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
    }
    return diff == 0
}
