// RicartAgrawalaMutex: a cluster-wide critical section without a lock server.
// To enter, a node sends REQUEST(ts, id) to every live peer and waits for a
// REPLY from each. A node receiving a REQUEST replies at once unless it is
// inside, or is itself requesting with a smaller (ts, id): then it defers the
// reply until it leaves. (ts, id) pairs are totally ordered, so two requesters
// never both wait for each other, and no two nodes that entered on each
// other's reply are inside at once (invariant 4). Only live peers are asked;
// a peer that falls silent while asked (the failure detector's verdict) is
// dropped from the wait set, so one crash or freeze cannot block the cluster.
// That peer may then be inside too, unaware: mutual exclusion holds only
// among nodes that hear each other, and replication stays safe regardless
// through epochs and promises (a deposed leader's PREPAREs are refused).
// The leader holds the section around its replication rounds, so two nodes
// that both believe they lead never replicate at the same time. It keeps the
// section between rounds for as long as nobody else asks (`hasDeferred`) and
// no peer came up that it did not ask (`asked`): the request's round trip is
// paid when someone competes, not before every round.
// A value: its owner changes it only through the mutating inputs below.

public struct RicartAgrawalaMutex: Sendable {
    public enum Message: Equatable, Sendable {
        case request(ts: UInt64)
        /// Echoes the request's timestamp: a late or duplicated reply to an
        /// earlier request must not count for the current one.
        case reply(ts: UInt64)
    }

    public enum Output: Equatable, Sendable {
        case send(to: Int, Message)
        case granted
        case log(LogEvent)
    }

    public enum State: Equatable, Sendable { case idle, requesting, inside }

    public let nodeId: Int
    public private(set) var state = State.idle
    public private(set) var requestTs: UInt64 = 0
    private var waitingFor: Set<Int> = []
    /// The peers whose reply let the current request in (for the
    /// simulator's mutual-exclusion check).
    public private(set) var repliedBy: Set<Int> = []
    /// The peers the current (or last) request asked.
    public private(set) var asked: Set<Int> = []
    /// Test hooks (see PlantedBug); empty in production.
    #if MESHQ_TESTING
    private(set) var plantedBugs: Set<PlantedBug> = []
    /// Plants test-only bugs (see PlantedBug).
    mutating func plant(_ bugs: Set<PlantedBug>) { plantedBugs = bugs }
    @inline(__always) private func planted(_ bug: PlantedBug) -> Bool { plantedBugs.contains(bug) }
    #else
    @inline(__always) private func planted(_ bug: PlantedBug) -> Bool { false }
    #endif
    /// Requesters we made wait, with the timestamp to echo.
    private var deferred: [Int: UInt64] = [:]
    /// Whether to return debug-level `.log` outputs.
    public var debugEvents = true

    public init(nodeId: Int) { self.nodeId = nodeId }

    /// Peers whose reply we still need.
    public var pendingReplies: Set<Int> { waitingFor }

    /// Someone asked while we were inside and waits for our reply.
    public var hasDeferred: Bool { !deferred.isEmpty }

    /// Asks to enter with Lamport time `ts`, from the peers alive now.
    public mutating func request(ts: UInt64, livePeers: Set<Int>) -> [Output] {
        precondition(state == .idle, "request while \(state)")
        state = .requesting
        requestTs = ts
        waitingFor = livePeers.subtracting([nodeId])
        asked = waitingFor
        repliedBy = []
        var out = debug("mutex_request", [("node", "\(nodeId)"), ("ts", "\(ts)")])
        out += waitingFor.sorted().map { .send(to: $0, .request(ts: ts)) }
        return out + enterIfDone()
    }

    public mutating func receive(from: Int, _ msg: Message) -> [Output] {
        switch msg {
        case .request(let ts):
            let mineFirst = state == .inside
                || (state == .requesting && (requestTs, nodeId) < (ts, from))
            if mineFirst && !planted(.mutexNeverDefers) {
                deferred[from] = ts
                return []
            }
            return [.send(to: from, .reply(ts: ts))]
        case .reply(let ts):
            guard state == .requesting, ts == requestTs else { return [] }
            if waitingFor.remove(from) != nil { repliedBy.insert(from) }
            return enterIfDone()
        }
    }

    /// Leaves the section and answers everyone who waited on us.
    public mutating func release() -> [Output] {
        guard state == .inside else { return [] }
        state = .idle
        let out = debug("mutex_release", [("node", "\(nodeId)")])
        defer { deferred.removeAll() }
        return out + deferred.sorted { $0.key < $1.key }.map { .send(to: $0.key, .reply(ts: $0.value)) }
    }

    /// Gives up a request that is taking too long (a reply lost with a link):
    /// everyone we deferred is answered, and late replies are ignored.
    public mutating func cancel() -> [Output] {
        guard state == .requesting else { return [] }
        state = .idle
        waitingFor.removeAll()
        defer { deferred.removeAll() }
        return deferred.sorted { $0.key < $1.key }.map { .send(to: $0.key, .reply(ts: $0.value)) }
    }

    /// A peer died: it will not reply, and needs no reply.
    public mutating func peerDown(_ id: Int) -> [Output] {
        deferred.removeValue(forKey: id)
        guard state == .requesting, waitingFor.remove(id) != nil else { return [] }
        return enterIfDone()
    }

    private mutating func enterIfDone() -> [Output] {
        guard state == .requesting, waitingFor.isEmpty else { return [] }
        state = .inside
        return debug("mutex_granted", [("node", "\(nodeId)"), ("ts", "\(requestTs)")]) + [.granted]
    }

    private func debug(_ name: String, _ fields: @autoclosure () -> [(String, String)]) -> [Output] {
        debugEvents ? [.log(LogEvent(.debug, name, fields()))] : []
    }
}
