// NodeMetrics: counters the node keeps on its hot path (plain integers, one
// thread, no locks) and their Prometheus text rendering for /metrics.
import MeshQCore

public final class NodeMetrics {
    /// Upper bounds (seconds) of the commit latency buckets: one fsync'd batch
    /// takes from tens of microseconds (fsync=never) to tens of milliseconds.
    static let bounds: [Double] = [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1]

    public var bytesIn = 0
    public var bytesOut = 0
    public var batches = 0
    private var buckets = [Int](repeating: 0, count: NodeMetrics.bounds.count + 1)
    private var latencySum = 0.0

    public init() {}

    /// One replication round (here: append + fsync + commit) took `seconds`.
    public func observeCommit(seconds: Double) {
        batches += 1
        latencySum += seconds
        let i = NodeMetrics.bounds.firstIndex { seconds <= $0 } ?? NodeMetrics.bounds.count
        buckets[i] += 1
    }

    public func render(core: NodeCore, connections: Int) -> String {
        let s = core.status()
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { out += "\(name)\(labels) \(value)\n" }
        }
        metric("meshq_queue_ready", "gauge", "Tasks ready to be dequeued.", [("", "\(s.ready)")])
        metric("meshq_queue_inflight", "gauge", "Tasks leased and not yet acked.", [("", "\(s.inflight)")])
        metric("meshq_queue_tasks", "gauge", "Tasks held (ready, leased or being acked).", [("", "\(core.store.count)")])
        metric("meshq_queue_payload_bytes", "gauge", "Payload bytes held, counted against max_memory_mb.",
               [("", "\(core.store.payloadBytes)")])
        let queues = core.queueReport()
        func perQueue(_ name: String, _ type: String, _ help: String, _ value: (QueueReport) -> String) {
            metric(name, type, help, queues.map { ("{queue=\"\($0.name)\"}", value($0)) })
        }
        perQueue("meshq_queue_ready_tasks", "gauge", "Ready tasks of one queue.") { "\($0.ready)" }
        perQueue("meshq_queue_delayed_tasks", "gauge", "Tasks of one queue waiting for their delay.") { "\($0.delayed)" }
        perQueue("meshq_queue_inflight_tasks", "gauge", "Leased tasks of one queue.") { "\($0.inflight)" }
        perQueue("meshq_queue_dead_tasks", "gauge", "Tasks in the queue's dead-letter queue.") { "\($0.dead)" }
        perQueue("meshq_queue_paused", "gauge", "1 while the queue is paused.") { $0.paused ? "1" : "0" }
        perQueue("meshq_queue_oldest_ready_seconds", "gauge", "Age of the queue's oldest ready task.") {
            "\(Double($0.oldestReadyMs) / 1000)"
        }
        perQueue("meshq_queue_put_total", "counter", "Tasks put in the queue (applied here).") { "\($0.counters.put)" }
        perQueue("meshq_queue_taken_total", "counter", "Leases of the queue's tasks (applied here).") { "\($0.counters.taken)" }
        perQueue("meshq_queue_acked_total", "counter", "Tasks of the queue acked (applied here).") { "\($0.counters.acked)" }
        perQueue("meshq_queue_buried_total", "counter", "Tasks of the queue buried or dead-lettered (applied here).") {
            "\($0.counters.buried)"
        }
        perQueue("meshq_queue_dead_lettered_total", "counter",
                 "Tasks of the queue moved to its dead-letter queue past max_deliveries by this node as leader.") {
            "\($0.counters.deadLettered)"
        }
        metric("meshq_commit_index", "gauge", "Highest committed log index.", [("", "\(s.commit)")])
        metric("meshq_commits_total", "counter", "Log entries committed since start.", [("", "\(core.entriesCommitted)")])
        var cumulative = 0
        var hist: [(String, String)] = []
        for (i, b) in NodeMetrics.bounds.enumerated() {
            cumulative += buckets[i]
            hist.append(("_bucket{le=\"\(b)\"}", "\(cumulative)"))
        }
        cumulative += buckets[NodeMetrics.bounds.count]
        hist.append(("_bucket{le=\"+Inf\"}", "\(cumulative)"))
        hist.append(("_sum", "\(latencySum)"))
        hist.append(("_count", "\(cumulative)"))
        metric("meshq_commit_latency_seconds", "histogram", "Time to make one batch durable and commit it.", hist)
        metric("meshq_elections_total", "counter", "Leaderships won by this node since start.", [("", "\(core.elections)")])
        metric("meshq_epoch", "gauge", "Current leadership epoch.", [("", "\(s.epoch)")])
        metric("meshq_role", "gauge", "1 for the role this node has.",
               ["leader", "follower", "candidate"].map { ("{role=\"\($0)\"}", s.role == $0 ? "1" : "0") })
        metric("meshq_leader_known", "gauge", "1 when this node knows a leader.", [("", s.leader == nil ? "0" : "1")])
        metric("meshq_peers_up", "gauge", "Peers this node currently hears from.", [("", "\(s.peersUp)")])
        metric("meshq_mailbox_entries", "gauge", "Entries parked in this node's mailbox.", [("", "\(s.mailbox)")])
        metric("meshq_clock_offset_ms", "gauge", "Cristian clock offset to the leader.", [("", "\(s.offsetMs)")])
        metric("meshq_lamport", "gauge", "This node's Lamport clock.", [("", "\(s.lamport)")])
        metric("meshq_client_connections", "gauge", "Open client connections.", [("", "\(connections)")])
        metric("meshq_client_bytes_received_total", "counter", "Bytes read from clients.", [("", "\(bytesIn)")])
        metric("meshq_client_bytes_sent_total", "counter", "Bytes written to clients.", [("", "\(bytesOut)")])
        return out
    }
}
