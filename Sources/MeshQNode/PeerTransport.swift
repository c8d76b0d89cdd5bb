// PeerTransport: the cluster bus. Each node dials every peer and sends only on
// its own outbound connection; what it receives arrives on the peers' outbound
// connections, accepted on its `listen_peer` address. So a link "A can send to
// B" is exactly A's outbound connection to B, which is what the protocol
// modules need to know (`peersUp`). Dialing is non-blocking with a timeout (a
// cut cable drops SYNs silently) and retried with capped exponential backoff
// and jitter. A peer that sends garbage is logged and disconnected; a frame is
// delivered only after a hello named its sender.
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
        init(id: Int, address: HostPort) {
            self.id = id
            self.address = address
        }
    }

    private final class Inbound {
        let conn: Connection
        var reader = PeerFrameReader()
        var peer: Int?
        init(_ c: Connection) { conn = c }
    }

    private let loop: EventLoop
    private let nodeId: Int
    private let logger: Logger
    private var listener: Listener?
    private var outbound: [Int: Outbound] = [:]
    private var inbound: [ObjectIdentifier: Inbound] = [:]
    private var stopped = false
    public var connectTimeoutMs = 1_000
    public static let maxBackoffMs = 2_000
    /// Output past this many bytes means the peer stopped reading: drop it.
    public static let maxPendingBytes = 64 << 20

    /// A decoded envelope from a peer that said hello.
    public var onEnvelope: ((PeerEnvelope) -> Void)?
    public var onLinkUp: ((Int) -> Void)?
    public var onLinkDown: ((Int) -> Void)?

    public init(loop: EventLoop, nodeId: Int, peers: [Int: HostPort], logger: Logger) {
        self.loop = loop
        self.nodeId = nodeId
        self.logger = logger
        for (id, addr) in peers where id != nodeId { outbound[id] = Outbound(id: id, address: addr) }
    }

    public var linksUp: Set<Int> { Set(outbound.values.filter { $0.conn != nil }.map(\.id)) }

    @discardableResult
    public func listen(on address: SocketAddress) throws(ReactorError) -> UInt16 {
        let l = try Listener(loop: loop, address: address) { [unowned self] conn in self.accepted(conn) }
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
        guard let o = outbound[envelope.to], let c = o.conn else { return }
        c.write(envelope.framed())
        if c.pendingOutputBytes > Self.maxPendingBytes {
            logger.log(.warn, "peer_slow", [("node", "\(nodeId)"), ("peer", "\(o.id)"), ("pending_bytes", "\(c.pendingOutputBytes)")])
            c.close()
        }
    }

    // MARK: outbound

    private func dial(_ o: Outbound) {
        guard !stopped, o.conn == nil, !o.connecting else { return }
        o.connecting = true
        let addr: SocketAddress
        do {
            addr = try SocketAddress.resolve(host: o.address.host, port: o.address.port)
        } catch {
            o.connecting = false
            retry(o, reason: "\(error)")
            return
        }
        Connection.connect(loop: loop, to: addr, timeoutMs: connectTimeoutMs) { [weak self, unowned o] conn, err in
            guard let self else { return }
            o.connecting = false
            guard let conn, !self.stopped else {
                conn?.close()
                self.retry(o, reason: err ?? "stopped")
                return
            }
            o.conn = conn
            o.backoffMs = 50
            // Nothing is expected back on this connection; reading detects EOF.
            conn.onReadable = { c in
                var sink: [UInt8] = []
                c.read(into: &sink)
            }
            conn.onClose = { [weak self, unowned o] _, reason in
                guard let self else { return }
                o.conn = nil
                self.logger.log(.info, "peer_down", [("node", "\(self.nodeId)"), ("peer", "\(o.id)"), ("reason", "\(reason)")])
                self.onLinkDown?(o.id)
                self.retry(o, reason: "\(reason)")
            }
            conn.write(PeerEnvelope(from: self.nodeId, to: o.id, lamport: 0, epoch: 0, body: .hello(nodeId: self.nodeId)).framed())
            self.logger.log(.info, "peer_up", [("node", "\(self.nodeId)"), ("peer", "\(o.id)"), ("address", "\(o.address)")])
            self.onLinkUp?(o.id)
        }
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
        conn.onReadable = { [unowned self, unowned i] c in
            i.reader.withBuffer { c.read(into: &$0) }
            self.drain(i)
        }
        conn.onClose = { [weak self] _, _ in self?.inbound.removeValue(forKey: key) }
    }

    private func drain(_ i: Inbound) {
        while i.conn.isOpen, let next = i.reader.next() {
            switch next.flatMap(PeerEnvelope.decode(frame:)) {
            case .failure(let e):
                protocolError(i, "\(e)")
                return
            case .success(let env):
                if case .hello(let id) = env.body {
                    guard id != nodeId, outbound[id] != nil else {
                        protocolError(i, "hello from unknown node \(id)")
                        return
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
