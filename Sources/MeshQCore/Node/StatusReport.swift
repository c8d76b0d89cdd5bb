// StatusReport: the fields of the STATUS reply, in the order docs/protocol.md fixes
// (id role leader epoch lamport commit ready inflight mailbox peers_up
// offset_ms), followed by extra keys.

public struct StatusReport: Sendable, Equatable {
    public var id: Int
    public var role: String
    public var leader: Int?
    public var epoch: UInt64
    public var lamport: UInt64
    public var commit: UInt64
    public var ready: Int
    public var inflight: Int
    public var mailbox: Int
    public var peersUp: Int
    public var offsetMs: Double
    public var extra: [(String, String)]

    public static func == (a: StatusReport, b: StatusReport) -> Bool { a.line == b.line }

    public var line: String {
        var s = "id=\(id) role=\(role) leader=\(leader.map(String.init) ?? "-") epoch=\(epoch)"
        s += " lamport=\(lamport) commit=\(commit) ready=\(ready) inflight=\(inflight)"
        s += " mailbox=\(mailbox) peers_up=\(peersUp) offset_ms=\(formatMs(offsetMs))"
        for (k, v) in extra { s += " \(k)=\(v)" }
        return s
    }
}

/// Milliseconds with two decimals, without Foundation.
public func formatMs(_ v: Double) -> String {
    let neg = v < 0
    let hundredths = Int64((abs(v) * 100).rounded())
    let frac = hundredths % 100
    return (neg && hundredths != 0 ? "-" : "") + "\(hundredths / 100)." + (frac < 10 ? "0" : "") + "\(frac)"
}
