// ClusterSimulator's clients: ENQUEUE, DEQUEUE, ACK and NACK to random live
// nodes (a paused node's kernel keeps the command until it wakes), and each
// reply checked against what the cluster promised before. 3. An acknowledged
// ACK is final: a DEQUEUE sent after the OK never gets the task. A task id
// names one payload. QUEUED payloads are remembered for check 6.
// Invariant: a client is answered at most once (its pending entry goes with
// the first answer; a crash of its node drops it: the outcome is unknown).
@testable import MeshQCore

extension ClusterSimulator {
    enum ClientOp {
        case enqueue(String), dequeue, ack(UInt64), nack(UInt64)
        // Protocol 2 (SimProtocolTwo.swift).
        case put(String), take([String]), touch(UInt64, Int), nackDelay(UInt64, Int), bury(UInt64), kick(String),
             pause(String, Int)
    }

    func issueClientOp() throws {
        let live = ids.filter { nodes[$0] != nil }
        guard !live.isEmpty else { return }
        let id = live[rng.int(0...(live.count - 1))]
        let op: ClientOp
        switch rng.int(0...9) {
        case 0...3:
            nextPayload += 1
            op = .enqueue("p\(nextPayload)")
        case 4...6:
            op = .dequeue
        case 7, 8:
            guard !delivered.isEmpty else { return }
            op = .ack(delivered[rng.int(0...(delivered.count - 1))])
        default:
            guard !delivered.isEmpty else { return }
            op = .nack(delivered[rng.int(0...(delivered.count - 1))])
        }
        let cmd: ClientCommand
        switch op {
        case .enqueue(let p): cmd = .enqueue(payload: Array(p.utf8))
        case .dequeue: cmd = .dequeue(waitMs: nil)
        case .ack(let t):
            ackSent.insert(t)
            cmd = .ack(taskId: t)
        case .nack(let t): cmd = .nack(taskId: t)
        default: return
        }
        try sendClient(op, cmd, to: id)
    }

    /// A client sends `cmd` to node `id` (kept by the kernel of a paused node).
    func sendClient(_ op: ClientOp, _ cmd: ClientCommand, to id: Int) throws {
        let ref = ClientRef(session: nextClientRef, seq: 1)
        nextClientRef += 1
        pending[ref] = (id, op, now)
        if SimDigest.enabled { digestState.add("c \(now) \(id) \(ref) \(cmd)") }
        if pausedUntil[id] != nil {
            backlog[id, default: []].append(.client(cmd, ref, owner: "c\(ref.session)"))
        } else {
            let n = nodes[id]!
            // A TAKE served at once proposes its lease in here (check 12).
            try observingLeases(id) { n.handle(cmd, from: ref, owner: "c\(ref.session)", now: now, wallMs: now) }
        }
    }

    /// A reply reached a client: check it against what was promised before.
    func clientReply(_ ref: ClientRef, _ reply: Reply) throws {
        guard let p = pending.removeValue(forKey: ref) else { return }
        if let f = options.frozen, let victim = frozenVictim, p.node != victim {
            let lo: Int64 = f.from + f.settleMs, hi: Int64 = f.from + f.forMs - f.answerMs
            if p.at >= lo && p.at <= hi { answered[ref] = (now, reply.line.hasPrefix("ERR NOLEADER") || reply.line.hasPrefix("ERR NOQUORUM")) }
        }
        let words = reply.line.dropLast().split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
        guard let verb = words.first else { return }
        switch p.op {
        case .put, .take, .touch, .nackDelay, .bury, .kick, .pause:
            return try protocolTwoReply(p, String(reply.line.dropLast()))
        default: break
        }
        switch (verb, p.op) {
        case ("OK", .enqueue(let payload)):
            let id = UInt64(words[1])!
            if let other = okTasks[id], other != payload {
                throw fail("task id \(id) given to \(other) and again to \(payload)")
            }
            okTasks[id] = payload
            committedOps += 1
            note("client: enqueue \(payload) at node \(p.node) -> OK \(id)")
        case ("QUEUED", .enqueue(let payload)):
            parked[payload] = String(words[1])
            note("client: enqueue \(payload) at node \(p.node) -> QUEUED \(words[1])")
        case ("OK", .ack(let id)):
            ackedOK[id] = ackedOK[id] ?? now
            ackedOKSeq[id] = ackedOKSeq[id] ?? effectSeq
            committedOps += 1
            note("client: ack \(id) at node \(p.node) -> \(words.joined(separator: " "))")
        case ("TASK", _):
            let id = UInt64(words[1])!
            let payload = words.count > 3 ? String(words[3]) : ""
            // 3. An acknowledged ACK is final: a DEQUEUE sent after the OK
            // never gets the task. (One sent before may: the task can be
            // handed out while the ACK commits and the TASK is still on its way.)
            if let okAt = ackedOK[id], p.at > okAt {
                throw fail("task \(id) delivered again after its ACK got OK at t=\(okAt) (\(payload) at node \(p.node), asked at t=\(p.at))")
            }
            if let known = okTasks[id], known != payload {
                throw fail("task \(id) delivered with payload \(payload), enqueued as \(known)")
            }
            delivered.append(id)
            everDelivered.insert(payload)
            note("client: dequeue at node \(p.node) -> TASK \(id) \(payload)")
            if delivered.count > 64 { delivered.removeFirst() }
        default:
            note("client: \(p.op) at node \(p.node) -> \(reply.line.dropLast())")
        }
    }
}
