// ClusterSettings: the [cluster] section, typed, with the defaults of
// docs/configuration.md. Also says which keys SIGHUP may change at run time (the
// timings and limits) and which need a restart.

public struct ClusterSettings: Sendable, Equatable {
    public var heartbeatIntervalMs = 100
    public var leaderTimeoutMs = 500
    public var electionTimeoutMs = 300
    public var ackTimeoutMs = 30_000
    public var commitTimeoutMs = 2_000
    public var timeSyncIntervalMs = 5_000
    public var routeTTL = 3
    public var maxPayloadBytes = 65_536
    public var fsync = FsyncMode.always
    public var maxConnections = 10_000
    public var maxMemoryMB = 1_024
    public var logLevel = LogLevel.info
    public var clusterSecret: String?
    public var clientToken: String?
    /// A connection that has not sent a right `AUTH` within this is closed
    /// (only when client_token is set; 0 = never).
    public var authTimeoutMs = 10_000
    /// A connection with nothing outstanding that sends no complete line
    /// within this is closed (0 = never, like Redis `timeout 0`).
    public var idleTimeoutMs = 0
    /// Leases of one task before it goes to its dead-letter queue (0: unlimited).
    public var maxDeliveries = 0
    /// How long a PUT's key deduplicates later PUTs of the same key and queue.
    public var dedupWindowMs = 600_000
    /// `[queue.NAME]` sections, by queue name.
    public var queues: [String: QueueSettings] = [:]

    public init() {}

    public struct SettingChange: Sendable, Equatable {
        public var key: String
        public var old: String
        public var new: String
    }

    private var reloadable: [(String, String)] {
        [("heartbeat_interval_ms", "\(heartbeatIntervalMs)"), ("leader_timeout_ms", "\(leaderTimeoutMs)"),
         ("election_timeout_ms", "\(electionTimeoutMs)"), ("ack_timeout_ms", "\(ackTimeoutMs)"),
         ("commit_timeout_ms", "\(commitTimeoutMs)"), ("time_sync_interval_ms", "\(timeSyncIntervalMs)"),
         ("max_connections", "\(maxConnections)"), ("max_memory_mb", "\(maxMemoryMB)"),
         ("log_level", logLevel.rawValue),
         ("auth_timeout_ms", "\(authTimeoutMs)"), ("idle_timeout_ms", "\(idleTimeoutMs)"),
         ("max_deliveries", "\(maxDeliveries)"), ("dedup_window_ms", "\(dedupWindowMs)"), ("queues", queuesSummary)]
    }

    private var restartOnly: [(String, String)] {
        [("route_ttl", "\(routeTTL)"), ("max_payload_bytes", "\(maxPayloadBytes)"), ("fsync", fsync.rawValue),
         ("cluster_secret", clusterSecret ?? ""), ("client_token", clientToken ?? "")]
    }

    /// Keys SIGHUP applies, with old and new values.
    public func reloadableChanges(to new: ClusterSettings) -> [SettingChange] {
        zip(reloadable, new.reloadable).compactMap { a, b in
            a.1 == b.1 ? nil : SettingChange(key: a.0, old: a.1, new: b.1)
        }
    }

    /// Keys that changed in the file but only take effect after a restart.
    public func nonReloadableChanges(to new: ClusterSettings) -> [String] {
        zip(restartOnly, new.restartOnly).compactMap { a, b in a.1 == b.1 ? nil : a.0 }
    }

    /// The reloadable keys taken from `new`, the rest kept.
    public func reloaded(from new: ClusterSettings) -> ClusterSettings {
        var s = self
        s.heartbeatIntervalMs = new.heartbeatIntervalMs
        s.leaderTimeoutMs = new.leaderTimeoutMs
        s.electionTimeoutMs = new.electionTimeoutMs
        s.ackTimeoutMs = new.ackTimeoutMs
        s.commitTimeoutMs = new.commitTimeoutMs
        s.timeSyncIntervalMs = new.timeSyncIntervalMs
        s.maxConnections = new.maxConnections
        s.maxMemoryMB = new.maxMemoryMB
        s.logLevel = new.logLevel
        s.authTimeoutMs = new.authTimeoutMs
        s.idleTimeoutMs = new.idleTimeoutMs
        s.maxDeliveries = new.maxDeliveries
        s.dedupWindowMs = new.dedupWindowMs
        s.queues = new.queues
        return s
    }
}
