// MailboxDelivery: the mailbox of ENQUEUEs parked while no leader was
// reachable, and the state of handing them over. A parked entry's client
// hears QUEUED once the mailbox write is durable. The entries (the first
// 1,000, in sequence order) go to a leader once one is reachable, and again
// after a retry interval until a commit confirms them; a leader's own
// entries are confirmed by its commit, settled after that commit is applied.
// Invariant: an entry leaves the mailbox only when a commit covers its
// sequence; duplicates of a delivery are harmless (they are skipped where
// they apply, by the replicated highest sequence per node).

struct MailboxDelivery {
    private(set) var mailbox: Mailbox
    /// Parked entries whose clients hear QUEUED once the mailbox is durable.
    private var unconfirmedParks: [(target: ReplyTarget, seq: UInt64)] = []
    /// When to hand the entries over again (nil: as soon as a leader is reachable).
    private(set) var retryAt: Int64?
    /// Our own entries committed while we lead, through this sequence.
    private var committedHere: UInt64?

    init(mailbox: Mailbox) {
        self.mailbox = mailbox
    }

    /// A wiped or damaged mailbox must not reuse sequences already applied.
    mutating func continueAbove(_ seq: UInt64) {
        mailbox.continueAbove(seq)
    }

    mutating func park(payload: [UInt8], at enqueuedAtMs: Int64, queue: String, options: PutOptions,
                       for target: ReplyTarget) -> MailboxEntry {
        let e = mailbox.park(payload: payload, at: enqueuedAtMs, queue: queue, options: options)
        unconfirmedParks.append((target, e.seq))
        return e
    }

    /// The mailbox is durable: the clients to tell QUEUED.
    mutating func takeDurableParks() -> [(target: ReplyTarget, seq: UInt64)] {
        defer { unconfirmedParks.removeAll() }
        return unconfirmedParks
    }

    /// The mailbox write failed: these parks are not durable, their
    /// clients must not hear QUEUED.
    mutating func abandonUnconfirmedParks() -> [(target: ReplyTarget, seq: UInt64)] {
        defer { unconfirmedParks.removeAll() }
        return unconfirmedParks
    }

    /// The entries to hand over now, if any are waiting and no delivery is
    /// still awaiting its confirmation.
    func due(now: Int64) -> [MailboxEntry]? {
        guard !mailbox.isEmpty, retryAt.map({ now >= $0 }) ?? true else { return nil }
        // At most 1,000 entries and one batch of bytes (past the first), so a
        // delivery always fits a peer frame.
        var batch: [MailboxEntry] = []
        var bytes = 0
        for e in mailbox.pending.prefix(1_000) {
            bytes += 32 + e.payload.count
            if !batch.isEmpty && bytes > PeerEnvelope.maxBatchBytes { break }
            batch.append(e)
        }
        return batch
    }

    /// A delivery went out: again at `retryAt` unless a commit confirms it.
    mutating func sent(retryAt at: Int64) {
        retryAt = at
    }

    /// A commit covered our entries through `seq`: how many left the mailbox.
    mutating func delivered(through seq: UInt64) -> Int {
        let n = mailbox.delivered(through: seq)
        if n > 0 { retryAt = nil }
        return n
    }

    /// Leading, we committed our own entry `seq` (settled after the commit).
    mutating func committedHere(through seq: UInt64) {
        committedHere = max(committedHere ?? 0, seq)
    }

    mutating func takeCommittedHere() -> UInt64? {
        defer { committedHere = nil }
        return committedHere
    }
}
