// ClientSessionPorts: the two narrow interfaces a ClientSession talks through,
// so its ordering and backpressure rules can be tested on a fake connection
// and a fake server without sockets or processes. In the daemon the
// connection is a Reactor.Connection and the host is the NodeServer; both
// already have exactly these members, so the conformances are empty.

import MeshQCore
import Reactor

/// What a session needs from its byte stream.
protocol ClientConnection: AnyObject {
    var isOpen: Bool { get }
    /// Bytes written but not yet taken by the socket.
    var pendingOutputBytes: Int { get }
    /// Appends what has arrived to `buffer`; returns the byte count.
    func read(into buffer: inout [UInt8]) -> Int
    func write(_ bytes: [UInt8])
    /// Hands what is queued to the socket now, not on the loop's next turn
    /// (a write that empties the queue reports the drain as the loop would).
    func flushNow()
    func closeAfterFlush()
    /// Closes at once, dropping unsent output (shutdown).
    func close()
    func pauseReading()
    func resumeReading()
}

/// What a session needs from the server that owns it.
protocol SessionHost: AnyObject {
    var metrics: NodeMetrics { get }
    func checkToken(_ token: String) -> Bool
    /// Hands a command to the node; its reply comes back through `session.fill(seq, _)`.
    func submit(_ cmd: ClientCommand, seq: UInt64, session: ClientSession)
    /// The session has replies ready: call its `flushOutput()` at the end of the iteration.
    func markDirty(_ s: ClientSession)
}

extension Connection: ClientConnection {}
extension NodeServer: SessionHost {}
