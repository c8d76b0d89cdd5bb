// ClusterSimulator's protocol-2 clients and checks. A second stream of
// clients (its own generator, so the protocol-1 stream draws the same
// numbers as before) PUTs to the queues `a` (max_deliveries 3) and `b` with
// random priorities, some with delay=, some with key= (a careful producer:
// after an unknown outcome, NOLEADER or NOQUORUM, it sends the same PUT,
// key and payload again, and now and then also after QUEUED), TAKEs from
// one or two queues, TOUCHes, NACKs with a delay, BURYs, KICKs `a.dead`
// and PAUSEs `b`. A quarter of the tasks put to `a` are poison (payload
// `x...`): their worker never acks one and NACKs it at once, so they reach
// the delivery cap within a run. Checks:
// 12. Ready order: when the leader leases a task of queue q, no task of q
//     that was ready then has a smaller (priority, id). Observed around each
//     input the leader takes: q's ready head before the input, still ready
//     and unchanged after it, was ready when the lease was proposed.
// 13. Due time: no JOB/TASK for a task put with delay=d is sent before the
//     PUT was sent + d, less twice the largest clock offset any node
//     measured (the wall clocks are equal, so every offset is an error).
// 14. Delivery cap: no JOB from a queue with max_deliveries N carries a
//     delivery count above N (the task went to the dead-letter queue).
// 15. One key, one task: two PUTs with the same key and queue never store
//     two tasks within the window (the committed entries: through the
//     mailbox and across failovers too), and never get OKs naming two ids.
// 16. TOUCH: once a TOUCH to time U committed in epoch E, the leader of E
//     sends no JOB/TASK for that task while its cluster time is before U
//     (unless the task was released, buried, kicked or acked meanwhile).
// Invariant: the stream draws only from `p2.rng`; the checks only read.
@testable import MeshQCore

extension ClusterSimulator {
    struct PutInfo {
        var queue: String
        var options: PutOptions
        var firstSentAt: Int64
    }

    struct ProtocolTwoState {
        var rng: SimRandom
        var nextMessage = 0
        /// Every PUT's payload -> what it was sent with (a retry sends it again).
        var puts: [String: PutInfo] = [:]
        /// Keyed PUTs whose outcome is unknown, to be sent again.
        var retry: [String] = []
        /// Keyed PUTs answered QUEUED (sent again now and then).
        var queuedKeyed: [String] = []
        /// (queue, key) -> the task id its first OK named.
        var keyOK: [DedupKey: UInt64] = [:]
        /// (queue, key) -> the task a committed PUT stored, and until when its key counts.
        var storedKey: [DedupKey: (id: UInt64, until: Int64)] = [:]
        /// Task -> the epoch and deadline of its last committed TOUCH.
        var touched: [UInt64: (epoch: UInt64, until: Int64)] = [:]
        /// Task ids recently handed out by JOB.
        var jobs: [UInt64] = []
        /// Poison tasks handed out, to be NACKed at once.
        var poison: [UInt64] = []
        /// The largest clock offset any node measured or kept, in ms.
        var maxOffsetMs: Int64 = 0

        init(seed: UInt64) { rng = SimRandom(seed: seed ^ 0x5052_4f54_4f32) }
    }

    static let p2Queues = ["a", "b"]

    func issueProtocolTwoOp() throws {
        let live = ids.filter { nodes[$0] != nil }
        guard !live.isEmpty else { return }
        let id = live[p2.rng.int(0...(live.count - 1))]
        let op: ClientOp
        let cmd: ClientCommand
        func job() -> UInt64? { p2.jobs.isEmpty ? nil : p2.jobs[p2.rng.int(0...(p2.jobs.count - 1))] }
        if !p2.poison.isEmpty, p2.rng.chance(0.5) {
            let t = p2.poison.removeFirst()
            return try sendClient(.nackDelay(t, 0), .nack(taskId: t, delayMs: nil), to: id)
        }
        switch p2.rng.int(0...19) {
        case 0...6:
            let payload: String
            if !p2.retry.isEmpty, p2.rng.chance(0.7) {
                payload = p2.retry.removeFirst()
            } else if !p2.queuedKeyed.isEmpty, p2.rng.chance(0.1) {
                payload = p2.queuedKeyed.removeFirst()
            } else {
                p2.nextMessage += 1
                let q = Self.p2Queues[p2.rng.int(0...1)]
                payload = (q == "a" && p2.rng.chance(0.25) ? "x" : "q") + "\(p2.nextMessage)"
                let priorities: [UInt32] = [0, 7, 1024, 1024, 4000]
                let pri = priorities[p2.rng.int(0...(priorities.count - 1))]
                let delay = p2.rng.chance(0.3) ? p2.rng.int(50...2_500) : 0
                let key = p2.rng.chance(0.5) ? "k\(p2.nextMessage)" : nil
                p2.puts[payload] = PutInfo(queue: q, options: PutOptions(priority: pri, delayMs: delay, key: key), firstSentAt: now)
            }
            let info = p2.puts[payload]!
            op = .put(payload)
            cmd = .put(queue: info.queue, options: info.options, payload: Array(payload.utf8))
        case 7...11:
            let lists = [["a"], ["b"], ["a", "b"], ["b", "a"], ["a.dead"]]
            let qs = lists[p2.rng.int(0...(lists.count - 1))]
            let wait = p2.rng.chance(0.2) ? 200 : nil
            op = .take(qs)
            cmd = .take(queues: qs, waitMs: wait)
        case 12, 13, 19:
            guard let t = job() else { return }
            ackSent.insert(t)
            op = .ack(t)
            cmd = .ack(taskId: t)
        case 14:
            guard let t = job() else { return }
            let ms = p2.rng.int(2_000...4_000)
            op = .touch(t, ms)
            cmd = .touch(taskId: t, ms: ms)
        case 15:
            guard let t = job() else { return }
            let delay = p2.rng.chance(0.5) ? p2.rng.int(100...1_500) : 0
            op = .nackDelay(t, delay)
            cmd = .nack(taskId: t, delayMs: delay > 0 ? delay : nil)
        case 16:
            guard let t = job() else { return }
            op = .bury(t)
            cmd = .bury(taskId: t)
        case 17:
            op = .kick("a.dead")
            cmd = .kick(queue: "a.dead", count: p2.rng.chance(0.5) ? 2 : nil)
        default:
            let ms = p2.rng.int(100...800)
            op = .pause("b", ms)
            cmd = .pause(queue: "b", ms: ms)
        }
        try sendClient(op, cmd, to: id)
    }

    /// A protocol-2 reply reached its client (PUT, JOB and errors; the rest are noted).
    func protocolTwoReply(_ p: (node: Int, op: ClientOp, at: Int64), _ line: String) throws {
        let words = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        switch (words.first ?? "", p.op) {
        case ("OK", .put(let payload)):
            let id = UInt64(words[1])!
            if let other = okTasks[id], other != payload {
                throw fail("task id \(id) given to \(other) and again to \(payload)")
            }
            okTasks[id] = payload
            committedOps += 1
            if let info = p2.puts[payload], let k = info.options.key {
                let dk = DedupKey(queue: info.queue, key: k)
                if let first = p2.keyOK[dk], first != id {
                    throw fail("one key, one task: PUT \(info.queue) key=\(k) answered OK \(first), then OK \(id) (\(payload) at node \(p.node))")
                }
                p2.keyOK[dk] = id
            }
            note("client: put \(payload) at node \(p.node) -> \(line)")
        case ("QUEUED", .put(let payload)):
            parked[payload] = words[1]
            if p2.puts[payload]?.options.key != nil { p2.queuedKeyed.append(payload) }
            note("client: put \(payload) at node \(p.node) -> \(line)")
        case ("ERR", .put(let payload)):
            if p2.puts[payload]?.options.key != nil, words.count > 1, ["NOLEADER", "NOQUORUM"].contains(words[1]) {
                p2.retry.append(payload)
            }
            note("client: put \(payload) at node \(p.node) -> \(line)")
        case ("JOB", _):
            // JOB <id> <lamport> <queue> <deliveries> <payload>
            let id = UInt64(words[1])!
            let payload = words.count > 5 ? words[5...].joined(separator: " ") : ""
            if let okAt = ackedOK[id], p.at > okAt {
                throw fail("task \(id) delivered again after its ACK got OK at t=\(okAt) (\(payload) at node \(p.node), asked at t=\(p.at))")
            }
            if let known = okTasks[id], known != payload {
                throw fail("task \(id) delivered with payload \(payload), enqueued as \(known)")
            }
            if payload.hasPrefix("x") {
                p2.poison.append(id)
            } else {
                p2.jobs.append(id)
                if p2.jobs.count > 64 { p2.jobs.removeFirst() }
            }
            everDelivered.insert(payload)
            note("client: \(p.op) at node \(p.node) -> \(line)")
        default:
            note("client: \(p.op) at node \(p.node) -> \(line)")
        }
    }

    /// A leader sends a JOB or TASK (to its client, or relayed to a
    /// follower's): checks 13, 14 and 16.
    func checkDelivery(_ text: String, by id: Int) throws {
        guard options.protocolTwo, let n = nodes[id] else { return }
        let line = text.hasSuffix("\n") ? String(text.dropLast()) : text
        let words = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard let verb = words.first, verb == "JOB" || verb == "TASK", words.count > 2,
              let task = UInt64(words[1]) else { return }
        let payload: String
        if verb == "JOB", words.count > 5, let deliveries = Int(words[4]) {
            payload = words[5...].joined(separator: " ")
            let cap = settings.queue(words[3]).maxDeliveries
            if cap > 0, deliveries > cap {
                throw fail("delivery cap: node \(id) sent JOB \(task) from queue \(words[3]) with deliveries \(deliveries), max_deliveries is \(cap)")
            }
        } else {
            payload = words.count > 3 ? words[3...].joined(separator: " ") : ""
        }
        if let info = p2.puts[payload], info.options.delayMs > 0 {
            let due = info.firstSentAt + Int64(info.options.delayMs)
            let slack = 2 * p2.maxOffsetMs + 2
            if now < due - slack {
                throw fail("due time: node \(id) sent \(verb) \(task) (\(payload), delay=\(info.options.delayMs), first sent at t=\(info.firstSentAt)) at t=\(now), before t=\(due) less \(slack) ms of clock offsets")
            }
        }
        if let tl = p2.touched[task], n.role == .leader, n.epoch == tl.epoch, n.lastClusterMs < tl.until {
            throw fail("TOUCH: leader \(id) of epoch \(n.epoch) sent \(verb) \(task) at cluster time \(n.lastClusterMs), its lease was touched to \(tl.until)")
        }
    }

    /// Check 12 around one input to node `id`. Before the input, each
    /// queue's ready head (its smallest (priority, id)); after it, a task
    /// leased during the input whose (priority, id) is above a head that is
    /// still ready with the same fields under the same leadership (no entry
    /// of a new epoch ended leases meanwhile) was leased while that head was
    /// ready all along. Heads only, no copy of the store: O(queues) per input.
    func observingLeases(_ id: Int, _ body: () throws -> Void) throws {
        guard options.protocolTwo, let n = nodes[id], n.role == .leader else { return try body() }
        let leasing = n.leader?.leasing ?? [], epoch = n.store.epoch
        var heads: [String: QueuedTask] = [:]
        for q in n.store.lines.keys { if let h = n.store.head(of: q) { heads[q] = h } }
        try body()
        guard n.store.epoch == epoch else { return }
        for l in (n.leader?.leasing ?? []).sorted() where !leasing.contains(l) {
            guard let t = n.store.task(l), let r = heads[t.queue], (r.priority, r.id) < (t.priority, t.id) else { continue }
            if n.store.place(of: r.id) == .ready, n.store.task(r.id) == r {
                throw fail("ready order: leader \(id) of epoch \(n.epoch) leased task \(l) (priority \(t.priority)) of queue \(t.queue) at t=\(now) while task \(r.id) (priority \(r.priority)) was ready")
            }
        }
    }

    /// A log index committed for the first time (at node `id`): checks 15 and 16's records.
    func observeCommitted(_ e: LogEntry, at id: Int, node n: NodeCore) throws {
        guard options.protocolTwo else { return }
        switch e.op {
        case .enqueue(let t), .enqueueParked(let t, _, _):
            // Stored, not answered as a key put before (and not acked since).
            guard let k = t.key, n.store.task(t.id) != nil else { return }
            let dk = DedupKey(queue: t.queue, key: k)
            if let first = p2.storedKey[dk] {
                if first.id != t.id, t.enqueuedAtMs < first.until {
                    throw fail("one key, one task: key \(k) of queue \(t.queue) stored task \(first.id), then within its window task \(t.id) (index \(e.index), epoch \(e.epoch), node \(id))")
                }
            } else {
                p2.storedKey[dk] = (t.id, t.keyUntilMs)
            }
        case .touch(let task, let until):
            p2.touched[task] = (e.epoch, until)
        case .lease(let task, _, _), .release(let task, _), .bury(let task, _), .ack(let task):
            p2.touched[task] = nil
        case .kick(let tasks):
            for t in tasks { p2.touched[t] = nil }
        default:
            break
        }
    }

    /// The largest offset any node uses to read cluster time (check 13's slack).
    func noteOffsets() {
        for n in nodes.values {
            let off = max(abs(n.leader?.clockOffsetMs ?? 0), abs(Int64(n.cristian.offsetMs.rounded())))
            if off > p2.maxOffsetMs { p2.maxOffsetMs = off }
        }
    }
}
