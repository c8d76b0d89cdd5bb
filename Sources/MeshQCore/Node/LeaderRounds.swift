// LeaderRounds: the leader's replication rounds as one value, in the manner
// of SwiftNIO's state machines and etcd raft's Step/Ready: it holds the
// Ricart-Agrawala section, the batch being built and the two-phase commit
// rounds in flight, takes inputs (a batch is ready, a mutex message, a vote,
// a peer lost, time) and returns actions that NodeCore carries out (write
// these entries, send these messages, these rounds committed).
//
// Algorithm. Proposals gather in `batch` over a loop iteration. `advance`
// starts a round when the batch is not empty, rounds are open (this node
// leads and is not recovering) and fewer than `maxInFlight` rounds are in
// flight. With the section held, and keepable (nobody asked for it since,
// and every live peer was asked when it was granted), the round begins at
// once, with no request's round trip. With the section free, it is
// requested with (Lamport ts, node id) from the live peers, asked again
// every retransmit interval (a reply lost with a link) and given up after
// commit_timeout_ms (`.sectionTimedOut`). A round begins by handing its
// batch out as `.begin` (NodeCore writes the entries, sends each follower
// what it lacks, then persists its own copy, so the copies overlap) and
// opening a TwoPhaseCommit round. Votes decide rounds strictly in log order
// (`.committed`); a timeout or an impossible majority aborts every round in
// flight (`.aborted`).
//
// Invariants: a round begins only inside the section; the section is
// released only with no round in flight; a requester the leader deferred is
// answered as soon as the rounds in flight drain, and no round begins
// meanwhile; every proposal leaves the batch in exactly one `.begin`, or
// through `takeBatch` to be answered with an error.

struct LeaderRounds {
    /// What the rounds need to know of the node when they may begin one.
    struct Context {
        /// Rounds may begin: this node leads and is not recovering.
        var open: Bool
        var epoch: UInt64
        /// The log index the next round's first entry gets.
        var nextIndex: UInt64
        var livePeers: Set<Int>
        var now: Int64
        /// A mutex request unanswered this long is sent again.
        var retransmitMs: Int64
        var commitTimeoutMs: Int
    }

    enum Action {
        case mutex(to: Int, RicartAgrawalaMutex.Message)
        /// Write `batch` as entries `first...` of this epoch, send each of
        /// `prepare` the entries it lacks, then persist our own copy.
        case begin(round: UInt64, first: UInt64, batch: [Proposal], prepare: [Int])
        /// Tell a follower that the log committed through `through`.
        case commit(to: Int, round: UInt64, through: UInt64)
        /// Tell a follower that the rounds through `round` aborted.
        case abort(to: Int, round: UInt64)
        /// Every round ending at or below `through` committed, in log order.
        case committed(through: UInt64)
        /// Every round in flight aborted: their clients' outcome is unknown,
        /// and this leader resigns.
        case aborted(reason: String)
        /// The section was not granted within commit_timeout_ms: the batch
        /// fails and this leader resigns.
        case sectionTimedOut
        case log(LogEvent)
    }

    /// Rounds prepared at once (the pipeline's depth).
    static let maxInFlight = 4

    private(set) var mutex: RicartAgrawalaMutex
    private(set) var coordinator: TwoPhaseCommit
    /// Proposals waiting for the next round, in the order they came.
    private(set) var batch: [Proposal] = []
    /// The number of the latest round (never reused by this node).
    private(set) var latestRound: UInt64 = 0
    /// While requesting the section: when to ask again.
    private(set) var retryAt: Int64?
    /// While requesting the section: when to give the leadership up.
    private var giveUpAt: Int64 = 0

    init(nodeId: Int, members: [Int]) {
        mutex = RicartAgrawalaMutex(nodeId: nodeId)
        coordinator = TwoPhaseCommit(nodeId: nodeId, members: members)
    }

    /// Whether the mutex and the rounds log their debug-level events.
    var debugEvents: Bool {
        get { coordinator.debugEvents }
        set {
            coordinator.debugEvents = newValue
            mutex.debugEvents = newValue
        }
    }

    #if MESHQ_TESTING
    mutating func plant(_ bugs: Set<PlantedBug>) { mutex.plant(bugs) }
    #endif

    var inRound: Bool { coordinator.inRound }
    var roundsInFlight: Int { coordinator.roundsInFlight }
    /// The earliest time `tick` has work to do.
    var nextDeadline: Int64? { [coordinator.deadline, retryAt].compactMap { $0 }.min() }

    // MARK: the batch

    mutating func propose(_ p: Proposal) { batch.append(p) }

    /// A new leadership's first entry goes ahead of everything waiting.
    mutating func proposeFirst(_ p: Proposal) { batch.insert(p, at: 0) }

    /// The batch, taken out to be answered with an error.
    mutating func takeBatch() -> [Proposal] {
        defer { batch.removeAll() }
        return batch
    }

    /// Whether `advance` would begin or request a round now.
    func canStart(open: Bool, livePeers: Set<Int>) -> Bool {
        guard open, !batch.isEmpty, coordinator.roundsInFlight < Self.maxInFlight else { return false }
        switch mutex.state {
        case .requesting: return false
        case .idle: return true
        case .inside: return mayKeep(livePeers) || !coordinator.inRound
        }
    }

    /// The section held may serve the next round too: nobody asked for it
    /// meanwhile, and every live peer was asked when it was granted.
    private func mayKeep(_ livePeers: Set<Int>) -> Bool {
        !mutex.hasDeferred && livePeers.isSubset(of: mutex.asked)
    }

    // MARK: inputs

    /// A batch may be ready, or a round ended: gives the section away if it
    /// may not be kept and no round is in flight, then begins (or asks the
    /// section for) the next round when one can start.
    mutating func advance(_ c: Context, clock: inout LamportClock) -> [Action] {
        var out: [Action] = []
        if mutex.state == .inside, !coordinator.inRound, !c.open || !mayKeep(c.livePeers) {
            out += actions(mutex.release())
        }
        guard canStart(open: c.open, livePeers: c.livePeers) else { return out }
        switch mutex.state {
        case .inside:
            out += begin(c)
        case .idle:
            retryAt = c.now + c.retransmitMs
            giveUpAt = c.now + Int64(c.commitTimeoutMs)
            out += actions(mutex.request(ts: clock.tick(), livePeers: c.livePeers), c)
        case .requesting:
            break
        }
        return out
    }

    /// A peer's REQUEST or REPLY. A grant begins the round it was asked
    /// for; a request deferred while no round is in flight gets the section.
    mutating func receiveMutex(from: Int, _ m: RicartAgrawalaMutex.Message, _ c: Context,
                               clock: inout LamportClock) -> [Action] {
        var out = actions(mutex.receive(from: from, m), c)
        if mutex.state == .inside, !coordinator.inRound, mutex.hasDeferred {
            out += advance(c, clock: &clock)
        }
        return out
    }

    /// Our own copy is durable through `index`.
    mutating func localDurable(through index: UInt64) -> [Action] {
        actions(coordinator.localDurable(through: index))
    }

    /// A follower holds the log of `epoch` durably through `index`.
    mutating func acknowledged(from: Int, epoch: UInt64, through index: UInt64) -> [Action] {
        actions(coordinator.acknowledged(from: from, epoch: epoch, through: index))
    }

    /// A follower refused this epoch (it promised a newer one).
    mutating func refused(from: Int, epoch: UInt64) -> [Action] {
        actions(coordinator.refused(from: from, epoch: epoch))
    }

    /// A peer went silent: it will neither reply nor vote.
    mutating func peerDown(_ id: Int, _ c: Context) -> [Action] {
        actions(mutex.peerDown(id), c) + actions(coordinator.peerDown(id))
    }

    /// Time passes: the oldest round's deadline, and a section request
    /// asked again or given up.
    mutating func tick(_ c: Context, clock: inout LamportClock) -> [Action] {
        var out = actions(coordinator.tick(now: c.now))
        if let d = retryAt, c.now >= d, mutex.state == .requesting {
            out += actions(mutex.cancel())
            if c.now >= giveUpAt {
                retryAt = nil
                out.append(.sectionTimedOut)
            } else {
                retryAt = c.now + c.retransmitMs
                out += actions(mutex.request(ts: clock.tick(), livePeers: c.livePeers), c)
            }
        }
        return out
    }

    /// After an abort (no round is in flight): the section goes.
    mutating func releaseSection() -> [Action] {
        actions(mutex.release())
    }

    /// The leadership ended: rounds in flight end undecided (the next
    /// leader's recovery settles their entries) and the section goes. The
    /// batch stays for the caller to fail.
    mutating func stop() -> [Action] {
        coordinator.abandon()
        retryAt = nil
        return actions(mutex.state == .inside ? mutex.release() : mutex.cancel())
    }

    // MARK: rounds

    /// Inside the section: the batch becomes the next round.
    private mutating func begin(_ c: Context) -> [Action] {
        retryAt = nil
        guard c.open, !batch.isEmpty else {
            return coordinator.inRound ? [] : actions(mutex.release())
        }
        latestRound += 1
        let taken = batch
        batch = []
        batch.reserveCapacity(taken.count)
        let last = c.nextIndex + UInt64(taken.count) - 1
        let prepares = coordinator.begin(round: latestRound, epoch: c.epoch, first: c.nextIndex, last: last,
                                         participants: c.livePeers, now: c.now, timeoutMs: c.commitTimeoutMs)
        var to: [Int] = []
        for case .send(let id, .prepare) in prepares { to.append(id) }
        return [.begin(round: latestRound, first: c.nextIndex, batch: taken, prepare: to)]
    }

    /// The mutex's outputs; a grant begins the round (`c` is nil where the
    /// mutex cannot grant: release and cancel).
    private mutating func actions(_ outputs: [RicartAgrawalaMutex.Output], _ c: Context? = nil) -> [Action] {
        var out: [Action] = []
        for o in outputs {
            switch o {
            case .send(let to, let m): out.append(.mutex(to: to, m))
            case .log(let e): out.append(.log(e))
            case .granted:
                guard let c else { preconditionFailure("the section was granted outside a request") }
                out += begin(c)
            }
        }
        return out
    }

    private func actions(_ outputs: [TwoPhaseCommit.Output]) -> [Action] {
        outputs.map { o -> Action in
            switch o {
            case .send(let to, .prepare(_, let round, _, _)):
                preconditionFailure("PREPARE for round \(round) to \(to) outside `begin`")
            case .send(let to, .commit(_, let round, let last)): return .commit(to: to, round: round, through: last)
            case .send(let to, .abort(_, let round)): return .abort(to: to, round: round)
            case .committed(_, let through): return .committed(through: through)
            case .aborted(_, let reason): return .aborted(reason: reason)
            case .log(let e): return .log(e)
            }
        }
    }
}
