// ClientRef: names one client command awaiting its reply (the connection and
// the command's position on it), so a reply produced later (after a commit, a
// wait) reaches the right slot of the right connection.

public struct ClientRef: Hashable, Sendable {
    public var session: UInt64
    public var seq: UInt64

    public init(session: UInt64, seq: UInt64) {
        self.session = session
        self.seq = seq
    }
}
