// ClusterHarness: N real meshqd processes on loopback sharing one config, with
// fast timings so failovers happen in well under a second, and per-node logs.
import Foundation
import Glibc
import MeshQClient
import Reactor

public final class Cluster {
    public let dir: String
    public let ids: [Int]
    public let clientPorts: [Int: UInt16]
    public private(set) var peerPorts: [Int: UInt16] = [:]
    public let configPath: String
    private var processes: [Int: Process] = [:]
    private var statusClients: [Int: LineClient] = [:]

    /// `cluster` holds the `key = value` lines of the `[cluster]` section;
    /// `sections` is appended as it is (`[queue.NAME]` sections).
    public init(name: String, nodes: Int = 3,
                cluster: String = "heartbeat_interval_ms = 50\nleader_timeout_ms = 400\nelection_timeout_ms = 200",
                sections extraSections: String = "") {
        dir = Harness.tempDir(name)
        ids = Array(1...nodes)
        var ports: [Int: UInt16] = [:]
        var sections: [ConfigWriter.Node] = []
        for id in ids {
            let p = Harness.freePort()
            let q = Harness.freePort()
            ports[id] = p
            peerPorts[id] = q
            sections.append(.loopback(id: id, peerPort: Int(q), clientPort: Int(p), dataDir: "\(dir)/\(id)"))
        }
        clientPorts = ports
        configPath = dir + "/meshq.conf"
        let text = ConfigWriter(cluster: ConfigWriter.lines(cluster), nodes: sections).text
            + (extraSections.isEmpty ? "" : "\n" + extraSections + "\n")
        try? text.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    public func logPath(_ id: Int) -> String { "\(dir)/node\(id).log" }
    public func log(_ id: Int) -> String { (try? String(contentsOfFile: logPath(id), encoding: .utf8)) ?? "" }

    public func start(_ only: [Int]? = nil, environment: [Int: [String: String]] = [:], configs: [Int: String] = [:]) throws {
        for id in only ?? ids {
            processes[id] = try Daemon.launch(config: configs[id] ?? configPath, id: id, log: logPath(id),
                                              environment: environment[id] ?? [:])
        }
        for id in only ?? ids {
            let up = Harness.eventually(timeout: 30) {
                (try? LineClient(host: "127.0.0.1", port: clientPorts[id]!, timeoutMs: 1_000).request("PING")) == "PONG"
            }
            guard up else { throw HarnessError("node \(id) did not come up: \(log(id))") }
        }
    }

    public func kill9(_ id: Int) {
        guard let p = processes.removeValue(forKey: id) else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    /// Sends a signal to a running node (SIGSTOP freezes it with its sockets
    /// open, SIGCONT thaws it).
    public func sendSignal(_ sig: Int32, to id: Int) {
        if let p = processes[id] { kill(p.processIdentifier, sig) }
    }

    /// STATUS of a node as key -> value, nil when it does not answer.
    /// One kept connection per node serves every call (the waits poll STATUS
    /// every 10 ms; a connection each would leave thousands of TIME_WAIT
    /// sockets behind). A kept connection that fails at once (the node was
    /// restarted) is replaced and the call made again; one that times out is
    /// dropped, and the next call dials again.
    public func status(_ id: Int) -> [String: String]? {
        for _ in 0..<2 {
            let kept = statusClients.removeValue(forKey: id)
            guard let c = kept ?? (try? LineClient(host: "127.0.0.1", port: clientPorts[id]!, timeoutMs: 2_000))
            else { return nil }
            do {
                let line = try c.request("STATUS")
                statusClients[id] = c
                return StatusLine.fields(line)
            } catch {
                if kept == nil || error.description.contains("timed out") { return nil }
            }
        }
        return nil
    }

    /// Waits until every node in `nodes` names `leader` in the same epoch; returns that epoch.
    public func awaitAgreement(on leader: Int, among nodes: [Int], timeout: Double = 30) -> UInt64? {
        var agreed: UInt64?
        Harness.eventually(timeout: timeout) {
            let s = nodes.compactMap { status($0) }
            guard s.count == nodes.count, s.allSatisfy({ $0["leader"] == "\(leader)" }),
                  Set(s.compactMap { $0["epoch"] }).count == 1,
                  status(leader)?["role"] == "leader" else { return false }
            agreed = s.first?["epoch"].flatMap { UInt64($0) }
            return true
        }
        return agreed
    }

    /// Returns once `leader` serves: one change committed through it (a
    /// PAUSE of 0 ms on a queue of the harness's own, which stores no task).
    /// A new leader holds commands until its first entry commits, so a test
    /// that freezes the followers right after `awaitAgreement` may freeze a
    /// leader that never serves (its commands are then parked, not refused).
    public func awaitServing(_ leader: Int) throws {
        let r = try client(leader).request("PAUSE harness.warmup 0")
        guard r == "OK" else { throw HarnessError("node \(leader) did not serve a PAUSE: \(r)") }
    }

    public func client(_ id: Int) throws -> LineClient {
        try LineClient(host: "127.0.0.1", port: clientPorts[id]!, timeoutMs: 10_000)
    }

    deinit {
        for (_, p) in processes where p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        // MESHQ_KEEP_TEST_DIRS=1 keeps configs and node logs for a post-mortem.
        if ProcessInfo.processInfo.environment["MESHQ_KEEP_TEST_DIRS"] == nil {
            try? FileManager.default.removeItem(atPath: dir)
        }
    }
}
