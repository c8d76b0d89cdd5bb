// LogLevel: the `log_level` values, ordered by severity, with the syslog
// priority journald reads from a "<N>" line prefix.

public enum LogLevel: String, Sendable, Comparable, CaseIterable {
    case debug, info, notice, warn, error

    public var syslogPriority: Int {
        switch self {
        case .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warn: return 4
        case .error: return 3
        }
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.syslogPriority > b.syslogPriority }
}

/// `fsync = always` syncs every batch before OK; `never` leaves it to the OS.
public enum FsyncMode: String, Sendable {
    case always, never
}
