// EffectInterpreter: the tests' one interpreter of NodeCore.Effect, shared by
// NodeCoreDriver and the cluster simulator. Disk effects go to the node's
// NodeDisk — at once (`.immediate`: the node hears `persisted` right away)
// or in flight until `completeWrites` (`.atNextSync`: the simulator's disk,
// where a crash or a full disk may lose them). Everything else goes to an
// outlet: replies to the clients, envelopes to the outlet's network (the
// driver's instant in-order wire, the simulator's lossy one), log events.
// The outlet sees each effect first, and may refuse an envelope, a reply or
// a vote (the simulator's invariant checks), which stops the run.
// Invariant: effects are applied in the order the node emitted them, each
// exactly once; a vote, the mailbox and the rejoined marker are durable as
// soon as applied (the node waits for `persisted` only on its log).
import MeshQCore

/// Where a node's effects go besides its disk.
public protocol EffectOutlet: AnyObject {
    /// Before any effect is applied.
    func willApply(_ effect: NodeCore.Effect, of id: Int)
    func reply(_ reply: Reply, to ref: ClientRef, from id: Int) throws
    /// `node` sends `env`; `disk` is its disk as it is then.
    func send(_ env: PeerEnvelope, from id: Int, node: NodeCore, disk: NodeDisk) throws
    func log(_ event: LogEvent, from id: Int)
    /// A snapshot handed to the disk (durable per the durability).
    func installing(_ snapshot: QueueSnapshot, at id: Int)
    /// Before a vote is written over `disk`'s.
    func voting(_ epoch: UInt64, promised: UInt64, at id: Int, disk: NodeDisk) throws
}

public extension EffectOutlet {
    func willApply(_ effect: NodeCore.Effect, of id: Int) {}
    func installing(_ snapshot: QueueSnapshot, at id: Int) {}
    func voting(_ epoch: UInt64, promised: UInt64, at id: Int, disk: NodeDisk) throws {}
}

public struct EffectInterpreter {
    public enum Durability {
        /// Log writes are durable when applied.
        case immediate
        /// Log writes stay in flight until `completeWrites`.
        case atNextSync
    }

    public var durability: Durability

    public init(durability: Durability) { self.durability = durability }

    /// Applies `effects` of node `id` in order.
    public func apply(_ effects: [NodeCore.Effect], of id: Int, node n: NodeCore, disk: inout NodeDisk,
                      now: Int64, to outlet: some EffectOutlet) throws {
        for e in effects {
            outlet.willApply(e, of: id)
            switch e {
            case .reply(let ref, let r):
                try outlet.reply(r, to: ref, from: id)
            case .persist(let recs):
                write(.records(recs), node: n, disk: &disk, now: now)
            case .installSnapshot(let snap, _):
                outlet.installing(snap, at: id)
                write(.snapshot(snap), node: n, disk: &disk, now: now)
            case .persistMailbox(let recs):
                disk.mailbox += recs
                n.mailboxPersisted(now: now)
            case .persistVote(let epoch, let promised):
                try outlet.voting(epoch, promised: promised, at: id, disk: disk)
                disk.votedEpoch = epoch
                disk.promisedEpoch = promised
            case .log(let event):
                outlet.log(event, from: id)
            case .sendPeer(let env):
                try outlet.send(env, from: id, node: n, disk: disk)
            case .resetPeerLink:
                break
            case .rejoined:
                disk.rejoining = false
            }
        }
    }

    /// `.atNextSync`: the writes in flight become durable and the node hears so.
    public func completeWrites(node n: NodeCore, disk: inout NodeDisk, now: Int64) {
        disk.sync()
        n.persisted(now: now)
    }

    private func write(_ w: NodeDisk.Write, node n: NodeCore, disk: inout NodeDisk, now: Int64) {
        switch durability {
        case .immediate:
            disk.land(w)
            n.persisted(now: now)
        case .atNextSync:
            disk.inFlight.append(w)
        }
    }
}
