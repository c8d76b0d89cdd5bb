// Daemon: meshqd from the command line to the running loop. Order matters for
// the contract: arguments and the config are checked before anything touches
// data_dir (a bad file exits 2 and changes nothing), the data_dir lock is
// taken before the log is opened (a second daemon exits non-zero), and the
// node is recovered before it listens, so no client is answered from a
// half-loaded state.
import Foundation
import MeshQCore
import MeshQStorage
import Reactor

public enum Daemon {
    public static let usage = """
        usage: meshqd [--config FILE] --id N [--check] [--repair]
          --config FILE  cluster configuration (default /etc/meshq/meshq.conf)
          --id N         which [node.N] of the file this process runs
          --check        validate the file, print a summary, exit 0 (or 2)
          --repair       start even if the log is corrupt: keep the records before
                         the damaged write, move the rest aside (<log>.corrupt-at-<offset>)
        """

    struct Arguments {
        var config = "/etc/meshq/meshq.conf"
        var id: Int?
        var check = false
        var repair = false
    }

    static func parse(_ args: [String]) -> Result<Arguments?, UsageError> {
        var a = Arguments()
        var i = 0
        func value(_ flag: String) -> Result<String, UsageError> {
            i += 1
            guard i < args.count else { return .failure(UsageError("\(flag) needs a value")) }
            return .success(args[i])
        }
        while i < args.count {
            var arg = args[i]
            var inline: String?
            if arg.hasPrefix("--"), let eq = arg.firstIndex(of: "=") {
                inline = String(arg[arg.index(after: eq)...])
                arg = String(arg[..<eq])
            }
            switch arg {
            case "--config", "-c":
                switch inline.map({ .success($0) }) ?? value(arg) {
                case .success(let v): a.config = v
                case .failure(let e): return .failure(e)
                }
            case "--id":
                let v: String
                switch inline.map({ .success($0) }) ?? value(arg) {
                case .success(let s): v = s
                case .failure(let e): return .failure(e)
                }
                guard let n = Int(v), n > 0 else { return .failure(UsageError("--id takes a positive integer, got '\(v)'")) }
                a.id = n
            case "--check":
                a.check = true
            case "--repair":
                a.repair = true
            case "--help", "-h":
                return .success(nil)
            default:
                return .failure(UsageError("unknown argument '\(args[i])'"))
            }
            i += 1
        }
        return .success(a)
    }

    struct UsageError: Error { let message: String; init(_ m: String) { message = m } }

    struct LoadError: Error { let message: String }

    static func loadConfig(_ path: String) -> Result<MeshQConfig, LoadError> {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file"
            return .failure(LoadError(message: "\(path): cannot read: \(reason)"))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return .failure(LoadError(message: "\(path):1: the file is not UTF-8 text"))
        }
        do {
            return .success(try ConfigParser.parse(text, file: path))
        } catch {
            return .failure(LoadError(message: "\(error)"))
        }
    }

    static func stderr(_ s: String) {
        FileHandle.standardError.write((s.hasSuffix("\n") ? s : s + "\n").data(using: .utf8)!)
    }

    /// Runs meshqd; returns the process exit status.
    public static func run(arguments: [String], environment: [String: String]) -> Int32 {
        let args: Arguments
        switch parse(arguments) {
        case .success(nil):
            print(usage)
            return 0
        case .success(let a?):
            args = a
        case .failure(let e):
            stderr("meshqd: \(e.message)\n\(usage)")
            return 2
        }
        let config: MeshQConfig
        switch loadConfig(args.config) {
        case .success(let c): config = c
        case .failure(let e):
            stderr("meshqd: config error: \(e.message)")
            return 2
        }
        guard let id = args.id ?? (config.nodes.count == 1 ? config.nodes[0].id : nil) else {
            stderr("meshqd: --id is required: \(args.config) has nodes \(config.nodes.map { String($0.id) }.joined(separator: ", "))")
            return 2
        }
        guard let me = config.node(id) else {
            stderr("meshqd: config error: \(args.config): no [node.\(id)] section (nodes: \(config.nodes.map { String($0.id) }.joined(separator: ", ")))")
            return 2
        }
        if args.check {
            print(config.summary(for: id))
            return 0
        }
        return serve(config: config, me: me, configPath: args.config, repair: args.repair, environment: environment)
    }

    static func serve(config: MeshQConfig, me: NodeConfig, configPath: String, repair: Bool,
                      environment: [String: String]) -> Int32 {
        let logger = Logger(level: config.cluster.logLevel, environment: environment)
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

        let bound: UInt16
        do {
            let addr = try SocketAddress.resolve(host: me.listenClient.host, port: me.listenClient.port)
            bound = try server.listen(on: addr)
        } catch {
            return fail("listen_failed", "client \(me.listenClient): \(error)")
        }

        var transport: PeerTransport?
        if config.nodes.count > 1 {
            let peers = Dictionary(uniqueKeysWithValues: config.nodes.map { ($0.id, $0.peer) })
            let t = PeerTransport(loop: loop, nodeId: me.id, peers: peers, secret: config.cluster.clusterSecret, logger: logger,
                                  leaderTimeoutMs: config.cluster.leaderTimeoutMs)
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
        let notifier = SystemdNotifier(environment: environment)
        let stop = { (signal: String) in
            logger.log(.info, "signal", [("node", node), ("signal", signal)])
            server.shutdown()
            loop.stop()
        }
        let term = SignalWatcher(loop: loop, signal: SIGTERM) { stop("TERM") }
        let int = SignalWatcher(loop: loop, signal: SIGINT) { stop("INT") }
        let hup = SignalWatcher(loop: loop, signal: SIGHUP) {
            notifier?.notify("RELOADING=1")
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
            }
            notifier?.notify("READY=1")
        }

        var watchdog: Reactor.Timer?
        if let n = notifier, let ms = SystemdNotifier.watchdogIntervalMs(environment: environment) {
            watchdog = Reactor.Timer(loop: loop, repeating: true) { n.notify("WATCHDOG=1") }
            watchdog?.schedule(afterMs: max(1, ms / 2))
        }

        logger.log(.info, "node_started", [("node", node), ("client", "\(me.listenClient.host):\(bound)"),
                                           ("data_dir", me.dataDir), ("fsync", config.cluster.fsync.rawValue),
                                           ("backend", loop.method), ("max_fds", "\(fdLimit)"),
                                           ("members", "\(config.nodes.count)"),
                                           ("metrics", metricsPort.map { "\(me.metrics!.host):\($0)" } ?? "-")])
        // READY=1 once the node has joined: it leads, or follows a leader (a
        // cluster of one leads as soon as it has recovered). STATUS= follows
        // every change of role, leader or epoch.
        var ready = false
        server.onRoleChange = { s in
            var msg = "STATUS=role=\(s.role) leader=\(s.leader.map(String.init) ?? "-") epoch=\(s.epoch)"
            if !ready && s.leader != nil {
                ready = true
                msg = "READY=1\n" + msg
            }
            notifier?.notify(msg)
        }
        server.start()
        if let transport { server.connectPeers(transport) }

        loop.run()

        notifier?.notify("STOPPING=1")
        withExtendedLifetime((term, int, hup, watchdog, floorTimer)) {}
        server.closeStore()
        let last = server.core
        logger.log(.info, "node_stopped", [("node", node), ("epoch", "\(last.epoch)"),
                                           ("commit", "\(last.commitIndex)"), ("lamport", "\(last.clock.time)")])
        return exitCode
    }
}
