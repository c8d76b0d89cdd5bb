// Daemon: one node from its config file to the running loop, for meshqd (the
// process: its command line, logger and service-manager notices are meshqd's).
// Order matters for the contract: the config is checked before anything
// touches data_dir (a bad file changes nothing), the data_dir lock is taken
// before the log is opened (a second daemon exits non-zero), and the node is
// recovered before it listens, so no client is answered from a half-loaded
// state.
import Foundation
import MeshQCore
import MeshQStorage
import Reactor

/// What the node tells whoever supervises the process (meshqd: systemd's
/// notify protocol). Called on the loop's thread.
public enum NodeNotice {
    /// Every change of role, leader or epoch; `joined` the first time the node
    /// has a leader (it leads, or follows one): from then on it serves.
    case role(StatusReport, joined: Bool)
    /// SIGHUP: the config is being re-read, then it has been (or kept).
    case reloading, reloaded
    /// The loop has stopped; the store is being closed.
    case stopping
    /// The loop is turning (every `Supervisor.heartbeatMs`).
    case alive
}

/// Who hears the node's notices, and how often it wants to hear `.alive`.
public struct Supervisor {
    /// How often to send `.alive`; nil: never.
    public var heartbeatMs: Int?
    public var notify: (NodeNotice) -> Void

    public init(heartbeatMs: Int?, notify: @escaping (NodeNotice) -> Void) {
        self.heartbeatMs = heartbeatMs
        self.notify = notify
    }
}

public enum Daemon {
    struct LoadError: Error { let message: String }

    /// The cluster configuration at `path` (at start and at SIGHUP); a failure
    /// names the file (and the line and key when the text is at fault).
    static func loadConfig(_ path: String) -> Result<MeshQConfig, LoadError> {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file"
            return .failure(LoadError(message: "\(path): cannot read: \(reason)"))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return .failure(LoadError(message: "\(path):1: the file is not UTF-8 text"))
        }
        do {
            return .success(try ConfigParser.parse(text, file: path, readFile: ConfigFiles.read))
        } catch {
            return .failure(LoadError(message: "\(error)"))
        }
    }

    /// One node of a checked config, with its TLS files read.
    public struct Node {
        public let config: MeshQConfig
        public let me: NodeConfig
        public let configPath: String
        let tls: TLSContexts

        /// What `meshqd --check` prints.
        public var summary: String { config.summary(for: me.id) }
    }

    /// Why a node cannot start from this file: the message names the file (and
    /// line and key when one is at fault). Nothing has been touched.
    public struct StartError: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Reads `configPath` and picks node `id` (nil: the file's only node).
    /// TLS key files are read and checked here, so `--check` checks them too.
    public static func node(configPath: String, id: Int?) -> Result<Node, StartError> {
        let config: MeshQConfig
        switch loadConfig(configPath) {
        case .success(let c): config = c
        case .failure(let e): return .failure(StartError(message: "config error: \(e.message)"))
        }
        let ids = config.nodes.map { String($0.id) }.joined(separator: ", ")
        guard let id = id ?? (config.nodes.count == 1 ? config.nodes[0].id : nil) else {
            return .failure(StartError(message: "--id is required: \(configPath) has nodes \(ids)"))
        }
        guard let me = config.node(id) else {
            return .failure(StartError(message: "config error: \(configPath): no [node.\(id)] section (nodes: \(ids))"))
        }
        switch TLSSetup.load(me.tls, configFile: configPath) {
        case .success(let tls): return .success(Node(config: config, me: me, configPath: configPath, tls: tls))
        case .failure(let e): return .failure(StartError(message: "config error: \(e)"))
        }
    }

    /// Runs `node` until SIGTERM or SIGINT (0) or a fatal error (1, logged);
    /// returns the process exit status.
    public static func serve(_ start: Node, repair: Bool, logger: Logger, environment: [String: String],
                             supervisor: Supervisor? = nil) -> Int32 {
        let (config, me, configPath, tls) = (start.config, start.me, start.configPath, start.tls)
        let node = "\(me.id)"
        func fail(_ event: String, _ error: String) -> Int32 {
            logger.log(.error, event, [("node", node), ("error", error)])
            return 1
        }

        let lock: DataDirectoryLock
        do {
            lock = try DataDirectoryLock.acquire(directory: me.dataDir)
        } catch {
            return fail("data_dir_locked", "\(error)")
        }
        defer { lock.release() }

        let store: NodeStore
        let core: NodeCore
        do {
            switch try NodeBoot.open(config: config, me: me, repair: repair, logger: logger, environment: environment) {
            case .refused(let status): return status
            case .ready(let s, let c): (store, core) = (s, c)
            }
        } catch {
            return fail("recovery_failed", "\(error)")
        }

        let loop = EventLoop()
        let fdLimit = FileLimit.raise()
        let server = NodeServer(loop: loop, core: core, store: store, settings: config.cluster, logger: logger)
        var exitCode: Int32 = 0
        server.onFatal = { reason in
            logger.log(.error, "fatal", [("node", node), ("error", reason)])
            exitCode = 1
            loop.stop()
        }
        // The Lamport floor is kept ahead of the clock by a check every 100 ms.
        let floorTimer = Reactor.Timer(loop: loop, repeating: true) { server.advanceLamportFloor() }
        floorTimer.schedule(afterMs: 100)

        var bound: UInt16 = 0
        if me.tls.clientPlain {
            do {
                let addr = try SocketAddress.resolve(host: me.listenClient.host, port: me.listenClient.port)
                bound = try server.listen(on: addr)
            } catch {
                return fail("listen_failed", "client \(me.listenClient): \(error)")
            }
        }
        var tlsBound: UInt16?
        if let ctx = tls.client, let hp = me.tls.clientTLS {
            do {
                tlsBound = try server.listen(on: try SocketAddress.resolve(host: hp.host, port: hp.port), tls: ctx)
            } catch {
                return fail("listen_failed", "client_tls \(hp): \(error)")
            }
        }

        let exposed = PeerSecurity.exposedPeerAddresses(config, node: me)
        if !exposed.isEmpty {
            logger.log(.warn, "insecure_peer_port", [("node", node), ("peers", exposed.map(\.description).joined(separator: ",")),
                                                     ("hint", "set cluster_secret or mutual TLS (tls_ca, tls_cert, tls_key): anyone who reaches these ports can join the cluster")])
        }
        var transport: PeerTransport?
        if config.nodes.count > 1 {
            let peers = Dictionary(uniqueKeysWithValues: config.nodes.map { ($0.id, $0.peer) })
            let t = PeerTransport(loop: loop, nodeId: me.id, peers: peers, secret: config.cluster.clusterSecret, logger: logger,
                                  leaderTimeoutMs: config.cluster.leaderTimeoutMs, tls: tls.peer)
            t.connectTimeoutMs = max(200, min(2_000, config.cluster.leaderTimeoutMs))
            #if MESHQ_TESTING
            // Test-only fault switch, compiled only with -D MESHQ_TESTING (`make test`).
            if let cut = environment["MESHQ_TEST_CUT_PEERS"] {
                t.cutPeers = Set(cut.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) })
                logger.log(.warn, "test_fault_cut_peers", [("node", node), ("peers", t.cutPeers.sorted().map(String.init).joined(separator: ","))])
            }
            #endif
            do {
                let addr = try SocketAddress.resolve(host: me.listenPeer.host, port: me.listenPeer.port)
                try t.listen(on: addr)
            } catch {
                return fail("listen_failed", "peer \(me.listenPeer): \(error)")
            }
            transport = t
        }

        var metricsPort: UInt16?
        if let m = me.metrics {
            do {
                metricsPort = try server.serveMetrics(host: m.host, port: m.port)
            } catch {
                return fail("listen_failed", "metrics \(m): \(error)")
            }
        }

        var current = config
        // After a full disk: the data_dir again, with the settings in force now.
        server.rebuild = {
            try NodeBoot.open(config: current, me: me, repair: false, logger: logger, environment: environment)
        }
        let notify = supervisor?.notify ?? { _ in }
        let stop = { (signal: String) in
            logger.log(.info, "signal", [("node", node), ("signal", signal)])
            server.shutdown()
            loop.stop()
        }
        let term = SignalWatcher(loop: loop, signal: SIGTERM) { stop("TERM") }
        let int = SignalWatcher(loop: loop, signal: SIGINT) { stop("INT") }
        let hup = SignalWatcher(loop: loop, signal: SIGHUP) {
            notify(.reloading)
            switch loadConfig(configPath) {
            case .failure(let e):
                logger.log(.warn, "config_reload_failed", [("node", node), ("error", e.message), ("kept", "old values")])
            case .success(let new):
                let changes = current.cluster.reloadableChanges(to: new.cluster)
                let applied = current.cluster.reloaded(from: new.cluster)
                server.reload(applied)
                current.cluster = applied
                var fields = [("node", node), ("changed", "\(changes.count)")]
                for c in changes { fields.append((c.key, "\(c.old)->\(c.new)")) }
                logger.log(.info, "config_reloaded", fields)
                let restart = current.cluster.nonReloadableChanges(to: new.cluster)
                if !restart.isEmpty {
                    logger.log(.warn, "config_needs_restart", [("node", node), ("keys", restart.joined(separator: ","))])
                }
                TLSSetup.reload(from: new, running: me.tls, nodeId: me.id, configFile: configPath,
                                server: server, transport: transport, logger: logger)
            }
            notify(.reloaded)
        }

        var heartbeat: Reactor.Timer?
        if let ms = supervisor?.heartbeatMs {
            heartbeat = Reactor.Timer(loop: loop, repeating: true) { notify(.alive) }
            heartbeat?.schedule(afterMs: max(1, ms))
        }

        logger.log(.info, "node_started", [("node", node),
                                           ("client", me.tls.clientPlain ? "\(me.listenClient.host):\(bound)" : "off"),
                                           ("client_tls", tlsBound.map { "\(me.tls.clientTLS!.host):\($0)" } ?? "-"),
                                           ("peer_tls", tls.peer == nil ? "off" : "mutual"),
                                           ("data_dir", me.dataDir), ("fsync", config.cluster.fsync.rawValue),
                                           ("backend", loop.method), ("max_fds", "\(fdLimit)"),
                                           ("members", "\(config.nodes.count)"),
                                           ("metrics", metricsPort.map { "\(me.metrics!.host):\($0)" } ?? "-")])
        // Joined once the node leads or follows a leader (a cluster of one
        // leads as soon as it has recovered).
        var joined = false
        server.onRoleChange = { s in
            let first = !joined && s.leader != nil
            if first { joined = true }
            notify(.role(s, joined: first))
        }
        server.start()
        if let transport { server.connectPeers(transport) }

        loop.run()

        notify(.stopping)
        withExtendedLifetime((term, int, hup, heartbeat, floorTimer)) {}
        server.closeStore()
        let last = server.core
        logger.log(.info, "node_stopped", [("node", node), ("epoch", "\(last.epoch)"),
                                           ("commit", "\(last.commitIndex)"), ("lamport", "\(last.clock.time)")])
        return exitCode
    }
}
