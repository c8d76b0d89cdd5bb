// QueueSettings: a `[queue.NAME]` section, overriding for one queue the
// cluster's ack_timeout_ms, max_deliveries and dedup_window_ms, and naming
// its dead-letter queue (default NAME.dead). Only the leader reads them, as
// it proposes a change (a lease's length, whether a task is past its
// delivery cap, until when a key counts), and it writes the outcome into the
// entry, so applying the log never depends on a node's config.

public struct QueueSettings: Sendable, Equatable {
    public var ackTimeoutMs: Int?
    public var maxDeliveries: Int?
    public var deadLetter: String?
    public var dedupWindowMs: Int?
    /// The line of the section header (for messages).
    public var line: Int

    public init(ackTimeoutMs: Int? = nil, maxDeliveries: Int? = nil, deadLetter: String? = nil,
                dedupWindowMs: Int? = nil, line: Int = 0) {
        self.ackTimeoutMs = ackTimeoutMs
        self.maxDeliveries = maxDeliveries
        self.deadLetter = deadLetter
        self.dedupWindowMs = dedupWindowMs
        self.line = line
    }

    var summary: String {
        "ack_timeout_ms=\(ackTimeoutMs.map(String.init) ?? "-"),max_deliveries=\(maxDeliveries.map(String.init) ?? "-"),"
            + "dead_letter=\(deadLetter ?? "-"),dedup_window_ms=\(dedupWindowMs.map(String.init) ?? "-")"
    }
}

/// What applies to one queue: its section's values, else the cluster's.
public struct EffectiveQueueSettings: Sendable, Equatable {
    public var ackTimeoutMs: Int
    /// 0: unlimited.
    public var maxDeliveries: Int
    public var deadLetter: String
    public var dedupWindowMs: Int
}

extension ClusterSettings {
    public func queue(_ name: String) -> EffectiveQueueSettings {
        let q = queues[name]
        return EffectiveQueueSettings(ackTimeoutMs: q?.ackTimeoutMs ?? ackTimeoutMs,
                                      maxDeliveries: q?.maxDeliveries ?? maxDeliveries,
                                      deadLetter: q?.deadLetter ?? Self.deadLetterName(of: name),
                                      dedupWindowMs: q?.dedupWindowMs ?? dedupWindowMs)
    }

    /// NAME.dead, cut to the 64 bytes a queue name may have.
    public static func deadLetterName(of name: String) -> String {
        String(decoding: Array(name.utf8.prefix(64 - 5)) + Array(".dead".utf8), as: UTF8.self)
    }

    var queuesSummary: String {
        queues.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value.summary)" }.joined(separator: ";")
    }
}
