// ClusterSimulator: whole clusters of NodeCore — the same composition meshqd
// runs — on a simulated network and a virtual clock. Messages get random
// delays (so they reorder; a share arrive seconds late, from old epochs), may
// be dropped or duplicated, links can be cut in one direction or both, nodes
// crash (keeping only what they made durable) and restart, nodes pause (take
// no input for seconds, then everything at once), and clients send ENQUEUE,
// DEQUEUE, ACK and NACK to random nodes, and protocol 2's PUT, TAKE, TOUCH,
// NACK with a delay, BURY, KICK and PAUSE (SimProtocolTwo.swift).
//
// The network tells a node nothing, as a real one does: a cut, a partition,
// a pause or a crashed host is silence that the node must notice itself.
// Only a process that dies on a live host (half the crashes) closes its
// sockets, which its peers see (`peerDown`); a connection made at boot is
// reported (`peerUp`), which proves nothing about liveness either.
// Disks fail too. A write becomes durable only at the next step; a crash
// before that keeps a prefix of the writes in flight (unflushed writes lost,
// a torn last write cut). A failed fsync kills the process; a full disk
// rolls the write back and halts the node (it answers its clients with
// errors and falls silent, sockets open) until space returns and it
// rebuilds from disk, as meshqd does in-process. At boot a record may be found
// corrupt: the node keeps the records before it and starts catching up.
// After every step the invariants are checked; a violation stops the run with
// the seed and the last events, and the same seed replays the run bit for bit.
// Once faults stop, the cluster must settle and answer every client.
//
// The nodes run on the tests' shared pieces (MeshQTestSupport): each node's
// NodeDisk, and the one EffectInterpreter, with log writes in flight until
// the next step; this class is its outlet (SimEffects.swift) and hands
// envelopes to SimNetwork. Options, nodes and faults, clients, and the
// invariant checks are in the other Sim*.swift files.
import Foundation
@testable import MeshQCore
import MeshQTestSupport

final class ClusterSimulator {
    /// A node's input while it is paused, kept by its kernel.
    enum Backlogged {
        case peer(PeerEnvelope)
        case client(ClientCommand, ClientRef, owner: String)
    }

    /// Nodes stalled on a full disk: when space returns.
    var diskFullUntil: [Int: Int64] = [:]

    let seed: UInt64
    let options: Options
    var rng: SimRandom
    private(set) var now: Int64 = 0
    var nodes: [Int: NodeCore] = [:]
    var disks: [Int: NodeDisk] = [:]
    var network: SimNetwork
    /// Log writes stay in flight until the next step (`syncDisks`).
    let interpreter = EffectInterpreter(durability: .atNextSync)
    var trace: [String] = []
    var leaderOfEpoch: [UInt64: Int] = [:]
    var lastLamport: [Int: UInt64] = [:]
    /// Paused nodes: until when, and what reached them meanwhile (kept by
    /// their kernel, handed over in order when they wake).
    var pausedUntil: [Int: Int64] = [:]
    var backlog: [Int: [Backlogged]] = [:]
    /// Log agreement: the epoch of every committed index, as first seen, and
    /// how far each node's commits were checked.
    var committedEpoch: [UInt64: UInt64] = [:]
    var checkedCommit: [Int: UInt64] = [:]
    /// Each node's entry as it last wrote it at each index, so an entry
    /// committed in a batch larger than the in-memory window (it left the
    /// log in the step that committed it) is still checked. Cleared at boot,
    /// cut by truncations, and below a snapshot it installs.
    var written: [Int: [UInt64: LogEntry]] = [:]
    /// Orders every effect, so "after an ACK got OK" is exact.
    var effectSeq: UInt64 = 0
    var ackedOKSeq: [UInt64: UInt64] = [:]
    var elections = 0
    // Clients: what was asked of which node, and what the cluster promised.
    var pending: [ClientRef: (node: Int, op: ClientOp, at: Int64)] = [:]
    var nextClientRef: UInt64 = 1
    var nextPayload = 0
    /// Enqueues answered OK: task id -> payload.
    var okTasks: [UInt64: String] = [:]
    var ackSent: Set<UInt64> = []
    /// When each ACK's OK reached its client.
    var ackedOK: [UInt64: Int64] = [:]
    var delivered: [UInt64] = []
    var checkedLeaderships: Set<[UInt64]> = []
    /// Payloads answered QUEUED, and every payload ever handed out by a DEQUEUE.
    var parked: [String: String] = [:]
    var everDelivered: Set<String> = []
    var frozenVictim: Int?
    /// When each client command's reply came, and what it was (scripted freezes).
    var answered: [ClientRef: (at: Int64, error: Bool)] = [:]
    var committedOps = 0
    /// What this run did, hashed (only when MESHQ_SIM_DIGEST is set).
    var digestState = SimDigest()
    /// The protocol-2 clients and their checks (SimProtocolTwo.swift).
    var p2: ProtocolTwoState

    /// The run's digest, closed with the generator's next draw (on a copy).
    var digest: String {
        var d = digestState
        var r = rng
        d.add("end \(now) \(r.next())")
        for id in ids { d.add(nodes[id]?.debugSummary ?? "down") }
        return String(d.value, radix: 16)
    }

    init(seed: UInt64, options: Options = Options()) {
        self.seed = seed
        self.options = options
        ids = Array(1...options.nodes)
        rng = SimRandom(seed: seed)
        p2 = ProtocolTwoState(seed: seed)
        network = SimNetwork(options: options)
        for id in ids { disks[id] = NodeDisk() }
    }

    /// The node ids, 1...nodes.
    let ids: [Int]

    var settings: ClusterSettings {
        var s = NodeCoreDriver.defaultSettings
        s.timeSyncIntervalMs = 500
        // Short leases, so they run out and tasks are delivered again within a run.
        s.queues["a"] = QueueSettings(ackTimeoutMs: 1_000, maxDeliveries: 3)
        s.queues["b"] = QueueSettings(ackTimeoutMs: 1_500)
        return s
    }

    /// MESHQ_SIM_TRACE=1 prints every traced event as it happens (replaying one seed).
    static let printTrace = ProcessInfo.processInfo.environment["MESHQ_SIM_TRACE"] != nil

    func note(_ s: String) {
        if Self.printTrace { print("t=\(now) \(s)") }
        if SimDigest.enabled { digestState.add("t=\(now) \(s)") }
        trace.append("t=\(now) \(s)")
        if trace.count > 80 { trace.removeFirst(trace.count - 80) }
    }

    func fail(_ what: String) -> Violation { Violation(seed: seed, what: what, trace: trace) }

    // MARK: running

    func run() throws {
        for id in ids { boot(id) }
        try drainEffects()
        var nextFault = Int64(rng.int(100...600))
        var nextOp = Int64(rng.int(0...options.clientOpEveryMs * 2))
        var nextP2Op = Int64(p2.rng.int(0...options.clientOpEveryMs * 2))
        let end = options.faultPhaseMs + options.settleMs
        // Clients stop early enough for their last commands to be answered.
        let clientsStop = end - options.settleMs / 2
        while now < end {
            now += options.stepMs
            if let f = options.frozen {
                if now == f.from {
                    let victim = f.node ?? nodes.first { $0.value.role == .leader }?.key ?? ids.max()!
                    pause(victim, forMs: f.forMs)
                    frozenVictim = victim
                }
            } else if now < options.faultPhaseMs, now >= nextFault {
                injectFault()
                nextFault = now + Int64(rng.int(options.faultEveryMs))
            } else if now >= options.faultPhaseMs, now - options.stepMs < options.faultPhaseMs {
                try heal()
            }
            if Self.printTrace && now % 100 == 0 {
                for id in ids { print("t=\(now)   node \(id): " + (nodes[id]?.debugSummary ?? "down")) }
            }
            for id in ids { if let until = pausedUntil[id], now >= until { try wake(id) } }
            for id in ids {
                // Space again: the halted process rebuilds from its disk
                // (in-process, so not while it is paused: it first reads,
                // and refuses, what its kernel kept meanwhile).
                guard let until = diskFullUntil[id], now >= until, pausedUntil[id] == nil else { continue }
                nodes.removeValue(forKey: id)
                boot(id)
            }
            try syncDisks()
            try deliverDue()
            while now >= nextOp && now < clientsStop {
                try issueClientOp()
                nextOp += Int64(rng.int(1...options.clientOpEveryMs * 2))
            }
            while options.protocolTwo && now >= nextP2Op && now < clientsStop {
                try issueProtocolTwoOp()
                nextP2Op += Int64(p2.rng.int(1...options.clientOpEveryMs * 2))
            }
            for id in ids where pausedUntil[id] == nil {
                guard let n = nodes[id] else { continue }
                try observingLeases(id) { n.tick(now: now, wallMs: now) }
            }
            // The end of a loop iteration: batches go to replication.
            for id in ids where pausedUntil[id] == nil { nodes[id]?.flush(now: now) }
            try drainEffects()
            try checkSafety()
            try checkAvailability()
        }
        try checkLiveness()
    }

    func deliverDue() throws {
        while let env = network.due(by: now) {
            // A message in flight when its link was cut is lost with the link.
            guard linkUp(env.from, env.to), let n = nodes[env.to] else { continue }
            // A paused node's kernel keeps it until the node reads again.
            if pausedUntil[env.to] != nil {
                backlog[env.to, default: []].append(.peer(env))
                continue
            }
            if SimDigest.enabled { digestState.add("d \(now) \(env.from)->\(env.to) \(env.lamport)") }
            try observingLeases(env.to) { n.peerMessage(env, now: now, wallMs: now) }
            // Lamport causality: receiving a stamp moves the clock past it.
            guard n.halted != nil || n.clock.time > env.lamport else {
                throw fail("Lamport: node \(env.to) at \(n.clock.time) after receiving stamp \(env.lamport)")
            }
            try drainEffects()
        }
    }
}
