// PeerTransport: the cluster bus. Each node dials every peer and sends only on
// its own outbound connection; what it receives arrives on the peers' outbound
// connections, accepted on its `listen_peer` address. So a link "A can send to
// B" is exactly A's outbound connection to B, which is what the protocol
// modules need to know (`peersUp`). Dialing is non-blocking with a timeout (a
// cut cable drops SYNs silently) and retried with capped exponential backoff
// and jitter. A peer that sends garbage is logged and disconnected; a frame is
// delivered only after a hello named its sender. With cluster_secret set, the
// accepting side first sends a random challenge and the dialer's hello must
// carry HMAC-SHA256(secret, challenge, direction): the secret never crosses
// the wire, and a recorded proof is useless on any other connection.
//
// With TLS (tls_ca, tls_cert, tls_key) every link is mutual TLS: the dialer
// verifies the acceptor's certificate against tls_ca and the acceptor
// requires and verifies the dialer's. Under TLS 1.3 a client finishes its
// handshake before the server has judged its certificate, so the acceptor
// always sends its challenge on a TLS link and the dialer counts the link up
// only once that arrives (proof empty without a secret, the HMAC with one:
// the secret stays an extra check). A TLS failure is logged as
// `peer_tls_failed` with OpenSSL's reason (once per peer and reason until
// the link comes up; inbound at most once a minute per address and reason).
//
// An open connection is not proof of life (docs/replication.md): NodeCore's
// failure detector judges peers by the frames that arrive and asks for a
// link whose frames no longer get through to be reset (`reset`), which
// closes the connection we send on and dials again. Keepalive and TCP_USER_TIMEOUT on every peer socket are a backstop
// that turns a link dropping packets into a close even when nothing else
// notices.
import MeshQCore
import Reactor

public final class PeerTransport {
    private final class Outbound {
        let id: Int
        let address: HostPort
        var conn: Connection?
        var connecting = false
        var backoffMs = 50
        var timer: Timer?
        var reader = PeerFrameReader()
        var handshakeTimer: Timer?
        var established = false
        var lastTLSFailure: String?
        init(id: Int, address: HostPort) {
            self.id = id
            self.address = address
        }
    }

    private final class Inbound {
        let conn: Connection
        var reader = PeerFrameReader()
        var peer: Int?
        var nonce: [UInt8] = []
        init(_ c: Connection) { conn = c }
    }

    private let loop: EventLoop
    private let nodeId: Int
    private let secret: String?
    private let logger: Logger
    private var listener: Listener?
    private var outbound: [Int: Outbound] = [:]
    private var inbound: [ObjectIdentifier: Inbound] = [:]
    private var stopped = false
    /// Mutual TLS for every link (nil: plain TCP). Replaced by `reloadTLS`.
    private var tls: TLSContext?
    private var inboundTLSLogged: [String: Int64] = [:]
    public var connectTimeoutMs = 1_000
    /// TCP_USER_TIMEOUT and keepalive period for peer sockets.
    private var userTimeoutMs: Int
    /// Test-only fault switch (MESHQ_TEST_CUT_PEERS): links to these peers
    /// are neither dialled nor accepted, as if the cable were cut.
    public var cutPeers: Set<Int> = []
    public static let maxBackoffMs = 2_000
    /// Output past this many bytes means the peer stopped reading: drop it.
    /// Room for a few of the largest legitimate frames (the leader streams up
    /// to 4 batches to a follower, each a batch plus one entry of up to
    /// 64 MiB), so a frame that must go is never the reason a link drops.
    public static let maxPendingBytes = 5 * PeerEnvelope.maxFrameBytes

    /// A decoded envelope from a peer that said hello.
    public var onEnvelope: ((PeerEnvelope) -> Void)?
    public var onLinkUp: ((Int) -> Void)?
    public var onLinkDown: ((Int) -> Void)?

    public init(loop: EventLoop, nodeId: Int, peers: [Int: HostPort], secret: String?, logger: Logger,
                leaderTimeoutMs: Int = 500, tls: TLSContext? = nil) {
        self.loop = loop
        self.tls = tls
        self.userTimeoutMs = Self.userTimeout(leaderTimeoutMs)
        self.nodeId = nodeId
        self.secret = secret
        self.logger = logger
        for (id, addr) in peers where id != nodeId { outbound[id] = Outbound(id: id, address: addr) }
    }

    public var linksUp: Set<Int> { Set(outbound.values.filter { $0.established }.map(\.id)) }

    @discardableResult
    public func listen(on address: SocketAddress) throws(ReactorError) -> UInt16 {
        let l = try Listener(loop: loop, address: address, tls: tls) { [unowned self] conn in self.accepted(conn) }
        listener = l
        return l.boundPort
    }

    public func start() {
        for o in outbound.values { dial(o) }
    }

    public func stop() {
        stopped = true
        listener?.close()
        listener = nil
        for o in outbound.values {
            o.timer = nil
            o.conn?.close()
        }
        for i in inbound.values { i.conn.close() }
    }

    /// Sends on the link to `envelope.to`; dropped when the link is down (the
    /// protocols retransmit what matters: heartbeats, elections, rounds).
    public func send(_ envelope: PeerEnvelope) {
        guard let o = outbound[envelope.to], o.established, let c = o.conn else { return }
        c.write(envelope.framed())
        if c.pendingOutputBytes > Self.maxPendingBytes {
            logger.log(.warn, "peer_slow", [("node", "\(nodeId)"), ("peer", "\(o.id)"), ("pending_bytes", "\(c.pendingOutputBytes)")])
            c.close()
        }
    }

    /// New certificates (SIGHUP): used for links opened from now on; open
    /// links keep the context they were made with.
    public func reloadTLS(_ context: TLSContext) {
        guard tls != nil else { return }
        tls = context
        listener?.tls = context
    }

    /// The dialer waits for the acceptor's challenge before it counts the
    /// link up: with a secret (to answer it) and with TLS (see the header).
    private var awaitsChallenge: Bool { secret != nil || tls != nil }

    private func logTLSFailure(peer: String, remote: String, reason: String) {
        logger.log(.warn, "peer_tls_failed", [("node", "\(nodeId)"), ("peer", peer), ("remote", remote), ("reason", reason)])
    }

    private static func userTimeout(_ leaderTimeoutMs: Int) -> Int { max(1_000, leaderTimeoutMs * 2) }

    /// New timings (SIGHUP): used for the sockets opened from now on.
    public func reload(leaderTimeoutMs: Int) {
        userTimeoutMs = Self.userTimeout(leaderTimeoutMs)
    }

    /// The failure detector found that our frames no longer reach `id`
    /// (it fell silent, or reports not hearing us): close the connection we
    /// send on (what it holds is stale) and dial again. The connection the
    /// peer sends on is its own to reset: under a one-way cut it may be the
    /// direction that still works.
    public func reset(_ id: Int) {
        guard let o = outbound[id], o.conn != nil else { return }
        logger.log(.info, "peer_link_reset", [("node", "\(nodeId)"), ("peer", "\(id)"), ("reason", "silent")])
        o.conn?.close()
    }

    /// Sends what is queued to every peer now (see Connection.flushNow).
    public func flushOutput() {
        for o in outbound.values where o.established { o.conn?.flushNow() }
    }

    // MARK: outbound

    private func dial(_ o: Outbound) {
        guard !stopped, o.conn == nil, !o.connecting, !cutPeers.contains(o.id) else { return }
        o.connecting = true
        let addr: SocketAddress
        do {
            addr = try SocketAddress.resolve(host: o.address.host, port: o.address.port)
        } catch {
            o.connecting = false
            retry(o, reason: "\(error)")
            return
        }
        Connection.connect(loop: loop, to: addr, timeoutMs: connectTimeoutMs, tls: tls) { [weak self, unowned o] conn, err in
            guard let self else { return }
            o.connecting = false
            guard let conn, !self.stopped else {
                conn?.close()
                if let err, err.hasPrefix("tls: "), o.lastTLSFailure != err {
                    o.lastTLSFailure = err
                    self.logTLSFailure(peer: "\(o.id)", remote: "\(o.address)", reason: String(err.dropFirst(5)))
                }
                self.retry(o, reason: err ?? "stopped")
                return
            }
            o.conn = conn
            o.reader = PeerFrameReader()
            conn.setLivenessTimeouts(userTimeoutMs: self.userTimeoutMs)
            conn.onReadable = { [weak self, unowned o] c in
                _ = o.reader.withBuffer { c.read(into: &$0) }
                self?.outboundReadable(o)
            }
            conn.onClose = { [weak self, unowned o] _, reason in
                guard let self else { return }
                let wasUp = o.established
                o.conn = nil
                o.established = false
                o.handshakeTimer = nil
                if wasUp {
                    self.logger.log(.info, "peer_down", [("node", "\(self.nodeId)"), ("peer", "\(o.id)"), ("reason", "\(reason)")])
                    self.onLinkDown?(o.id)
                } else if case .tls(let why) = reason {
                    if o.lastTLSFailure != "tls: \(why)" {
                        o.lastTLSFailure = "tls: \(why)"
                        self.logTLSFailure(peer: "\(o.id)", remote: "\(o.address)", reason: why)
                    }
                } else if self.secret != nil {
                    self.logger.log(.warn, "peer_auth_failed", [("node", "\(self.nodeId)"), ("peer", "\(o.id)"),
                                                                ("reason", "closed during the handshake: is cluster_secret the same on both nodes?")])
                }
                self.retry(o, reason: "\(reason)")
            }
            if !self.awaitsChallenge {
                self.establish(o, proof: [])
            } else {
                // Wait for the acceptor's challenge; a peer without the secret never sends one.
                o.handshakeTimer = Timer(loop: self.loop) { [weak self, unowned o] in
                    guard let self, !o.established else { return }
                    let why = self.secret != nil ? "no challenge: does the peer have cluster_secret set?"
                        : "no challenge over TLS: does the peer accept our certificate?"
                    self.logger.log(.warn, "peer_auth_failed", [("node", "\(self.nodeId)"), ("peer", "\(o.id)"), ("reason", why)])
                    o.conn?.close()
                }
                o.handshakeTimer?.schedule(afterMs: self.connectTimeoutMs)
            }
        }
    }

    private func establish(_ o: Outbound, proof: [UInt8]) {
        guard let conn = o.conn else { return }
        o.handshakeTimer = nil
        o.established = true
        o.lastTLSFailure = nil
        o.backoffMs = 50
        conn.write(PeerEnvelope(from: nodeId, to: o.id, lamport: 0, epoch: 0, body: .hello(nodeId: nodeId, proof: proof)).framed())
        logger.log(.info, "peer_up", [("node", "\(nodeId)"), ("peer", "\(o.id)"), ("address", "\(o.address)")])
        onLinkUp?(o.id)
    }

    /// The only thing an acceptor sends us is its challenge; after that,
    /// reading just detects the end of the connection.
    private func outboundReadable(_ o: Outbound) {
        guard !o.established else {
            o.reader = PeerFrameReader()
            return
        }
        guard let next = o.reader.next() else { return }
        guard case .success(let env) = next.flatMap(PeerEnvelope.decode(frame:)),
              case .challenge(let nonce) = env.body, !nonce.isEmpty, awaitsChallenge else {
            logger.log(.warn, "peer_protocol_error", [("node", "\(nodeId)"), ("peer", "\(o.id)"),
                                                      ("error", "expected a challenge from the peer")])
            o.conn?.close()
            return
        }
        establish(o, proof: secret.map { Secrets.peerProof(secret: $0, nonce: nonce, from: nodeId, to: o.id) } ?? [])
    }

    private func retry(_ o: Outbound, reason: String) {
        guard !stopped else { return }
        // Jitter spreads reconnects so restarted nodes do not dial in lockstep.
        let delay = o.backoffMs / 2 + Int.random(in: 0...max(1, o.backoffMs / 2))
        o.backoffMs = min(Self.maxBackoffMs, o.backoffMs * 2)
        if o.timer == nil { o.timer = Timer(loop: loop) { [weak self, unowned o] in self?.dial(o) } }
        o.timer?.schedule(afterMs: delay)
        logger.log(.debug, "peer_dial_failed", [("node", "\(nodeId)"), ("peer", "\(o.id)"), ("error", reason),
                                                ("retry_ms", "\(delay)")])
    }

    // MARK: inbound

    private func accepted(_ conn: Connection) {
        let i = Inbound(conn)
        let key = ObjectIdentifier(conn)
        inbound[key] = i
        conn.setLivenessTimeouts(userTimeoutMs: userTimeoutMs)
        conn.onReadable = { [unowned self, unowned i] c in
            _ = i.reader.withBuffer { c.read(into: &$0) }
            self.drain(i)
        }
        conn.onClose = { [weak self, unowned i] c, reason in
            guard let self else { return }
            let named = i.peer != nil
            self.inbound.removeValue(forKey: key)
            if case .tls(let why) = reason, !named { self.inboundTLSFailed(remote: c.peerDescription, reason: why) }
        }
        if secret != nil || conn.isTLS {
            var rng = SystemRandomNumberGenerator()
            i.nonce = (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }
            conn.write(PeerEnvelope(from: nodeId, to: 0, lamport: 0, epoch: 0, body: .challenge(nonce: i.nonce)).framed())
        }
    }

    private func inboundTLSFailed(remote: String, reason: String) {
        let host = remote.lastIndex(of: ":").map { String(remote[..<$0]) } ?? remote
        let key = "\(host) \(reason)"
        let now = Clock.monotonicMs()
        if let last = inboundTLSLogged[key], now - last < 60_000 { return }
        if inboundTLSLogged.count > 1_000 { inboundTLSLogged.removeAll() }
        inboundTLSLogged[key] = now
        logTLSFailure(peer: "-", remote: remote, reason: reason)
    }

    private func drain(_ i: Inbound) {
        while i.conn.isOpen, let next = i.reader.next() {
            switch next.flatMap(PeerEnvelope.decode(frame:)) {
            case .failure(let e):
                protocolError(i, "\(e)")
                return
            case .success(let env):
                if case .hello(let id, let proof) = env.body {
                    if cutPeers.contains(id) {
                        i.conn.close()
                        return
                    }
                    guard i.peer == nil, id != nodeId, outbound[id] != nil else {
                        protocolError(i, "hello from unknown node \(id)")
                        return
                    }
                    if let secret {
                        let expected = Secrets.peerProof(secret: secret, nonce: i.nonce, from: id, to: nodeId)
                        guard Secrets.equal(proof, expected) else {
                            logger.log(.warn, "peer_auth_failed", [("node", "\(nodeId)"), ("peer", "\(id)"),
                                                                   ("remote", i.conn.peerDescription),
                                                                   ("reason", "wrong or missing cluster_secret proof")])
                            i.conn.close()
                            return
                        }
                    }
                    i.peer = id
                    continue
                }
                guard let peer = i.peer, env.from == peer, env.to == nodeId else {
                    protocolError(i, "frame from \(env.from) to \(env.to) on a link of \(i.peer.map(String.init) ?? "nobody")")
                    return
                }
                onEnvelope?(env)
            }
        }
    }

    private func protocolError(_ i: Inbound, _ what: String) {
        logger.log(.warn, "peer_protocol_error", [("node", "\(nodeId)"), ("peer", i.peer.map(String.init) ?? "?"),
                                                  ("remote", i.conn.peerDescription), ("error", what)])
        i.conn.close()
    }
}
