// A fake connection and a fake server for ClientSession: the connection keeps
// what the client sent until the session reads it (never while reads are
// paused) and what the session wrote, counting it as unsent until the test
// drains it; the server records every command submitted and answers none by
// itself, so each test decides when and in which order replies are ready.
import MeshQCore
@testable import MeshQNode

final class FakeConnection: ClientConnection {
    var isOpen = true
    var pendingOutputBytes = 0
    /// The socket takes everything written at once (no output backpressure).
    var drainsAtOnce = false
    private(set) var paused = false
    private(set) var pauses = 0
    private(set) var closedAfterFlush = false
    private(set) var written: [UInt8] = []
    private var inbound: [UInt8] = []

    var output: String { String(decoding: written, as: UTF8.self) }
    var outputLines: [Substring] { output.split(separator: "\n", omittingEmptySubsequences: false).dropLast() }
    var unread: Int { inbound.count }

    /// The fake's socket takes writes as they come (or per `drainsAtOnce`).
    func flushNow() {}

    func read(into buffer: inout [UInt8]) -> Int {
        let n = inbound.count
        buffer.append(contentsOf: inbound)
        inbound.removeAll()
        return n
    }

    func write(_ bytes: [UInt8]) {
        written += bytes
        if !drainsAtOnce { pendingOutputBytes += bytes.count }
    }

    func closeAfterFlush() { closedAfterFlush = true }
    func close() { isOpen = false }
    func pauseReading() { paused = true; pauses += 1 }
    func resumeReading() { paused = false }

    /// The client sends bytes; they wait in the socket until the session reads.
    func receive(_ text: String) { inbound += Array(text.utf8) }
}

final class FakeHost: SessionHost {
    let metrics = NodeMetrics()
    var token: String?
    private(set) var submitted: [(cmd: ClientCommand, seq: UInt64)] = []
    private var dirty: [ClientSession] = []

    func checkToken(_ token: String) -> Bool { self.token == nil || token == self.token }

    func submit(_ cmd: ClientCommand, seq: UInt64, session: ClientSession) {
        submitted.append((cmd, seq))
    }

    func markDirty(_ s: ClientSession) {
        guard !s.isDirty else { return }
        s.isDirty = true
        dirty.append(s)
    }

    /// The end of a loop iteration, as NodeServer does it: dirty sessions write.
    func endIteration() {
        let now = dirty
        dirty.removeAll()
        for s in now { s.flushOutput() }
    }

    func seqs(where match: (ClientCommand) -> Bool) -> [UInt64] {
        submitted.filter { match($0.cmd) }.map(\.seq)
    }
}

/// One session on a fake connection and host, stepped like the event loop.
struct SessionRig {
    let conn = FakeConnection()
    let host = FakeHost()
    let session: ClientSession

    init(needsAuth: Bool = false) {
        session = ClientSession(id: 1, connection: conn, server: host, maxLineBytes: 1 << 20, needsAuth: needsAuth)
    }

    /// One loop iteration: a readable event when there is input and reading is
    /// not paused, then the end-of-iteration flush.
    func step() {
        if conn.unread > 0 && !conn.paused { session.readable() }
        host.endIteration()
    }

    /// The socket sent everything out: the drained callback.
    func drain() {
        conn.pendingOutputBytes = 0
        session.drained()
    }
}
