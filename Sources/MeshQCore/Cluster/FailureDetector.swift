// FailureDetector: which peers are alive, judged only by the frames that
// arrive (docs/replication.md, "hears from"). An open TCP connection proves
// nothing: a paused process, a dropping firewall or a powered-off host keep
// it open and silent. Every node sends a link report on every link every
// heartbeat interval, in both directions, so a live peer is never silent for
// long.
//
// - A peer is *alive* while a frame from it arrived, directly or over a
//   relay, within `timeoutMs` (leader_timeout_ms). That one verdict feeds
//   everything: election majorities, the Ricart-Agrawala wait set, 2PC
//   participants, forwarding, `peers_up`.
// - A *direct* link to a peer (one we may send on) needs more: we heard the
//   peer directly within `directTimeoutMs` (shorter: a few heartbeat
//   intervals, so traffic moves to a relay well before a follower's leader
//   timeout runs out), and its latest report says it hears us directly. A
//   one-way cut thus routes around instead of sending into the void. A
//   transport close (a loud failure: RST, process died) ends the direct link
//   at once, and the peer is dead at once unless it was heard over a relay
//   within the timeout. A direct link down for a whole `timeoutMs` is worth
//   resetting (`.resetLink`): a fresh connection, once the path heals.
//
// Invariant: `alive` and `direct` are exactly what the timestamps say as of
// the last `evaluate(now)`; every change between two evaluations is returned
// once, in peer order, so the node applies each transition exactly once.
//
// Pure: inputs are frames heard, reports, transport closes and `now`.

public struct FailureDetector: Sendable {
    public enum Change: Equatable, Sendable {
        case alive(Int), dead(Int)
        case directUp(Int)
        case directDown(Int)
        /// The direct link has been down for `timeoutMs` while the transport
        /// kept its connection: close it and dial again.
        case resetLink(Int)
    }

    public let nodeId: Int
    public let peers: [Int]
    public private(set) var timeoutMs: Int64
    public private(set) var directTimeoutMs: Int64
    public private(set) var alive: Set<Int> = []
    public private(set) var direct: Set<Int> = []
    #if MESHQ_TESTING
    /// Planted bug: a peer, once heard, stays alive until its connection closes.
    var trustTransport = false
    #else
    private let trustTransport = false
    #endif

    private var lastRelayed: [Int: Int64] = [:]
    private var lastDirect: [Int: Int64] = [:]
    /// From each peer's latest report: does it hear us directly?
    private var hearsUs: [Int: Bool] = [:]
    private var closedSince: [Int: Int64] = [:]
    /// Direct links down while the transport still holds a connection, since when.
    private var downSince: [Int: Int64] = [:]

    public init(nodeId: Int, peers: [Int], timeoutMs: Int, directTimeoutMs: Int) {
        self.nodeId = nodeId
        self.peers = peers.filter { $0 != nodeId }.sorted()
        self.timeoutMs = Int64(timeoutMs)
        self.directTimeoutMs = Int64(min(directTimeoutMs, timeoutMs))
    }

    public mutating func reload(timeoutMs: Int, directTimeoutMs: Int) {
        self.timeoutMs = Int64(timeoutMs)
        self.directTimeoutMs = Int64(min(directTimeoutMs, timeoutMs))
    }

    /// A frame from `peer` arrived (over its own link when `directly`).
    public mutating func heard(from peer: Int, directly: Bool, now: Int64) {
        guard peers.contains(peer) else { return }
        if directly {
            lastDirect[peer] = max(lastDirect[peer] ?? .min, now)
            closedSince.removeValue(forKey: peer)
        } else {
            lastRelayed[peer] = max(lastRelayed[peer] ?? .min, now)
        }
    }

    /// `peer` reports the peers it heard directly.
    public mutating func report(from peer: Int, heard: Set<Int>) {
        guard peers.contains(peer) else { return }
        hearsUs[peer] = heard.contains(nodeId)
    }

    /// The transport closed the connection to `peer` (a loud failure).
    public mutating func closed(_ peer: Int, now: Int64) {
        guard peers.contains(peer) else { return }
        lastDirect.removeValue(forKey: peer)
        hearsUs.removeValue(forKey: peer)
        closedSince[peer] = now
        downSince.removeValue(forKey: peer)
    }

    /// Peers heard directly within the direct timeout (what our reports say).
    public func heardDirectly(now: Int64) -> Set<Int> {
        Set(peers.filter { fresh(lastDirect[$0], now, within: directTimeoutMs) })
    }

    /// Recomputes the verdicts as of `now` and returns what changed.
    public mutating func evaluate(now: Int64) -> [Change] {
        var changes: [Change] = []
        for p in peers {
            let closed = closedSince[p] != nil
            let isAlive: Bool
            if trustTransport {
                isAlive = (lastDirect[p] != nil || lastRelayed[p] != nil) && !closed
            } else {
                isAlive = fresh(lastDirect[p], now) || fresh(lastRelayed[p], now)
            }
            let isDirect = (trustTransport ? lastDirect[p] != nil : fresh(lastDirect[p], now, within: directTimeoutMs))
                && hearsUs[p] == true
            if isDirect != direct.contains(p) {
                if isDirect {
                    direct.insert(p)
                    downSince.removeValue(forKey: p)
                    changes.append(.directUp(p))
                } else {
                    direct.remove(p)
                    if !closed { downSince[p] = now }
                    changes.append(.directDown(p))
                }
            }
            if let since = downSince[p], now - since >= timeoutMs {
                downSince[p] = now
                changes.append(.resetLink(p))
            }
            if isAlive != alive.contains(p) {
                if isAlive { alive.insert(p); changes.append(.alive(p)) } else {
                    alive.remove(p)
                    changes.append(.dead(p))
                }
            }
        }
        return changes
    }

    /// The next time a verdict can change with no new input.
    public func nextExpiry() -> Int64? {
        var t: Int64?
        for p in alive {
            let a = max(lastDirect[p] ?? .min, lastRelayed[p] ?? .min)
            if a > .min { t = min(t ?? .max, a + timeoutMs) }
        }
        for p in direct { if let d = lastDirect[p] { t = min(t ?? .max, d + directTimeoutMs) } }
        for s in downSince.values { t = min(t ?? .max, s + timeoutMs) }
        return trustTransport ? nil : t
    }

    private func fresh(_ at: Int64?, _ now: Int64, within: Int64? = nil) -> Bool {
        guard let at else { return false }
        return now - at < (within ?? timeoutMs)
    }
}
