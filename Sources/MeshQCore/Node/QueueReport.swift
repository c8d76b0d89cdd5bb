// QueueReport: one queue's counts as this node knows them and the counters
// of what it applied, for /metrics. Counters start at 0 when the node does
// (Prometheus counters); dead_lettered counts what this node dead-lettered
// while it led.

public struct QueueCounters: Sendable, Equatable {
    public var put = 0
    public var taken = 0
    public var acked = 0
    public var buried = 0
    public var deadLettered = 0

    public init() {}
}

public struct QueueReport: Sendable, Equatable {
    public var name: String
    public var ready: Int
    public var delayed: Int
    public var inflight: Int
    public var dead: Int
    public var paused: Bool
    public var oldestReadyMs: Int64
    public var counters: QueueCounters
}
