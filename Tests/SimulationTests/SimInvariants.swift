// ClusterSimulator's invariant checks, run after every step (safety, and
// availability under a scripted freeze) and once the faults stop (liveness).
// 1. At most one leader per epoch, ever. 2. Every acknowledged enqueue is in
// every later leader's state until an ACK is sent. 4. Two nodes that each
// entered the critical section on the other's reply are never both inside.
// 5. Lamport clocks never go backwards. 6. A parked entry is applied once
// and eventually. 7. Log agreement at or below both commit points. 8. The
// final leader holds every task answered OK and not acked. 9. A frozen node
// never stops the others. (3, 3', 10 and 11 are checked per effect and per
// reply: SimEffects.swift, SimClients.swift.)
// Invariant: a check only reads; a violation is thrown with the seed and the
// last events, never fixed up.
@testable import MeshQCore

extension ClusterSimulator {
    /// 9 (scripted freezes). A frozen node must not stop the others: every
    /// command sent to another node once the cluster had time to notice is
    /// answered, without an error, within `answerMs`.
    func checkAvailability() throws {
        guard let f = options.frozen, let victim = frozenVictim else { return }
        let lo: Int64 = f.from + f.settleMs, hi: Int64 = f.from + f.forMs - f.answerMs
        for (ref, p) in pending where p.node != victim && p.at >= lo && p.at <= hi && now - p.at > f.answerMs {
            throw fail("availability: \(p.op) sent to node \(p.node) at t=\(p.at) unanswered after \(now - p.at) ms while node \(victim) is frozen (client \(ref.session))")
        }
        for (ref, a) in answered where a.error {
            throw fail("availability: client \(ref.session) was refused (NOLEADER or NOQUORUM) at t=\(a.at) while node \(victim) is frozen")
        }
        answered.removeAll()
    }

    /// 3'. Once an ACK got OK, no node ever sends TASK for that task again
    /// (a TASK sent before, still on its way, is not a new delivery).
    func checkTaskSent(_ task: UInt64, by id: Int) throws {
        guard let okSeq = ackedOKSeq[task], effectSeq > okSeq else { return }
        throw fail("node \(id) sent TASK \(task) after its ACK got OK (at t=\(ackedOK[task] ?? -1)): "
                   + (nodes[id]?.debugSummary ?? ""))
    }

    func checkSafety() throws {
        // 7. Log agreement: any two nodes agree on every index at or below
        // both their commit points (checked against the first node, ever,
        // to commit each index).
        for (id, n) in nodes.sorted(by: { $0.key < $1.key }) {
            var i = checkedCommit[id] ?? 0
            while i < n.commitIndex {
                i += 1
                // Past the in-memory window: as the node wrote it (`written`).
                guard let e = n.log.epoch(at: i) ?? written[id]?[i]?.epoch else { continue }
                if let known = committedEpoch[i] {
                    guard known == e else {
                        throw fail("log agreement: node \(id) committed index \(i) in epoch \(e), another node committed it in epoch \(known)")
                    }
                } else if let entry = n.log.entry(at: i) ?? written[id]?[i] {
                    try observeCommitted(entry, at: id, node: n)
                }
                committedEpoch[i] = e
            }
            checkedCommit[id] = n.commitIndex
        }
        // 4. Ricart-Agrawala: two nodes that each entered on the other's
        // reply are never both inside. (A node that dropped a silent peer
        // from its wait set may be inside alongside it: the failure detector
        // cannot tell a frozen peer from a dead one.)
        let inside = nodes.filter { $0.value.inCriticalSection }
        for (a, na) in inside {
            for (b, nb) in inside where a < b && na.mutexRepliedBy.contains(b) && nb.mutexRepliedBy.contains(a) {
                throw fail("nodes \(a) and \(b) are both inside the critical section")
            }
        }
        for (id, n) in nodes {
            // 2. Every acknowledged enqueue is in the state of every later
            // leader (checked when it starts serving) until an ACK is sent.
            if n.role == .leader, n.serving, checkedLeaderships.insert([UInt64(id), n.epoch]).inserted {
                for (task, payload) in okTasks where !ackSent.contains(task) && n.store.task(task) == nil {
                    throw fail("leader \(id) of epoch \(n.epoch) lost task \(task) (\(payload)), whose ENQUEUE got OK")
                }
                // 6. A parked entry is applied once: no payload is in the queue twice.
                var seen: Set<[UInt8]> = []
                for t in n.store.allTasks() where !seen.insert(t.payload).inserted {
                    let copies = n.store.allTasks().filter { $0.payload == t.payload }.map { "task \($0.id)" }
                    let entries = (n.log.firstIndex...max(n.log.firstIndex, n.log.lastIndex)).compactMap { i -> String? in
                        guard let e = n.log.entry(at: i) else { return nil }
                        switch e.op {
                        case .enqueue(let x) where x.payload == t.payload: return "index \(i) epoch \(e.epoch) enqueue \(x.id)"
                        case .enqueueParked(let x, let from, let seq) where x.payload == t.payload:
                            return "index \(i) epoch \(e.epoch) parked \(x.id) from \(from)-\(seq)"
                        default: return nil
                        }
                    }
                    throw fail("leader \(id) of epoch \(n.epoch) holds \(String(decoding: t.payload, as: UTF8.self)) twice: \(copies) \(entries)")
                }
            }
            // 5. Lamport clocks never go backwards (within an incarnation).
            guard n.clock.time >= lastLamport[id, default: 0] else {
                throw fail("Lamport clock of node \(id) went back from \(lastLamport[id]!) to \(n.clock.time)")
            }
            lastLamport[id] = n.clock.time
            // 1. At most one leader per epoch, ever.
            if n.role == .leader {
                if let other = leaderOfEpoch[n.epoch], other != id {
                    throw fail("two leaders in epoch \(n.epoch): \(other) and \(id)")
                }
                leaderOfEpoch[n.epoch] = id
            }
        }
    }

    /// Once faults stop, the highest node leads, everyone follows it, and
    /// every client got its answer.
    func checkLiveness() throws {
        // 6. Every parked entry was delivered: the mailboxes are empty and
        // each QUEUED payload is in the leader's queue or was handed out.
        for (id, n) in nodes where !n.mailbox.isEmpty {
            let states = ids.map { "node \($0): " + (nodes[$0]?.debugSummary ?? "down") }.joined(separator: "\n  ")
            throw fail("liveness: node \(id) still holds \(n.mailbox.count) parked entries at t=\(now)\n  \(states)")
        }
        // (Against the final leader's queue: a node still catching up holds
        // less, and is reported as such below.)
        if let l = nodes[ids.max()!], l.role == .leader, l.serving {
            let inQueue = Set(l.store.allTasks().map { String(decoding: $0.payload, as: UTF8.self) })
            for (payload, ref) in parked where !inQueue.contains(payload) && !everDelivered.contains(payload) {
                throw fail("parked \(payload) (QUEUED \(ref)) was never applied")
            }
        }
        if let (ref, p) = pending.min(by: { $0.value.at < $1.value.at }) {
            let states = ids.map { "node \($0): " + (nodes[$0]?.debugSummary ?? "down") }.joined(separator: "\n  ")
            throw fail("liveness: client \(ref.session)'s \(p.op) sent to node \(p.node) at t=\(p.at) was never answered\n  \(states)")
        }
        let top = ids.max()!
        // 8. Every task answered OK and not acked is delivered by the final
        // leader: it is in its queue.
        if let l = nodes[top], l.role == .leader, l.serving {
            for (task, payload) in okTasks.sorted(by: { $0.key < $1.key })
            where !ackSent.contains(task) && l.store.task(task) == nil {
                throw fail("final leader \(top) does not hold task \(task) (\(payload)), whose ENQUEUE got OK")
            }
        }
        guard let l = nodes[top], l.role == .leader else {
            throw fail("liveness: \(options.settleMs) ms after faults stopped, node \(top) is \(nodes[top]?.role.rawValue ?? "down")")
        }
        for (id, n) in nodes where id != top {
            guard n.leaderId == top, n.epoch == l.epoch else {
                throw fail("liveness: node \(id) follows \(n.leaderId.map(String.init) ?? "-") in epoch \(n.epoch), leader \(top) is in \(l.epoch)")
            }
        }
    }
}
