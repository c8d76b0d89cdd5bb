// ClusterSimulator as the outlet of the shared EffectInterpreter (the tests'
// one switch over NodeCore.Effect): each effect is numbered, and checked
// before it takes effect. 10. A node whose log lost records it may have
// acknowledged votes only once it has caught up. 11. A node halted by its
// disk says nothing more. 4, locally: a node inside the critical section
// defers every request. 3'. No TASK for a task whose ACK got OK. A vote on
// disk never goes back. Envelopes then go to the lossy SimNetwork, replies
// to the client checks, and the notable log events to the trace.
// Invariant: the checks read the disk the interpreter holds (passed in), never
// `disks`, which the interpreter is writing.
@testable import MeshQCore
import MeshQTestSupport

extension ClusterSimulator: EffectOutlet {
    func willApply(_ effect: NodeCore.Effect, of id: Int) {
        effectSeq += 1
        if SimDigest.enabled { digestState.add("e \(now) \(id) \(effect)") }
        if case .persist(let records) = effect {
            for r in records {
                switch r {
                case .entry(let e): written[id, default: [:]][e.index] = e
                case .truncate(let cut): written[id] = written[id]?.filter { $0.key <= cut }
                default: break
                }
            }
        }
    }

    func installing(_ snapshot: QueueSnapshot, at id: Int) {
        written[id] = written[id]?.filter { $0.key > snapshot.lastIndex }
    }

    func send(_ env: PeerEnvelope, from id: Int, node n: NodeCore, disk: NodeDisk) throws {
        if let why = n.halted { throw fail("node \(id), halted (\(why)), sent \(env.body)") }
        if options.checkRejoinVotes, disk.rejoining, Self.isVote(env) {
            throw fail("node \(id) voted while rejoining (its log lost records it may have acknowledged)")
        }
        if case .mutex(.reply) = env.body, n.inCriticalSection {
            throw fail("node \(id) answered node \(env.to)'s request while inside the critical section")
        }
        // A delivery relayed to a follower's client (checks 3, 13, 14, 16).
        if case .forwardReply(_, let line) = env.body,
           line.starts(with: Array("TASK ".utf8)) || line.starts(with: Array("JOB ".utf8)) {
            let words = line.split(separator: UInt8(ascii: " "), maxSplits: 2)
            if words.count > 1, let task = UInt64(String(decoding: words[1], as: UTF8.self)) {
                try checkTaskSent(task, by: id)
            }
            try checkDelivery(String(decoding: line, as: UTF8.self), by: id)
        }
        guard linkUp(env.from, env.to) else { return }
        network.send(env, now: now, rng: &rng)
    }

    func voting(_ epoch: UInt64, promised: UInt64, at id: Int, disk: NodeDisk) throws {
        guard epoch >= disk.votedEpoch else {
            throw fail("node \(id) persisted vote \(epoch) below \(disk.votedEpoch)")
        }
    }

    func reply(_ reply: Reply, to ref: ClientRef, from id: Int) throws {
        if case .task(let task, _, _) = reply { try checkTaskSent(task, by: id) }
        if case .job(let task, _, _, _, _) = reply { try checkTaskSent(task, by: id) }
        switch reply {
        case .task, .job: try checkDelivery(String(reply.line.dropLast()), by: id)
        default: break
        }
        try clientReply(ref, reply)
    }

    func log(_ ev: LogEvent, from id: Int) {
        if ev.name == "leader_elected" { elections += 1 }
        if ["leader_elected", "leader_timeout", "leader_stepdown", "leader_recovery",
            "leader_recovered", "snapshot_installed", "log_conflict", "rejoin_start", "rejoin_behind", "rejoined",
            "new_cluster"].contains(ev.name) {
            note("\(ev.name) " + ev.fields.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
        }
    }

    /// Applies every node's effects, again and again, until none has any.
    func drainEffects() throws {
        var again = true
        while again {
            again = false
            for id in ids {
                guard let n = nodes[id], n.hasEffects else { continue }
                again = true
                if options.protocolTwo { noteOffsets() }
                try interpreter.apply(n.takeEffects(), of: id, node: n, disk: &disks[id]!, now: now, to: self)
            }
        }
    }

    static func isVote(_ env: PeerEnvelope) -> Bool {
        switch env.body {
        case .election(.vote): return true
        case .relay(_, let origin, _, _, let inner): return origin == env.from && isVote(inner.envelope)
        default: return false
        }
    }
}
