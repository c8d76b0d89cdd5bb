// MeshQConfig: the whole cluster as one file describes it; identical on every
// host, each daemon picks its own node by id.

public struct MeshQConfig: Sendable, Equatable {
    public var file: String
    public var cluster: ClusterSettings
    /// Sorted by id.
    public var nodes: [NodeConfig]

    public func node(_ id: Int) -> NodeConfig? { nodes.first { $0.id == id } }

    public var majority: Int { nodes.count / 2 + 1 }

    /// What `meshqd --check` prints. Secrets are never shown.
    public func summary(for id: Int) -> String {
        let c = cluster
        var lines = ["config \(file): ok",
                     "cluster: \(nodes.count) node\(nodes.count == 1 ? "" : "s") (\(nodes.map { String($0.id) }.joined(separator: ", "))), majority \(majority)"]
        if let n = node(id) {
            var me = "this node: \(n.id) peer=\(n.peer) client=\(n.client)"
            if n.listenPeer != n.peer { me += " listen_peer=\(n.listenPeer)" }
            if n.listenClient != n.client { me += " listen_client=\(n.listenClient)" }
            me += " data_dir=\(n.dataDir)"
            if let m = n.metrics { me += " metrics=\(m)" }
            lines.append(me)
            lines.append(n.tls.summary)
        }
        lines.append("timings: heartbeat=\(c.heartbeatIntervalMs)ms leader_timeout=\(c.leaderTimeoutMs)ms election_timeout=\(c.electionTimeoutMs)ms ack_timeout=\(c.ackTimeoutMs)ms commit_timeout=\(c.commitTimeoutMs)ms time_sync=\(c.timeSyncIntervalMs)ms")
        lines.append("limits: max_payload_bytes=\(c.maxPayloadBytes) max_connections=\(c.maxConnections) max_memory_mb=\(c.maxMemoryMB) fsync=\(c.fsync.rawValue) route_ttl=\(c.routeTTL) log_level=\(c.logLevel.rawValue)")
        lines.append("auth: client_token \(c.clientToken == nil ? "not set" : "set"), cluster_secret \(c.clusterSecret == nil ? "not set" : "set")")
        return lines.joined(separator: "\n")
    }
}
