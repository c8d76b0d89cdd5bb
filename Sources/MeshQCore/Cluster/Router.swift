// Router: where a message for node X goes. Over the direct link when it is
// up; otherwise through a neighbour that reports a direct link to X, with its
// TTL lowered by one, never back to the node it came from; at TTL 0 it is
// dropped. Every routed message carries (origin, id) and a node handles each
// once, so a duplicate or a loop ends at the first node that saw it.
// Neighbours report their direct links every few heartbeats and whenever a
// link changes; a report older than `staleMs` is not trusted.
//
// Pure: inputs are link changes, neighbours' reports and `now`.
import DequeModule

public struct Router: Sendable {
    public let nodeId: Int
    /// Links this node can send on now.
    public private(set) var direct: Set<Int> = []
    private var reports: [Int: (links: Set<Int>, at: Int64)] = [:]
    public var staleMs: Int64
    private var seen: Set<Key> = []
    private var seenOrder = Deque<Key>()
    private struct Key: Hashable { var origin: Int; var id: UInt64 }
    static let seenCapacity = 100_000

    public init(nodeId: Int, staleMs: Int64) {
        self.nodeId = nodeId
        self.staleMs = staleMs
    }

    public mutating func linkUp(_ id: Int) { direct.insert(id) }

    public mutating func linkDown(_ id: Int) {
        direct.remove(id)
        reports.removeValue(forKey: id)
    }

    /// A neighbour's direct links.
    public mutating func report(from id: Int, links: Set<Int>, now: Int64) {
        reports[id] = (links, now)
    }

    /// The first hop towards `dest`, or nil when there is no path. `avoid`:
    /// the nodes the message came from (it never goes back).
    public func nextHop(to dest: Int, avoid: Set<Int> = [], now: Int64) -> Int? {
        if direct.contains(dest) { return dest }
        return direct.subtracting(avoid).sorted().first { n in
            guard let r = reports[n], now - r.at <= staleMs else { return false }
            return r.links.contains(dest)
        }
    }

    public func reachable(_ dest: Int, now: Int64) -> Bool { nextHop(to: dest, now: now) != nil }

    /// True the first time a routed message (origin, id) is seen.
    public mutating func firstSight(origin: Int, id: UInt64) -> Bool {
        let k = Key(origin: origin, id: id)
        guard seen.insert(k).inserted else { return false }
        seenOrder.append(k)
        if seenOrder.count > Self.seenCapacity { seen.remove(seenOrder.removeFirst()) }
        return true
    }
}
