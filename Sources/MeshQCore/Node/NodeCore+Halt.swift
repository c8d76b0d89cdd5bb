// NodeCore halted: storage refused a write this node needed (a full disk:
// the write was rolled back, nothing of it is on disk). Nothing that
// depended on that write may be answered OK, and this core's memory is now
// ahead of its disk, so it must not speak for that state either: it answers
// everything in flight with an error, sends its peers nothing more (they
// see it fall silent, as after a crash: a leader is replaced, a follower
// stops acknowledging), and answers new queue commands with an error. The
// driver replaces it, once the disk has space again, with a core rebuilt
// from what is durable, exactly as after a restart.
// Invariant: after `halt`, the only effects are replies and log lines.

extension NodeCore {
    /// Storage could not make a write durable (`reason`, e.g. "disk full").
    public func halt(now: Int64, reason: String) {
        guard halted == nil else { return }
        emit(.error, "node_halted", [("node", "\(nodeId)"), ("reason", reason), ("role", role.rawValue),
                                     ("epoch", "\(epoch)"), ("lamport", "\(clock.time)")])
        let wasLeader = leader
        roleState = .halted(reason: reason)
        leaderId = nil
        let notApplied = "node \(nodeId) cannot write to its data_dir (\(reason)); not applied"
        if let wasLeader { stoppedLeading(wasLeader, now: now) }
        for h in commands.takeAllHeld() { reply(h.target, .error(.noleader, notApplied)) }
        failForwards { _ in true }
        for w in waiters.removeAll() { reply(w.target, .error(.noleader, notApplied)) }
        for p in delivery.abandonUnconfirmedParks() { reply(p.target, .error(.noleader, notApplied + " (not parked)")) }
        pendingAcks.removeAll()
        effects.removeAll { effect in
            switch effect {
            case .reply, .log: return false
            default: return true
            }
        }
    }

    /// A halted core's answer to a queue command.
    func refuseHalted(_ target: ReplyTarget, reason: String) {
        reply(target, .error(.noleader, "node \(nodeId) cannot write to its data_dir (\(reason)); not applied: try another node"))
    }
}
