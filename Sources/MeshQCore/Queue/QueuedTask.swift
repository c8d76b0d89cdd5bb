// QueuedTask: a task as the replicated state holds it. The payload is opaque
// bytes, kept exactly as the producer sent them.

public struct QueuedTask: Equatable, Sendable {
    public var id: UInt64
    /// Lamport time of the ENQUEUE at the leader.
    public var lamport: UInt64
    /// Leader's (clock-corrected) wall time when it was enqueued, ms since epoch.
    public var enqueuedAtMs: Int64
    public var payload: [UInt8]

    public init(id: UInt64, lamport: UInt64, enqueuedAtMs: Int64, payload: [UInt8]) {
        self.id = id
        self.lamport = lamport
        self.enqueuedAtMs = enqueuedAtMs
        self.payload = payload
    }
}
