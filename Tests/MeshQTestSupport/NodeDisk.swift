// NodeDisk: one node's in-memory disk for the tests' drivers — what survives
// a crash. Writes of the log land either at once (the driver's disk) or are
// handed over and become durable only at the next `sync` (the simulator's),
// so a crash in between keeps a prefix of them, a full disk rolls them back,
// and a boot may find a record corrupt (`corrupt`).
// Invariant: `records`, `snapshot`, the votes, `mailbox` and `rejoining` hold
// exactly what the node made durable; `inFlight` what it handed over since,
// in order. A node boots from the durable part only.
import MeshQCore

public struct NodeDisk {
    /// A write of the log handed to the disk.
    public enum Write {
        case records([LogRecord])
        case snapshot(QueueSnapshot)
    }

    public var votedEpoch: UInt64 = 0
    public var promisedEpoch: UInt64 = 0
    public var snapshot: QueueSnapshot?
    public var records: [LogRecord] = []
    public var mailbox: [MailboxRecord] = []
    /// The rejoining marker: set when a corrupt record cut the log, cleared
    /// by the node's `.rejoined`.
    public var rejoining = false
    /// Handed to the disk, not yet durable (`sync` makes them so).
    public var inFlight: [Write] = []

    public init() {}

    /// A write reaches the platter: a snapshot replaces the log it covers.
    public mutating func land(_ w: Write) {
        switch w {
        case .records(let r): records += r
        case .snapshot(let s):
            snapshot = s
            records = []
        }
    }

    /// Every write in flight becomes durable.
    public mutating func sync() {
        for w in inFlight { land(w) }
        inFlight = []
    }

    /// The process dies: the first `kept` writes in flight reached the disk,
    /// the rest (a torn last write included, which recovery cuts whole) not.
    public mutating func crash(keeping kept: Int) {
        for w in inFlight.prefix(kept) { land(w) }
        inFlight = []
    }

    /// A full disk: the writes in flight are rolled back, none landed.
    public mutating func rollBack() { inFlight = [] }

    /// A damaged log found at boot: the records from `keep` on are set aside
    /// and the node catches up before it votes again (the marker is durable
    /// before the rest is set aside).
    public mutating func corrupt(keep: Int) {
        records.removeSubrange(min(keep, records.count)...)
        rejoining = true
    }

    /// What a real node's boot does first (NodeBoot): a cluster node holding
    /// nothing starts catching up, and says so durably.
    public mutating func markRejoiningIfEmpty(members: Int) {
        if startsRejoining(members: members) { rejoining = true }
    }

    /// Whether a node booting from this disk must catch up before it votes:
    /// it is marked, or holds nothing (and then, for all it knows, lost
    /// everything).
    public func startsRejoining(members: Int) -> Bool {
        NodeCore.startsRejoining(members: members, marked: rejoining, snapshot: snapshot, records: records,
                                 votedEpoch: votedEpoch, promisedEpoch: promisedEpoch)
    }

    /// The replicated state is lost (a wiped or replaced data_dir); the
    /// mailbox stays, since what it parked was acknowledged by this disk
    /// alone and no design gets that back.
    public mutating func wipeReplicatedState() {
        let kept = mailbox
        self = NodeDisk()
        mailbox = kept
    }

    /// A node booted from what is durable.
    public func boot(_ id: Int, members: [Int], settings: ClusterSettings, relayIdBase: UInt64) -> NodeCore {
        NodeCore(nodeId: id, memberIds: members, settings: settings, snapshot: snapshot, records: records,
                 votedEpoch: votedEpoch, promisedEpoch: promisedEpoch, relayIdBase: relayIdBase,
                 mailbox: Mailbox(records: mailbox), rejoining: rejoining)
    }
}
