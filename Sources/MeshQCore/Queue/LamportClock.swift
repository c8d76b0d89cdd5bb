// LamportClock: logical time. Local events tick; a received stamp merges as
// max(local, received) + 1. The value never goes backwards, including across
// restarts (the node seeds it from the highest stamp in its durable state).

public struct LamportClock: Sendable, Equatable {
    public private(set) var time: UInt64

    public init(time: UInt64 = 0) { self.time = time }

    @discardableResult
    public mutating func tick() -> UInt64 {
        time &+= 1
        return time
    }

    @discardableResult
    public mutating func merge(_ received: UInt64) -> UInt64 {
        time = max(time, received) &+ 1
        return time
    }

    /// Raises the clock to at least `t` without counting an event (recovery).
    public mutating func observe(_ t: UInt64) {
        time = max(time, t)
    }
}
