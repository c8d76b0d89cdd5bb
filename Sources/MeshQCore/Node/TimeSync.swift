// TimeSync: a follower's estimate of its leader's clock (Cristian's
// algorithm). Every time_sync_interval_ms, and at once on following a new
// leader, the follower asks for the leader's wall clock; a reply's sample is
// offset = server time + rtt/2 - receive time, and CristianClock keeps the
// estimate from the samples with the smallest round trips.
// Invariant: samples are of one leader only (a new leader resets them), a
// reply counts only if it answers a request still outstanding (at most 16
// are), and only a reply from the current leader is taken (NodeCore checks).

struct TimeSync {
    private(set) var cristian = CristianClock()
    private var nextSync: Int64 = 0
    private var seq: UInt64 = 0
    /// Outstanding requests: sequence number to local wall time when sent.
    private var requests: [UInt64: Int64] = [:]
    private var syncedLeader: Int?

    /// Following `leader`: the sequence number of a request to send now, if
    /// one is due.
    mutating func due(leader: Int, now: Int64, wallMs: Int64, intervalMs: Int) -> UInt64? {
        if syncedLeader != leader {
            syncedLeader = leader
            cristian.reset()
            requests.removeAll()
            nextSync = now
        }
        guard now >= nextSync else { return nil }
        nextSync = now + Int64(intervalMs)
        seq += 1
        requests[seq] = wallMs
        if requests.count > 16, let oldest = requests.keys.min() { requests.removeValue(forKey: oldest) }
        return seq
    }

    /// The leader answered request `seq` with its clock at `serverMs`.
    mutating func reply(seq: UInt64, serverMs: Int64, wallMs: Int64) -> CristianClock.Sample? {
        guard let t0 = requests.removeValue(forKey: seq) else { return nil }
        return cristian.add(sentAtMs: Double(t0), serverTimeMs: Double(serverMs), receivedAtMs: Double(wallMs))
    }

    /// When the next request is due while following `leader` (at once for a
    /// leader not yet sampled).
    func nextWakeup(leader: Int) -> Int64 {
        syncedLeader == leader ? nextSync : 0
    }
}
