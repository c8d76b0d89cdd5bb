// ClusterSimulator: whole clusters of NodeCore — the same composition meshqd
// runs — on a simulated network and a virtual clock. Messages get random
// delays (so they reorder; a share arrive seconds late, from old epochs), may
// be dropped or duplicated, links can be cut in one direction or both, nodes
// crash (keeping only what they made durable) and restart, nodes pause (take
// no input for seconds, then everything at once), and clients send ENQUEUE,
// DEQUEUE, ACK and NACK to random nodes.
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
import Foundation
import HeapModule
@testable import MeshQCore

final class ClusterSimulator {
    struct Options {
        var nodes = 3
        var faultPhaseMs: Int64 = 8_000
        var settleMs: Int64 = 6_000
        var stepMs: Int64 = 5
        var dropRate = 0.05
        var duplicateRate = 0.02
        var maxDelayMs = 25
        /// A share of messages arrive 1-3 s late.
        var lateRate = 0.01
        /// Time between two faults.
        var faultEveryMs = 100...800
        /// Faults include pauses of 0.3-5 s (a frozen process).
        var pauses = true
        /// Instead of random faults: one node frozen for a while (the leader
        /// when `node` is nil) on an otherwise healthy network, and the
        /// availability check that comes with it (`FrozenNode`).
        var frozen: FrozenNode?
        /// Mean time between client operations.
        var clientOpEveryMs = 20
        var plantedBugs: Set<PlantedBug> = []
        /// Committed entries each node keeps in memory: small, so followers
        /// behind it catch up by snapshot in every run.
        var logWindow = 64
        /// Disk faults (fault phase only): per write, a failed fsync or a
        /// full disk; per boot, a corrupt record.
        var fsyncErrorRate = 0.002
        var diskFullRate = 0.002
        var corruptionAtBootRate = 0.2
        /// Snapshots and recovery replies past this many bytes go as chunks:
        /// small, so the chunked transfers (meant for GiB-sized state) run
        /// in every seed.
        var chunkBytes = 256
        /// Check 10 (no vote while rejoining); off to see whether the
        /// data checks alone catch a node that votes too early.
        var checkRejoinVotes = true
    }

    /// Disks that lose data often: most boots find a record corrupt.
    static func corruptionOptions() -> Options {
        var o = Options()
        o.corruptionAtBootRate = 0.8
        return o
    }

    /// A scripted freeze: availability must survive it. Every client command
    /// sent to a node that is not frozen, from `settleMs` after the freeze
    /// until the thaw, gets an answer that is not an error within `answerMs`.
    struct FrozenNode {
        var node: Int?
        var from: Int64 = 1_500
        var forMs: Int64 = 6_000
        var settleMs: Int64 = 1_000
        var answerMs: Int64 = 1_500
    }

    private enum ClientOp { case enqueue(String), dequeue, ack(UInt64), nack(UInt64) }

    /// More of everything: late messages, drops, faults twice as often.
    static func hostileOptions() -> Options {
        var o = Options()
        o.lateRate = 0.05
        o.dropRate = 0.1
        o.duplicateRate = 0.05
        o.maxDelayMs = 60
        o.faultEveryMs = 50...400
        return o
    }

    /// Freeze `node` (nil: the leader) on a network that loses nothing.
    static func frozenOptions(_ node: Int?) -> Options {
        var o = Options()
        o.frozen = FrozenNode(node: node)
        o.dropRate = 0
        o.duplicateRate = 0
        o.lateRate = 0
        o.fsyncErrorRate = 0
        o.diskFullRate = 0
        o.corruptionAtBootRate = 0
        o.faultPhaseMs = 8_000
        return o
    }

    struct Violation: Error, CustomStringConvertible {
        let seed: UInt64
        let what: String
        let trace: [String]
        var description: String {
            "seed \(seed): \(what)\nreplay: MESHQ_SIM_SEED=\(seed) swift test --filter SimulationTests\nlast events:\n  "
                + trace.joined(separator: "\n  ")
        }
    }

    private struct InFlight: Comparable {
        var at: Int64
        var order: UInt64
        var env: PeerEnvelope
        static func < (a: InFlight, b: InFlight) -> Bool { (a.at, a.order) < (b.at, b.order) }
    }

    /// What survives a crash: exactly what the node made durable.
    private struct Disk {
        var votedEpoch: UInt64 = 0
        var promisedEpoch: UInt64 = 0
        var snapshot: QueueSnapshot?
        var records: [LogRecord] = []
        var mailbox: [MailboxRecord] = []
        /// The rejoining marker: set when a corrupt record cut the log,
        /// cleared by the node's `.rejoined`.
        var rejoining = false
        /// Handed to the disk, not yet durable (the next step makes them so).
        var inFlight: [Write] = []
    }

    private enum Write {
        case records([LogRecord])
        case snapshot(QueueSnapshot)
    }

    /// Nodes stalled on a full disk: when space returns.
    private var diskFullUntil: [Int: Int64] = [:]

    let seed: UInt64
    let options: Options
    private var rng: SimRandom
    private(set) var now: Int64 = 0
    private var nodes: [Int: NodeCore] = [:]
    private var disks: [Int: Disk] = [:]
    private var cut: Set<[Int]> = []          // directed: [from, to]
    private var queue = Heap<InFlight>()
    private var order: UInt64 = 0
    private var trace: [String] = []
    private var leaderOfEpoch: [UInt64: Int] = [:]
    private var lastLamport: [Int: UInt64] = [:]
    /// Paused nodes: until when, and what reached them meanwhile (kept by
    /// their kernel, handed over in order when they wake).
    private var pausedUntil: [Int: Int64] = [:]
    private var backlog: [Int: [Backlogged]] = [:]
    private enum Backlogged {
        case peer(PeerEnvelope)
        case client(ClientCommand, ClientRef, owner: String)
    }
    /// Log agreement: the epoch of every committed index, as first seen, and
    /// how far each node's commits were checked.
    private var committedEpoch: [UInt64: UInt64] = [:]
    private var checkedCommit: [Int: UInt64] = [:]
    /// Orders every effect, so "after an ACK got OK" is exact.
    private var effectSeq: UInt64 = 0
    private var ackedOKSeq: [UInt64: UInt64] = [:]
    private(set) var elections = 0
    // Clients: what was asked of which node, and what the cluster promised.
    private var pending: [ClientRef: (node: Int, op: ClientOp, at: Int64)] = [:]
    private var nextClientRef: UInt64 = 1
    private var nextPayload = 0
    /// Enqueues answered OK: task id -> payload.
    private var okTasks: [UInt64: String] = [:]
    private var ackSent: Set<UInt64> = []
    /// When each ACK's OK reached its client.
    private var ackedOK: [UInt64: Int64] = [:]
    private var delivered: [UInt64] = []
    private var checkedLeaderships: Set<[UInt64]> = []
    /// Payloads answered QUEUED, and every payload ever handed out by a DEQUEUE.
    private var parked: [String: String] = [:]
    private var everDelivered: Set<String> = []
    private(set) var committedOps = 0
    /// What this run did, hashed (only when MESHQ_SIM_DIGEST is set).
    private var digestState = SimDigest()

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
        rng = SimRandom(seed: seed)
        for id in ids { disks[id] = Disk() }
    }

    var ids: [Int] { Array(1...options.nodes) }

    private var settings: ClusterSettings {
        var s = ClusterSettings()
        s.heartbeatIntervalMs = 50
        s.leaderTimeoutMs = 300
        s.electionTimeoutMs = 150
        s.timeSyncIntervalMs = 500
        return s
    }

    /// MESHQ_SIM_TRACE=1 prints every traced event as it happens (replaying one seed).
    private static let printTrace = ProcessInfo.processInfo.environment["MESHQ_SIM_TRACE"] != nil

    private func note(_ s: String) {
        if Self.printTrace { print("t=\(now) \(s)") }
        if SimDigest.enabled { digestState.add("t=\(now) \(s)") }
        trace.append("t=\(now) \(s)")
        if trace.count > 80 { trace.removeFirst(trace.count - 80) }
    }

    private func fail(_ what: String) -> Violation { Violation(seed: seed, what: what, trace: trace) }

    // MARK: nodes

    private func boot(_ id: Int) {
        diskFullUntil.removeValue(forKey: id)
        // A record found corrupt: the records before it stay, the node
        // catches up (the marker is durable before the rest is set aside).
        // Only as many disks lose data at once as the cluster can survive:
        // with a majority of logs damaged, nobody knows what was committed.
        let damaged = disks.values.filter(\.rejoining).count
        if now < options.faultPhaseMs, !disks[id]!.records.isEmpty, damaged < (ids.count - 1) / 2,
           rng.chance(options.corruptionAtBootRate) {
            let keep = rng.int(0...(disks[id]!.records.count - 1))
            note("disk \(id): record \(keep + 1) of \(disks[id]!.records.count) corrupt; catching up")
            disks[id]!.records.removeSubrange(keep...)
            disks[id]!.rejoining = true
        }
        let d = disks[id]!
        let n = NodeCore(nodeId: id, memberIds: ids, settings: settings, snapshot: d.snapshot, records: d.records,
                         votedEpoch: d.votedEpoch,
                         promisedEpoch: d.promisedEpoch, relayIdBase: rng.next() >> 1,
                         mailbox: Mailbox(records: d.mailbox), rejoining: d.rejoining)
        #if MESHQ_TESTING
        n.plantedBugs = options.plantedBugs
        #endif
        n.logWindow = options.logWindow
        n.transfers.chunkBytes = options.chunkBytes
        nodes[id] = n
        lastLamport[id] = n.clock.time
        checkedCommit[id] = n.log.baseIndex
        note("boot \(id) voted=\(d.votedEpoch)")
        n.start(now: now)
        // The transports connect where packets pass (a hint, not liveness).
        for p in ids where p != id {
            if linkUp(id, p) { n.peerUp(p, now: now) }
            if linkUp(p, id), pausedUntil[p] == nil { nodes[p]?.peerUp(id, now: now) }
        }
    }

    /// A crash: the host is gone (silence) or only the process died (its
    /// kernel closes its connections, and the peers see that).
    private func crash(_ id: Int, loud forced: Bool? = nil) {
        nodes.removeValue(forKey: id)
        pausedUntil.removeValue(forKey: id)
        backlog.removeValue(forKey: id)
        // Writes in flight: the first few reached the disk, the rest (a torn
        // last write included, which recovery cuts whole) did not.
        let inFlight = disks[id]!.inFlight
        disks[id]!.inFlight = []
        let kept = inFlight.isEmpty ? 0 : rng.int(0...inFlight.count)
        for w in inFlight.prefix(kept) { land(w, on: id) }
        // Its clients' connections drop: their outcome is unknown.
        pending = pending.filter { $0.value.node != id }
        let loud = forced ?? rng.chance(0.5)
        note("crash \(id) \(loud ? "(process died: sockets closed)" : "(host gone: silence)") kept \(kept)/\(inFlight.count) writes")
        guard loud else { return }
        for p in ids where p != id && pausedUntil[p] == nil { nodes[p]?.peerDown(id, now: now) }
    }

    private func pause(_ id: Int, forMs ms: Int64) {
        guard nodes[id] != nil, pausedUntil[id] == nil else { return }
        pausedUntil[id] = now + ms
        note("pause \(id) for \(ms) ms")
    }

    /// A paused node wakes: it reads what its kernel kept, in order, before
    /// its next timer runs.
    private func wake(_ id: Int) throws {
        pausedUntil.removeValue(forKey: id)
        let items = backlog.removeValue(forKey: id) ?? []
        note("wake \(id) with \(items.count) queued inputs")
        for item in items {
            guard let n = nodes[id] else { return }
            switch item {
            case .peer(let env):
                if SimDigest.enabled { digestState.add("w \(now) \(env.from)->\(env.to) \(env.lamport)") }
                n.peerMessage(env, now: now, wallMs: now)
                guard n.halted != nil || n.clock.time > env.lamport else {
                    throw fail("Lamport: node \(env.to) at \(n.clock.time) after receiving stamp \(env.lamport)")
                }
            case .client(let cmd, let ref, let owner):
                if SimDigest.enabled { digestState.add("wc \(now) \(id) \(ref)") }
                n.handle(cmd, from: ref, owner: owner, now: now, wallMs: now)
            }
            try drainEffects()
        }
    }

    private func land(_ w: Write, on id: Int) {
        switch w {
        case .records(let r): disks[id]!.records += r
        case .snapshot(let s):
            disks[id]!.snapshot = s
            disks[id]!.records = []
        }
    }

    /// The disks finish what was handed to them last step: durable now,
    /// unless the fsync fails (the process dies) or the disk is full (the
    /// write is rolled back; the node stalls silently until space returns,
    /// then rebuilds from what is durable, as meshqd does in-process).
    private func syncDisks() throws {
        for id in ids {
            guard let n = nodes[id], pausedUntil[id] == nil, !disks[id]!.inFlight.isEmpty else { continue }
            if now < options.faultPhaseMs, rng.chance(options.fsyncErrorRate) {
                note("disk \(id): fsync failed (EIO): the process exits")
                crash(id, loud: true)
                continue
            }
            if now < options.faultPhaseMs, rng.chance(options.diskFullRate) {
                disks[id]!.inFlight = []
                note("disk \(id): full (ENOSPC): write rolled back, node halts")
                n.halt(now: now, reason: "disk full")
                diskFullUntil[id] = now + Int64(rng.int(300...3_000))
                try drainEffects()
                continue
            }
            for w in disks[id]!.inFlight { land(w, on: id) }
            disks[id]!.inFlight = []
            n.persisted(now: now)
            try drainEffects()
        }
    }

    private func linkUp(_ a: Int, _ b: Int) -> Bool {
        nodes[a] != nil && nodes[b] != nil && !cut.contains([a, b])
    }

    // MARK: running

    func run() throws {
        for id in ids { boot(id) }
        try drainEffects()
        var nextFault = Int64(rng.int(100...600))
        var nextOp = Int64(rng.int(0...options.clientOpEveryMs * 2))
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
                issueClientOp()
                nextOp += Int64(rng.int(1...options.clientOpEveryMs * 2))
            }
            for id in ids where pausedUntil[id] == nil { nodes[id]?.tick(now: now, wallMs: now) }
            // The end of a loop iteration: batches go to replication.
            for id in ids where pausedUntil[id] == nil { nodes[id]?.flush(now: now) }
            try drainEffects()
            try checkSafety()
            try checkAvailability()
        }
        try checkLiveness()
    }

    // MARK: clients

    private func issueClientOp() {
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
        let ref = ClientRef(session: nextClientRef, seq: 1)
        nextClientRef += 1
        pending[ref] = (id, op, now)
        let cmd: ClientCommand
        switch op {
        case .enqueue(let p): cmd = .enqueue(payload: Array(p.utf8))
        case .dequeue: cmd = .dequeue(waitMs: nil)
        case .ack(let t):
            ackSent.insert(t)
            cmd = .ack(taskId: t)
        case .nack(let t): cmd = .nack(taskId: t)
        }
        if SimDigest.enabled { digestState.add("c \(now) \(id) \(ref) \(cmd)") }
        if pausedUntil[id] != nil {
            backlog[id, default: []].append(.client(cmd, ref, owner: "c\(ref.session)"))
        } else {
            nodes[id]!.handle(cmd, from: ref, owner: "c\(ref.session)", now: now, wallMs: now)
        }
    }

    /// A reply reached a client: check it against what was promised before.
    private func clientReply(_ ref: ClientRef, _ reply: Reply) throws {
        guard let p = pending.removeValue(forKey: ref) else { return }
        if let f = options.frozen, let victim = frozenVictim, p.node != victim {
            let lo: Int64 = f.from + f.settleMs, hi: Int64 = f.from + f.forMs - f.answerMs
            if p.at >= lo && p.at <= hi { answered[ref] = (now, reply.line.hasPrefix("ERR NOLEADER") || reply.line.hasPrefix("ERR NOQUORUM")) }
        }
        let words = reply.line.dropLast().split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
        guard let verb = words.first else { return }
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

    private func injectFault() {
        switch rng.int(0...(options.pauses ? 6 : 5)) {
        case 0, 1:
            let id = ids[rng.int(0...(ids.count - 1))]
            if nodes[id] != nil { crash(id) } else if diskFullUntil[id] == nil { boot(id) }
        case 2:
            // A partition of random shape: each node on side A or B. Silent:
            // packets are dropped, nobody is told.
            let side = Dictionary(uniqueKeysWithValues: ids.map { ($0, rng.chance(0.5)) })
            cut = Set(ids.flatMap { a in ids.filter { b in a != b && side[a] != side[b] }.map { [a, $0] } })
            note("partition \(ids.filter { side[$0]! }) | \(ids.filter { !side[$0]! })")
        case 3:
            // A one-way cut: a -> b drops, b -> a still passes.
            let a = ids[rng.int(0...(ids.count - 1))], b = ids[rng.int(0...(ids.count - 1))]
            if a != b {
                cut.insert([a, b])
                note("cut \(a)->\(b)")
            }
        case 6:
            pause(ids[rng.int(0...(ids.count - 1))], forMs: Int64(rng.int(300...5_000)))
        default:
            cut.removeAll()
            note("heal links")
        }
    }

    private func heal() throws {
        cut.removeAll()
        note("faults stop")
        for id in ids where pausedUntil[id] != nil { try wake(id) }
        for id in ids where nodes[id] == nil { boot(id) }
    }

    private func send(_ env: PeerEnvelope) {
        guard linkUp(env.from, env.to) else { return }
        // Once the faults stop, a harsher profile's network calms down to
        // the default one's (which stays the same throughout).
        let settling = now >= options.faultPhaseMs
        if rng.chance(settling ? min(options.dropRate, 0.05) : options.dropRate) { return }
        let copies = rng.chance(settling ? min(options.duplicateRate, 0.02) : options.duplicateRate) ? 2 : 1
        for _ in 0..<copies {
            order += 1
            let late = rng.chance(settling ? min(options.lateRate, 0.01) : options.lateRate)
            let delay = late ? rng.int(1_000...3_000) : rng.int(1...(settling ? min(options.maxDelayMs, 25) : options.maxDelayMs))
            queue.insert(InFlight(at: now + Int64(delay), order: order, env: env))
        }
    }

    private func deliverDue() throws {
        while let top = queue.min, top.at <= now {
            queue.removeMin()
            let env = top.env
            // A message in flight when its link was cut is lost with the link.
            guard linkUp(env.from, env.to), let n = nodes[env.to] else { continue }
            // A paused node's kernel keeps it until the node reads again.
            if pausedUntil[env.to] != nil {
                backlog[env.to, default: []].append(.peer(env))
                continue
            }
            if SimDigest.enabled { digestState.add("d \(now) \(env.from)->\(env.to) \(env.lamport)") }
            n.peerMessage(env, now: now, wallMs: now)
            // Lamport causality: receiving a stamp moves the clock past it.
            guard n.halted != nil || n.clock.time > env.lamport else {
                throw fail("Lamport: node \(env.to) at \(n.clock.time) after receiving stamp \(env.lamport)")
            }
            try drainEffects()
        }
    }

    private func drainEffects() throws {
        var again = true
        while again {
            again = false
            for id in ids {
                guard let n = nodes[id], n.hasEffects else { continue }
                again = true
                for e in n.takeEffects() {
                    effectSeq += 1
                    if SimDigest.enabled { digestState.add("e \(now) \(id) \(e)") }
                    switch e {
                    case .sendPeer(let env):
                        // 10. A node whose log lost records it may have
                        // acknowledged votes only once it has caught up.
                        // 11. A node halted by its disk says nothing more.
                        if let why = n.halted { throw fail("node \(id), halted (\(why)), sent \(env.body)") }
                        if options.checkRejoinVotes, disks[id]!.rejoining, Self.isVote(env) {
                            throw fail("node \(id) voted while rejoining (its log lost records it may have acknowledged)")
                        }
                        // 4, locally: a node inside the section defers every request.
                        if case .mutex(.reply) = env.body, n.inCriticalSection {
                            throw fail("node \(id) answered node \(env.to)'s request while inside the critical section")
                        }
                        if case .forwardReply(_, let line) = env.body, line.starts(with: Array("TASK ".utf8)) {
                            let words = line.split(separator: UInt8(ascii: " "), maxSplits: 2)
                            if words.count > 1, let task = UInt64(String(decoding: words[1], as: UTF8.self)) {
                                try checkTaskSent(task, by: id)
                            }
                        }
                        send(env)
                    case .resetPeerLink:
                        break
                    case .persistVote(let epoch, let promised):
                        guard epoch >= disks[id]!.votedEpoch else {
                            throw fail("node \(id) persisted vote \(epoch) below \(disks[id]!.votedEpoch)")
                        }
                        disks[id]!.votedEpoch = epoch
                        disks[id]!.promisedEpoch = promised
                    case .persist(let records):
                        disks[id]!.inFlight.append(.records(records))
                    case .persistMailbox(let recs):
                        disks[id]!.mailbox += recs
                        n.mailboxPersisted(now: now)
                    case .installSnapshot(let snap):
                        disks[id]!.inFlight.append(.snapshot(snap))
                    case .rejoined:
                        disks[id]!.rejoining = false
                    case .log(let ev):
                        if ev.name == "leader_elected" { elections += 1 }
                        if ["leader_elected", "leader_timeout", "leader_stepdown", "leader_recovery",
                            "leader_recovered", "snapshot_installed", "log_conflict"].contains(ev.name) {
                            note("\(ev.name) " + ev.fields.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
                        }
                    case .reply(let ref, let reply):
                        if case .task(let task, _, _) = reply { try checkTaskSent(task, by: id) }
                        try clientReply(ref, reply)
                    }
                }
            }
        }
    }

    // MARK: invariants

    private static func isVote(_ env: PeerEnvelope) -> Bool {
        switch env.body {
        case .election(.vote): return true
        case .relay(_, let origin, _, _, let inner): return origin == env.from && isVote(inner.envelope)
        default: return false
        }
    }

    private var frozenVictim: Int?
    /// When each client command's reply came, and what it was (scripted freezes).
    private var answered: [ClientRef: (at: Int64, error: Bool)] = [:]

    /// 9 (scripted freezes). A frozen node must not stop the others: every
    /// command sent to another node once the cluster had time to notice is
    /// answered, without an error, within `answerMs`.
    private func checkAvailability() throws {
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
    private func checkTaskSent(_ task: UInt64, by id: Int) throws {
        guard let okSeq = ackedOKSeq[task], effectSeq > okSeq else { return }
        throw fail("node \(id) sent TASK \(task) after its ACK got OK (at t=\(ackedOK[task] ?? -1)): "
                   + (nodes[id]?.debugSummary ?? ""))
    }

    private func checkSafety() throws {
        // 7. Log agreement: any two nodes agree on every index at or below
        // both their commit points (checked against the first node, ever,
        // to commit each index).
        for (id, n) in nodes.sorted(by: { $0.key < $1.key }) {
            var i = max(checkedCommit[id] ?? 0, n.log.baseIndex)
            while i < n.commitIndex {
                i += 1
                guard let e = n.log.epoch(at: i) else { continue }
                if let known = committedEpoch[i], known != e {
                    throw fail("log agreement: node \(id) committed index \(i) in epoch \(e), another node committed it in epoch \(known)")
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
                for (task, payload) in okTasks where !ackSent.contains(task) && n.queue.task(task) == nil {
                    throw fail("leader \(id) of epoch \(n.epoch) lost task \(task) (\(payload)), whose ENQUEUE got OK")
                }
                // 6. A parked entry is applied once: no payload is in the queue twice.
                var seen: Set<[UInt8]> = []
                for t in n.queue.allTasks() where !seen.insert(t.payload).inserted {
                    let copies = n.queue.allTasks().filter { $0.payload == t.payload }.map { "task \($0.id)" }
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
    private func checkLiveness() throws {
        // 6. Every parked entry was delivered: the mailboxes are empty and
        // each QUEUED payload is in the leader's queue or was handed out.
        for (id, n) in nodes where !n.mailbox.isEmpty {
            let states = ids.map { "node \($0): " + (nodes[$0]?.debugSummary ?? "down") }.joined(separator: "\n  ")
            throw fail("liveness: node \(id) still holds \(n.mailbox.count) parked entries at t=\(now)\n  \(states)")
        }
        if let l = nodes[ids.max()!] {
            let inQueue = Set(l.queue.allTasks().map { String(decoding: $0.payload, as: UTF8.self) })
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
            where !ackSent.contains(task) && l.queue.task(task) == nil {
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
