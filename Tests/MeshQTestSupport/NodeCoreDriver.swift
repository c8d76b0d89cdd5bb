// NodeCoreDriver: NodeCores on an in-memory network and a virtual clock, run
// through the shared EffectInterpreter: replies are recorded, persisted
// records land at once on each node's NodeDisk (which survives crash and
// restart), envelopes go on a wire, log events are kept. Delivery is in the order sent,
// at once, unless either end is down or isolated or the directed link is cut;
// like a real network it tells nobody about a cut (silence). A step is one
// loop iteration of every live node: tick, deliver, flush, deliver.
// A driver of one node is a cluster of one (it leads at once). `holdDurable`
// keeps a node's writes pending until `sync`, to observe what it does before
// they are durable. Invariant: the same calls give the same run, bit for bit,
// given SWIFT_DETERMINISTIC_HASHING=1 (the nodes iterate sets of peers).
import MeshQCore

public final class NodeCoreDriver {
    /// What survives a crash: exactly what the node made durable.
    public typealias Disk = NodeDisk

    public let ids: [Int]
    public let settings: ClusterSettings
    public private(set) var nodes: [Int: NodeCore] = [:]
    public private(set) var disks: [Int: Disk] = [:]
    public private(set) var now: Int64 = 0
    public private(set) var replies: [ClientRef: Reply] = [:]
    /// A client answered more than once (only the first answer is kept).
    public private(set) var repliedTwice: [String] = []
    /// Every snapshot each node installed, in order.
    public private(set) var installedSnapshots: [Int: [QueueSnapshot]] = [:]
    /// Log events in order, with the node that emitted them.
    public private(set) var events: [(node: Int, event: LogEvent)] = []
    /// A node persisted a vote below one it had persisted before.
    public private(set) var votesBackwards: [String] = []
    /// Nodes whose writes wait for `sync` (none: every write is durable at once).
    public var holdDurable: Set<Int> = []
    private var pendingWrites: [Int: [NodeCore.Effect]] = [:]
    /// Every envelope delivered, in order.
    public private(set) var delivered: [PeerEnvelope] = []
    /// Nodes cut off from everyone, and directed links that drop ([from, to]).
    public private(set) var isolated: Set<Int> = []
    public private(set) var cut: Set<[Int]> = []
    private var wire: [PeerEnvelope] = []
    private var nextSession: UInt64 = 1
    private var nextSeq: [UInt64: UInt64] = [:]
    private let logWindow: Int?
    private let interpreter = EffectInterpreter(durability: .immediate)

    public static var defaultSettings: ClusterSettings {
        var s = ClusterSettings()
        s.heartbeatIntervalMs = 50
        s.leaderTimeoutMs = 300
        s.electionTimeoutMs = 150
        return s
    }

    public init(nodes count: Int = 3, settings: ClusterSettings = NodeCoreDriver.defaultSettings, logWindow: Int? = nil) {
        ids = Array(1...count)
        self.settings = settings
        self.logWindow = logWindow
        for id in ids { disks[id] = Disk() }
    }

    public func node(_ id: Int) -> NodeCore { nodes[id]! }
    /// Each epoch's leaders, from the `leader_elected` log lines (more than
    /// one in an epoch breaks invariant 1).
    public var leadersByEpoch: [UInt64: Set<Int>] {
        var by: [UInt64: Set<Int>] = [:]
        for (id, e) in events where e.name == "leader_elected" {
            if let epoch = e.field("epoch").flatMap(UInt64.init) { by[epoch, default: []].insert(id) }
        }
        return by
    }
    /// Live nodes that believe they lead, by id.
    public var leaders: [Int] { live.filter { node($0).role == .leader } }
    public var live: [Int] { ids.filter { nodes[$0] != nil } }
    public var leader: NodeCore? { nodes.values.first { $0.role == .leader } }

    private func linked(_ a: Int, _ b: Int) -> Bool {
        nodes[a] != nil && nodes[b] != nil && !isolated.contains(a) && !isolated.contains(b) && !cut.contains([a, b])
    }

    // MARK: nodes

    /// Builds `which` (all when nil) from their disks, without starting them
    /// (to look at what a node rebuilt before it runs); `start` starts them.
    public func load(_ which: [Int]? = nil) {
        for id in which ?? ids where nodes[id] == nil {
            let n = disks[id]!.boot(id, members: ids, settings: settings, relayIdBase: UInt64(id) << 40 | UInt64(now))
            if let w = logWindow { n.logWindow = w }
            nodes[id] = n
        }
    }

    /// Boots `which` (all when nil) from their disks; the transports connect
    /// where packets pass (a hint the nodes may use, not liveness).
    public func start(_ which: [Int]? = nil) {
        load(which)
        for id in which ?? ids {
            for p in ids where p != id && linked(id, p) {
                node(id).peerUp(p, now: now)
                node(p).peerUp(id, now: now)
            }
        }
        for id in which ?? ids { node(id).start(now: now) }
        pump()
    }

    /// The process dies: what it made durable stays on its disk.
    public func crash(_ id: Int) {
        nodes.removeValue(forKey: id)
        pendingWrites[id] = nil
        wire.removeAll { $0.to == id || $0.from == id }
    }

    /// Changes a down node's disk (e.g. a crash between two writes).
    public func editDisk(_ id: Int, _ edit: (inout Disk) -> Void) {
        precondition(nodes[id] == nil, "edit a node's disk while it is down")
        edit(&disks[id]!)
    }

    /// A damaged log found at boot: the records from `keep` on are set
    /// aside, and the node catches up before it votes again.
    public func corrupt(_ id: Int, keep: Int) {
        precondition(nodes[id] == nil, "corrupt a node's disk while it is down")
        disks[id]!.corrupt(keep: keep)
    }

    /// Cuts `id` off from everyone. Silent by default, as a network is;
    /// `loud`: both ends of each link see it drop (a closed connection).
    public func isolate(_ id: Int, loud: Bool = false) {
        isolated.insert(id)
        guard loud else { return }
        for p in live where p != id {
            node(p).peerDown(id, now: now)
            node(id).peerDown(p, now: now)
        }
        pump()
    }

    /// `loud`: both ends of each link see it come up.
    public func reconnect(_ id: Int, loud: Bool = false) {
        isolated.remove(id)
        guard loud else { return }
        for p in live where p != id {
            node(p).peerUp(id, now: now)
            node(id).peerUp(p, now: now)
        }
        pump()
    }
    public func cutLink(from a: Int, to b: Int) { cut.insert([a, b]) }
    public func healLinks() { cut.removeAll(); isolated.removeAll() }

    // MARK: running

    /// Applies every effect and delivers every envelope until all is quiet;
    /// false when it never went quiet.
    @discardableResult
    public func pump(budget: Int = 200_000) -> Bool {
        var left = budget
        while left > 0 {
            left -= 1
            var busy = false
            for id in live where node(id).hasEffects {
                busy = true
                apply(node(id).takeEffects(), of: id)
            }
            if !wire.isEmpty {
                busy = true
                let env = wire.removeFirst()
                if linked(env.from, env.to) {
                    delivered.append(env)
                    node(env.to).peerMessage(env, now: now, wallMs: now)
                }
            }
            if !busy { return true }
        }
        return false
    }

    /// The end of a loop iteration at every live node (no time passes).
    public func flush() {
        for id in live { node(id).flush(now: now) }
        pump()
    }

    /// The held writes of `id` become durable (see `holdDurable`).
    public func sync(_ id: Int) {
        let writes = pendingWrites.removeValue(forKey: id) ?? []
        if !writes.isEmpty { apply(writes, of: id, durable: true) }
        pump()
    }

    /// One loop iteration of every live node, `ms` later.
    public func step(_ ms: Int64 = 10) {
        now += ms
        for id in live { node(id).tick(now: now, wallMs: now) }
        pump()
        for id in live { node(id).flush(now: now) }
        pump()
    }

    /// Steps until `done` holds or `withinMs` pass; whether it held.
    @discardableResult
    public func run(withinMs: Int64 = 5_000, until done: () -> Bool) -> Bool {
        let end = now + withinMs
        while !done() {
            guard now < end else { return false }
            step()
        }
        return true
    }

    /// A client command at `id`, on a new session or on `session`; the
    /// reply lands in `replies[ref]`.
    @discardableResult
    public func send(_ cmd: ClientCommand, to id: Int, session: UInt64? = nil) -> ClientRef {
        let s = session ?? nextSession
        if session == nil { nextSession += 1 }
        let seq = nextSeq[s, default: 0] + 1
        nextSeq[s] = seq
        let ref = ClientRef(session: s, seq: seq)
        node(id).handle(cmd, from: ref, owner: "c\(ref.session)", now: now, wallMs: now)
        pump()
        return ref
    }

    /// Sends and steps until answered (or `withinMs`); the reply.
    public func request(_ cmd: ClientCommand, at id: Int, withinMs: Int64 = 5_000) -> Reply? {
        let ref = send(cmd, to: id)
        run(withinMs: withinMs) { replies[ref] != nil }
        return replies[ref]
    }

    /// The tasks a node holds, by id, with their payloads.
    public func contents(_ id: Int) -> [UInt64: String] {
        Dictionary(uniqueKeysWithValues: node(id).store.allTasks().map { ($0.id, String(decoding: $0.payload, as: UTF8.self)) })
    }

    /// Applies a node's effects through the interpreter; a node in
    /// `holdDurable` keeps its disk writes back until `sync` (in order).
    private func apply(_ effects: [NodeCore.Effect], of id: Int, durable: Bool = false) {
        var applying = effects
        if !durable && holdDurable.contains(id) {
            applying = []
            for e in effects {
                switch e {
                case .persist, .installSnapshot, .persistMailbox, .persistVote:
                    pendingWrites[id, default: []].append(e)
                default:
                    applying.append(e)
                }
            }
        }
        do {
            try interpreter.apply(applying, of: id, node: node(id), disk: &disks[id]!, now: now, to: self)
        } catch {
            preconditionFailure("the driver refuses no effect: \(error)")
        }
    }
}

extension NodeCoreDriver: EffectOutlet {
    public func reply(_ reply: Reply, to ref: ClientRef, from id: Int) {
        if let first = replies[ref] {
            repliedTwice.append("client \(ref) answered twice: \(first.line) then \(reply.line)")
        } else {
            replies[ref] = reply
        }
    }

    public func send(_ env: PeerEnvelope, from id: Int, node: NodeCore, disk: NodeDisk) {
        if linked(env.from, env.to) { wire.append(env) }
    }

    public func log(_ event: LogEvent, from id: Int) { events.append((id, event)) }

    public func installing(_ snapshot: QueueSnapshot, at id: Int) {
        installedSnapshots[id, default: []].append(snapshot)
    }

    public func voting(_ epoch: UInt64, promised: UInt64, at id: Int, disk: NodeDisk) {
        if epoch < disk.votedEpoch {
            votesBackwards.append("node \(id) persisted vote \(epoch) after \(disk.votedEpoch)")
        }
    }
}
