// TEMPORARY: replaced by the config parser branch.
public enum LogLevel: String, Sendable, Comparable, CaseIterable {
    case debug, info, notice, warn, error
    public var syslogPriority: Int { [7, 6, 5, 4, 3][LogLevel.allCases.firstIndex(of: self)!] }
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.syslogPriority > b.syslogPriority }
}
public enum FsyncMode: String, Sendable { case always, never }
public struct ClusterSettings: Sendable, Equatable {
    public var heartbeatIntervalMs = 100, leaderTimeoutMs = 500, electionTimeoutMs = 300, ackTimeoutMs = 30000
    public var commitTimeoutMs = 2000, timeSyncIntervalMs = 5000, routeTTL = 3, maxPayloadBytes = 65536
    public var fsync = FsyncMode.always, maxConnections = 10000, maxMemoryMB = 1024, logLevel = LogLevel.info
    public var clusterSecret: String? = nil, clientToken: String? = nil
    public init() {}
}
