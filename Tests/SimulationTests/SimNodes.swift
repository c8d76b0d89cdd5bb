// ClusterSimulator's nodes and their faults: boots (a record may be found
// corrupt, or the whole replicated state gone), crashes (silent host or closed sockets; writes in flight keep a
// prefix), pauses (input kept by the kernel, handed over on waking), the
// disks' step (durable, or a failed fsync, or a full disk that halts the node
// until space returns), and the random fault schedule with its end.
// Invariant: a node boots only from what its NodeDisk made durable, and each
// fault draws its random numbers in a fixed order, so a seed replays.
@testable import MeshQCore
import MeshQTestSupport

extension ClusterSimulator {
    func boot(_ id: Int) {
        diskFullUntil.removeValue(forKey: id)
        // A record found corrupt: the records before it stay, the node
        // catches up (the marker is durable before the rest is set aside).
        // Only as many disks lose data at once as the cluster can survive:
        // with a majority of logs damaged, nobody knows what was committed.
        // A disk holding nothing counts: its node cannot tell a new disk
        // from a wiped one.
        let damaged = disks.values.filter { $0.startsRejoining(members: ids.count) }.count
        if now < options.faultPhaseMs, !disks[id]!.records.isEmpty, damaged < (ids.count - 1) / 2,
           rng.chance(options.corruptionAtBootRate) {
            let keep = rng.int(0...(disks[id]!.records.count - 1))
            note("disk \(id): record \(keep + 1) of \(disks[id]!.records.count) corrupt; catching up")
            disks[id]!.corrupt(keep: keep)
        } else if now < options.faultPhaseMs, disks[id]!.snapshot != nil || !disks[id]!.records.isEmpty,
                  damaged < (ids.count - 1) / 2, rng.chance(options.wipeAtBootRate) {
            // The data_dir is lost (a replaced disk): the node cannot tell
            // it from a new one, and its peers' logs must.
            note("disk \(id): wiped")
            disks[id]!.wipeReplicatedState()
        }
        disks[id]!.markRejoiningIfEmpty(members: ids.count)
        let d = disks[id]!
        let n = d.boot(id, members: ids, settings: settings, relayIdBase: rng.next() >> 1)
        #if MESHQ_TESTING
        n.plantedBugs = options.plantedBugs
        #endif
        n.logWindow = options.logWindow
        n.transfers.chunkBytes = options.chunkBytes
        nodes[id] = n
        lastLamport[id] = n.clock.time
        checkedCommit[id] = n.log.baseIndex
        written[id] = [:]
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
    func crash(_ id: Int, loud forced: Bool? = nil) {
        nodes.removeValue(forKey: id)
        pausedUntil.removeValue(forKey: id)
        backlog.removeValue(forKey: id)
        // Writes in flight: the first few reached the disk, the rest (a torn
        // last write included, which recovery cuts whole) did not.
        let inFlight = disks[id]!.inFlight.count
        let kept = inFlight == 0 ? 0 : rng.int(0...inFlight)
        disks[id]!.crash(keeping: kept)
        // Its clients' connections drop: their outcome is unknown (a
        // careful producer sends a keyed PUT again).
        for (_, p) in pending.sorted(by: { $0.key.session < $1.key.session }) where p.node == id {
            if case .put(let payload) = p.op, p2.puts[payload]?.options.key != nil { p2.retry.append(payload) }
        }
        pending = pending.filter { $0.value.node != id }
        let loud = forced ?? rng.chance(0.5)
        note("crash \(id) \(loud ? "(process died: sockets closed)" : "(host gone: silence)") kept \(kept)/\(inFlight) writes")
        guard loud else { return }
        for p in ids where p != id && pausedUntil[p] == nil { nodes[p]?.peerDown(id, now: now) }
    }

    func pause(_ id: Int, forMs ms: Int64) {
        guard nodes[id] != nil, pausedUntil[id] == nil else { return }
        pausedUntil[id] = now + ms
        note("pause \(id) for \(ms) ms")
    }

    /// A paused node wakes: it reads what its kernel kept, in order, before
    /// its next timer runs.
    func wake(_ id: Int) throws {
        pausedUntil.removeValue(forKey: id)
        let items = backlog.removeValue(forKey: id) ?? []
        note("wake \(id) with \(items.count) queued inputs")
        for item in items {
            guard let n = nodes[id] else { return }
            switch item {
            case .peer(let env):
                if SimDigest.enabled { digestState.add("w \(now) \(env.from)->\(env.to) \(env.lamport)") }
                try observingLeases(id) { n.peerMessage(env, now: now, wallMs: now) }
                guard n.halted != nil || n.clock.time > env.lamport else {
                    throw fail("Lamport: node \(env.to) at \(n.clock.time) after receiving stamp \(env.lamport)")
                }
            case .client(let cmd, let ref, let owner):
                if SimDigest.enabled { digestState.add("wc \(now) \(id) \(ref)") }
                try observingLeases(id) { n.handle(cmd, from: ref, owner: owner, now: now, wallMs: now) }
            }
            try drainEffects()
        }
    }

    /// The disks finish what was handed to them last step: durable now,
    /// unless the fsync fails (the process dies) or the disk is full (the
    /// write is rolled back; the node stalls silently until space returns,
    /// then rebuilds from what is durable, as meshqd does in-process).
    func syncDisks() throws {
        for id in ids {
            guard let n = nodes[id], pausedUntil[id] == nil, !disks[id]!.inFlight.isEmpty else { continue }
            if now < options.faultPhaseMs, rng.chance(options.fsyncErrorRate) {
                note("disk \(id): fsync failed (EIO): the process exits")
                crash(id, loud: true)
                continue
            }
            if now < options.faultPhaseMs, rng.chance(options.diskFullRate) {
                disks[id]!.rollBack()
                note("disk \(id): full (ENOSPC): write rolled back, node halts")
                n.halt(now: now, reason: "disk full")
                diskFullUntil[id] = now + Int64(rng.int(300...3_000))
                try drainEffects()
                continue
            }
            interpreter.completeWrites(node: n, disk: &disks[id]!, now: now)
            try drainEffects()
        }
    }

    func linkUp(_ a: Int, _ b: Int) -> Bool {
        nodes[a] != nil && nodes[b] != nil && network.passes(a, b)
    }

    func injectFault() {
        switch rng.int(0...(options.pauses ? 6 : 5)) {
        case 0, 1:
            let id = ids[rng.int(0...(ids.count - 1))]
            if nodes[id] != nil { crash(id) } else if diskFullUntil[id] == nil { boot(id) }
        case 2:
            // A partition of random shape: each node on side A or B. Silent:
            // packets are dropped, nobody is told.
            let side = Dictionary(uniqueKeysWithValues: ids.map { ($0, rng.chance(0.5)) })
            network.cut = Set(ids.flatMap { a in ids.filter { b in a != b && side[a] != side[b] }.map { [a, $0] } })
            note("partition \(ids.filter { side[$0]! }) | \(ids.filter { !side[$0]! })")
        case 3:
            // A one-way cut: a -> b drops, b -> a still passes.
            let a = ids[rng.int(0...(ids.count - 1))], b = ids[rng.int(0...(ids.count - 1))]
            if a != b {
                network.cut.insert([a, b])
                note("cut \(a)->\(b)")
            }
        case 6:
            pause(ids[rng.int(0...(ids.count - 1))], forMs: Int64(rng.int(300...5_000)))
        default:
            network.cut.removeAll()
            note("heal links")
        }
    }

    func heal() throws {
        network.cut.removeAll()
        note("faults stop")
        for id in ids where pausedUntil[id] != nil { try wake(id) }
        for id in ids where nodes[id] == nil { boot(id) }
    }
}
