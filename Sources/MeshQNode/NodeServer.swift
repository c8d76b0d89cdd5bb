// NodeServer: drives one NodeCore from the reactor. Client bytes become
// commands for the core; at the end of each loop iteration (a low-priority
// deferred event) the batch the core formed is written to the log with one
// fsync, the core commits it, and every reply produced is written out. Timers
// feed the core `now`; one wake-up timer follows the core's next deadline.
//
// Storage failures: a write refused for lack of space and rolled back halts
// the core (it answers what was in flight with errors and falls silent to
// its peers); every second a probe write tests the data_dir, and once it
// passes, a new core is rebuilt from what is durable (`rebuild`, as at a
// restart) and takes over. Any other failure is fatal (fsyncgate).
import MeshQCore
import MeshQStorage
import Reactor

public final class NodeServer {
    public let loop: EventLoop
    public private(set) var core: NodeCore
    public let logger: Logger
    private var store: NodeStore
    /// Opens the data_dir again and builds a core from it (after a full disk).
    public var rebuild: (() throws -> NodeBoot.Outcome)?
    private var spaceProbe: Timer!
    private var settings: ClusterSettings
    private var listener: Listener?
    /// The `client_tls` port: the same sessions, inside TLS.
    private var tlsListener: Listener?
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
    /// Auth and idle timeouts, delayed wrong-AUTH answers (ClientWatch.swift).
    private var clientWatch: ClientWatch!

    public init(loop: EventLoop, core: NodeCore, store: NodeStore, settings: ClusterSettings, logger: Logger) {
        self.loop = loop
        self.core = core
        core.debugEvents = settings.logLevel <= .debug
        self.store = store
        self.settings = settings
        self.logger = logger
        endOfIteration = DeferredEvent(loop: loop) { [unowned self] in self.iterationEnded() }
        wakeup = Timer(loop: loop) { [unowned self] in self.wakeupFired() }
        spaceProbe = Timer(loop: loop) { [unowned self] in self.probeSpace() }
        clientWatch = ClientWatch(loop: loop, settings: { [unowned self] in self.settings },
                                  sessions: { [unowned self] in self.sessions })
    }

    public var connectionCount: Int { sessions.count }

    /// Starts serving clients on `address` (inside TLS with `tls`: the
    /// client_tls port); returns the bound port.
    @discardableResult
    public func listen(on address: SocketAddress, tls: TLSContext? = nil) throws(ReactorError) -> UInt16 {
        let l = try Listener(loop: loop, address: address, tls: tls) { [unowned self] conn in self.accept(conn) }
        l.onError = { [unowned self] reason in
            self.logger.log(.warn, "accept_failed", [("node", "\(self.core.nodeId)"), ("error", reason)])
        }
        if tls != nil { tlsListener = l } else { listener = l }
        return l.boundPort
    }

    /// New certificates for the TLS client port (SIGHUP): new connections only.
    public func reloadClientTLS(_ context: TLSContext) {
        tlsListener?.tls = context
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
        tlsListener?.close()
        tlsListener = nil
        http?.close()
        http = nil
        transport?.stop()
        // Whatever is proposed but not yet durable is simply not acknowledged.
        for s in Array(sessions.values) { s.connection.close() }
    }

    public func reload(_ new: ClusterSettings) {
        settings = new
        core.reload(new)
        core.debugEvents = new.logLevel <= .debug
        transport?.reload(leaderTimeoutMs: new.leaderTimeoutMs)
        logger.level = new.logLevel
    }

    func checkToken(_ token: String) -> Bool {
        guard let expected = settings.clientToken else { return true }
        return Secrets.equal(Array(token.utf8), Array(expected.utf8))
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
        let toFlush = dirty
        dirty.removeAll(keepingCapacity: true)
        for s in toFlush { s.flushOutput() }
        // Written now, not when the next epoll_wait reports the sockets
        // writable: one loop turn less for every reply and peer message.
        // A drain reported here may resume a paused session's input.
        for s in toFlush { s.connection.flushNow() }
        transport?.flushOutput()
        // Replies may have unblocked sessions that proposed more; their batch
        // is committed on the next iteration, after other sockets had a turn.
        if core.hasProposals { endOfIteration.activate() }
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
            // Right after the write that takes the log past its threshold, not
            // at the next commit: waiting for the commit point to move lets a
            // follower append one more batch first, and the data_dir peaks
            // that much higher (both checks are O(1)).
            if store.compactionRunning || store.logBytes >= store.compactMinBytes {
                compactIfDue()
            }
        }
        // After a failed write, only replies and log lines still apply: the
        // rest of the batch may depend on that write.
        var writeFailed = false
        while core.hasEffects {
            for effect in core.takeEffects() {
                if writeFailed {
                    switch effect {
                    case .reply(let ref, let reply): sessions[ref.session]?.fill(ref.seq, reply)
                    case .log(let event): logger.emit(event)
                    default: break
                    }
                    continue
                }
                switch effect {
                case .reply(let ref, let reply):
                    sessions[ref.session]?.fill(ref.seq, reply)
                case .log(let event):
                    logger.emit(event)
                case .persist(let records):
                    writeFailed = !persist(records)
                case .persistMailbox(let records):
                    do {
                        try store.persistMailbox(records)
                        try store.compactMailboxIfEmpty(core.mailbox)
                    } catch {
                        // A parked task not durable must not be answered QUEUED.
                        storageFailed(error, during: "mailbox write")
                        writeFailed = true
                        continue
                    }
                    core.mailboxPersisted(now: Clock.monotonicMs())
                case .installSnapshot(let snap, let encoded):
                    do {
                        try store.compact(snap, encoded: encoded)
                    } catch {
                        storageFailed(error, during: "snapshot install")
                        writeFailed = true
                        continue
                    }
                    core.persisted(now: Clock.monotonicMs())
                case .sendPeer(let env):
                    transport?.send(env)
                case .resetPeerLink(let id):
                    transport?.reset(id)
                case .rejoined:
                    do {
                        try store.clearRejoining()
                    } catch {
                        // Harmless: the next start catches up once more.
                        logger.log(.warn, "rejoin_marker", [("node", "\(core.nodeId)"), ("error", "\(error)")])
                    }
                case .persistVote(let voted, let promised):
                    do {
                        try store.persistVote(voted: voted, promised: promised)
                    } catch {
                        // A vote that is not durable must not be sent.
                        storageFailed(error, during: "vote write")
                        writeFailed = true
                    }
                }
            }
        }
    }

    /// False when the write failed (the core is halted, or the process ends).
    private func persist(_ records: [LogRecord]) -> Bool {
        let t0 = Clock.monotonicNs()
        // Replication messages queued in this pass leave before the fsync,
        // so the followers' writes overlap ours.
        transport?.flushOutput()
        do {
            try store.persist(records)
        } catch {
            storageFailed(error, during: "log write")
            return false
        }
        core.persisted(now: Clock.monotonicMs())
        metrics.observeCommit(seconds: Double(Clock.monotonicNs() - t0) / 1e9)
        return true
    }

    /// A write failed. Rolled back for lack of space: the core halts (no OK
    /// for anything that needed the write; it steps down and falls silent)
    /// until space returns. Anything else may have lost data that was
    /// answered for (an fsync that failed may have dropped dirty pages, and
    /// retrying proves nothing: fsyncgate), so the process ends.
    private func storageFailed(_ error: Error, during what: String) {
        guard let e = error as? StorageError, e.recoverable, e.isDiskFull, rebuild != nil else {
            onFatal?("\(what) failed: \(error)")
            return
        }
        guard core.halted == nil else { return }
        let wasRole = core.role
        core.halt(now: Clock.monotonicMs(), reason: "disk full")
        logger.log(.error, "node_stalled", [("node", "\(core.nodeId)"), ("reason", "disk_full"), ("during", what),
                                             ("role", wasRole.rawValue),
                                             ("action", "answering errors and silent to peers; probing \(store.directory) "
                                                 + "every second, rebuilding from disk once it takes writes again")])
        spaceProbe.schedule(afterMs: 1_000)
    }

    /// Halted on a full disk: once a probe write passes, rebuild from disk.
    private func probeSpace() {
        guard core.halted != nil, let rebuild else { return }
        do {
            try store.probeSpace()
        } catch {
            spaceProbe.schedule(afterMs: 1_000)
            return
        }
        let old = core
        // A snapshot still being written on its own thread must be done
        // before the data_dir is opened again (committed if it fits, its
        // temporary file gone if not): nothing may write there behind the
        // rebuilt store.
        _ = try? store.finishCompaction(wait: true)
        store.close()
        do {
            switch try rebuild() {
            case .refused:
                onFatal?("the data_dir could not be opened again after a full disk")
                return
            case .ready(let s, let c):
                store = s
                core = c
                c.debugEvents = settings.logLevel <= .debug
            }
        } catch let e as StorageError where e.isDiskFull && e.recoverable {
            spaceProbe.schedule(afterMs: 1_000)
            return
        } catch {
            onFatal?("the data_dir could not be opened again after a full disk: \(error)")
            return
        }
        // Clients of the halted core were all answered; they go on here.
        logger.log(.warn, "node_resumed", [("node", "\(core.nodeId)"), ("reason", "disk has space again"),
                                           ("commit", "\(core.commitIndex)"), ("last", "\(core.lastIndex)"),
                                           ("was_commit", "\(old.commitIndex)"), ("lamport", "\(core.clock.time)")])
        armedWakeup = nil
        wakeup.cancel()
        core.start(now: Clock.monotonicMs())
        applyEffects()
        endOfIteration.activate()
    }

    /// Keeps the stored Lamport floor ahead of the clock (a timer calls it).
    public func advanceLamportFloor() {
        guard core.halted == nil else { return }
        do {
            try store.advanceLamportFloor(clock: core.clock.time)
        } catch {
            storageFailed(error, during: "lamport floor write")
            if core.hasEffects { applyEffects() }
        }
    }

    public func closeStore() {
        store.close()
    }

    private func finishedCompaction() {
        guard let c = compacting else { return }
        compacting = nil
        logger.log(.info, "log_compacted", [("node", "\(core.nodeId)"), ("index", "\(c.index)"),
                                             ("tasks", "\(c.tasks)"), ("tail", "\(c.tail)"),
                                             ("log_bytes_before", "\(c.logBytes)"),
                                             ("took_ms", "\(Clock.monotonicMs() - c.startedMs)")])
    }

    /// The compaction being written, for its log line.
    private var compacting: (index: UInt64, tasks: Int, tail: Int, logBytes: Int, startedMs: Int64)?

    private func compactIfDue() {
        // A halted core's memory may be ahead of its disk: it compacts nothing.
        guard core.halted == nil else { return }
        do {
            // The snapshot is written on its own thread; each later pass checks whether it is done.
            if store.compactionRunning {
                if try store.finishCompaction() { finishedCompaction() }
                return
            }
            // About what the snapshot holds: each task past its payload, and each live key.
            let live = core.store.payloadBytes + 64 * core.store.count + 64 * core.store.keyCount
            // Every record handed out must be durable first: the image's tail is
            // what the old log holds after the commit point.
            guard !core.hasEffects, store.shouldCompact(liveBytes: live) else { return }
            // A small queue is written at once (milliseconds: no thread, and no
            // second copy of what arrives meanwhile); a big one in the background.
            let inBackground = live >= store.backgroundCompactionBytes
            let image = core.compactionImage(sorted: !inBackground)
            compacting = (image.snapshot.lastIndex, image.taskCount, image.tail.count, store.logBytes,
                          Clock.monotonicMs())
            if inBackground {
                try store.startCompaction(image)
            } else {
                try store.compact(image.snapshot, tail: image.tail)
                finishedCompaction()
            }
        } catch {
            storageFailed(error, during: "log compaction")
            if core.hasEffects { applyEffects() }
        }
    }
}
