// CristianClock: a follower's estimate of the leader's clock. Each round it
// notes its local time t0, asks the leader, and on the answer (server time S)
// at local time t1 computes rtt = t1 - t0 and offset = S + rtt/2 - t1. The
// error of one sample is at most rtt/2, so of the last few samples the one
// with the smallest rtt is kept: a slow, asymmetric round trip cannot drag
// the estimate far.

public struct CristianClock: Sendable {
    public struct Sample: Equatable, Sendable {
        public var offsetMs: Double
        public var rttMs: Double
    }

    public let window: Int
    public private(set) var samples: [Sample] = []

    public init(window: Int = 8) { self.window = max(1, window) }

    /// Adds one round; returns that round's sample.
    @discardableResult
    public mutating func add(sentAtMs t0: Double, serverTimeMs s: Double, receivedAtMs t1: Double) -> Sample? {
        guard t1 >= t0 else { return nil }   // the local clock stepped back: not a sample
        let rtt = t1 - t0
        let sample = Sample(offsetMs: s + rtt / 2 - t1, rttMs: rtt)
        samples.append(sample)
        if samples.count > window { samples.removeFirst(samples.count - window) }
        return sample
    }

    /// The lowest-rtt sample of the window.
    public var best: Sample? { samples.min { $0.rttMs < $1.rttMs } }

    /// Offset to add to local time to read the leader's clock (0 before any sample).
    public var offsetMs: Double { best?.offsetMs ?? 0 }

    /// Local time corrected to the leader's clock.
    public func corrected(localMs: Double) -> Double { localMs + offsetMs }

    /// A new leader: its clock is another clock.
    public mutating func reset() { samples.removeAll() }
}
