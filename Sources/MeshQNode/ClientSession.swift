// ClientSession: one client connection. Lines are cut by a LineFramer, parsed,
// and each command takes a reply slot; slots are written strictly in command
// order, so a pipelining client may send thousands of commands and read the
// replies in order, even though an ENQUEUE's reply waits for an fsync while a
// PING's is ready at once.
//
// Read-your-writes: DEQUEUE, NACK and STATUS wait until this connection's
// earlier ENQUEUEs and ACKs have committed (so `ENQUEUE x` then `DEQUEUE` on
// one connection sees x). A DEQUEUE with a wait blocks the connection until it
// answers, as a blocking pop does in Redis or a reserve in beanstalkd.
//
// Hostile clients (README, "Hostile clients"): a wrong AUTH after the first
// is answered only after a delay doubling from 100 ms (capped at 5 s), and the
// connection reads nothing more meanwhile, so pipelined guesses wait too; the
// 10th wrong token closes it. Timeouts are ClientWatch's: the session only
// counts complete lines and says whether it owes the client anything.
//
// It sees its connection and its server only through ClientConnection and
// SessionHost (ClientSessionPorts.swift), so MeshQNodeTests drive it directly.
import DequeModule
import MeshQCore

final class ClientSession {
    private enum Kind: UInt8 { case local, write, blockingRead, read, quit }

    private struct Slot {
        var kind: Kind
        var reply: Reply?
    }

    let id: UInt64
    let connection: any ClientConnection
    unowned let server: any SessionHost
    var clientId: String?
    private var framer: LineFramer
    private var authenticated: Bool
    private var slots = Deque<Slot>()
    private var baseSeq: UInt64 = 0
    private var pendingWrites = 0
    private var blocked = false
    private var held: ClientCommand?
    private var quitting = false
    /// The client half-closed: answer what it sent, then close.
    private var inputEnded = false
    private var readPaused = false
    // A reply delivered while we are inside `process` must not re-enter it
    // (10,000 pipelined DEQUEUEs would recurse 10,000 deep); the running loop
    // sees the state change and carries on.
    private var processing = false
    private var out: [UInt8] = []
    var isDirty = false
    /// Complete non-blank lines received: what keeps a connection from idling out.
    private(set) var linesReceived: UInt64 = 0
    private(set) var authFailures = 0
    /// The reply slot of a wrong AUTH whose answer waits, and how long it must.
    private(set) var authPenalty: (seq: UInt64, delayMs: Int)?

    static let maxAuthFailures = 10
    static func authDelayMs(failures: Int) -> Int {
        failures < 2 ? 0 : min(5_000, 100 << min(failures - 2, 10))
    }

    /// Bytes of unprocessed input or unsent output past which we stop reading.
    static let backpressureBytes = 4 << 20

    init(id: UInt64, connection: any ClientConnection, server: any SessionHost, maxLineBytes: Int, needsAuth: Bool) {
        self.id = id
        self.connection = connection
        self.server = server
        self.framer = LineFramer(maxLineBytes: maxLineBytes)
        self.authenticated = !needsAuth
    }

    var owner: String { clientId ?? "conn-\(id)" }

    func readable() {
        server.metrics.bytesIn += framer.withBuffer { connection.read(into: &$0) }
        process()
    }

    /// Runs every buffered command that may run now.
    func process() {
        if processing { return }
        processing = true
        defer { processing = false }
        while !quitting {
            if let cmd = held {
                guard canRun(cmd) else { break }
                held = nil
                execute(cmd)
                continue
            }
            if blocked { break }
            switch framer.next() {
            case .needMore:
                applyBackpressure()
                return
            case .tooLarge:
                let seq = allocate(.local)
                fill(seq, .error(.toolarge, "line longer than max_payload_bytes + 64 (\(framer.maxLineBytes) bytes); discarded"))
            case .line(let range):
                let parsed = LineParser.parse(framer.buffer[range])
                if parsed != .blank { linesReceived &+= 1 }
                switch parsed {
                case .blank:
                    continue
                case .error(let code, let text):
                    fill(allocate(.local), .error(code, text))
                case .command(let cmd):
                    if canRun(cmd) {
                        execute(cmd)
                    } else {
                        held = cmd
                    }
                }
            }
        }
        applyBackpressure()
    }

    private func canRun(_ cmd: ClientCommand) -> Bool {
        if blocked { return false }
        switch cmd {
        case .dequeue, .take, .status, .stats, .peek: return pendingWrites == 0
        default: return true
        }
    }

    private func execute(_ cmd: ClientCommand) {
        if !authenticated, !cmd.allowedBeforeAuth {
            fill(allocate(.local), .error(.auth, "authentication required: send AUTH <token>"))
            return
        }
        switch cmd {
        case .ping:
            fill(allocate(.local), .pong)
        case .help:
            fill(allocate(.local), .help)
        case .quit:
            quitting = true
            fill(allocate(.quit), .bye)
        case .auth(let token):
            if server.checkToken(token) {
                authenticated = true
                fill(allocate(.local), .plainOK)
                return
            }
            authFailures += 1
            if authFailures >= Self.maxAuthFailures {
                quitting = true
                fill(allocate(.quit), .error(.auth, "wrong token (\(authFailures) wrong tokens: closing)"))
            } else if authFailures == 1 {
                fill(allocate(.local), .error(.auth, "wrong token"))
            } else {
                // Answered by ClientWatch after the delay; nothing is read until then.
                blocked = true
                authPenalty = (allocate(.blockingRead), Self.authDelayMs(failures: authFailures))
            }
        case .hello(let cid, _):
            clientId = cid
            server.submit(cmd, seq: allocate(.local), session: self)
        case .enqueue, .ack, .nack, .put, .touch, .bury, .kick, .pause:
            pendingWrites += 1
            server.submit(cmd, seq: allocate(.write), session: self)
        case .dequeue(let wait), .take(_, let wait):
            let blocking = (wait ?? 0) > 0
            if blocking { blocked = true }
            server.submit(cmd, seq: allocate(blocking ? .blockingRead : .read), session: self)
        case .status, .stats, .peek:
            server.submit(cmd, seq: allocate(.read), session: self)
        }
    }

    private func allocate(_ kind: Kind) -> UInt64 {
        slots.append(Slot(kind: kind, reply: nil))
        return baseSeq + UInt64(slots.count - 1)
    }

    /// A reply for the command at `seq`; written once every earlier one is.
    func fill(_ seq: UInt64, _ reply: Reply) {
        guard seq >= baseSeq, seq - baseSeq < UInt64(slots.count) else { return }
        let i = Int(seq - baseSeq)
        guard slots[i].reply == nil else { return }
        slots[i].reply = reply
        var unblocked = false
        switch slots[i].kind {
        case .write:
            pendingWrites -= 1
            unblocked = pendingWrites == 0 && held != nil
        case .blockingRead:
            blocked = false
            unblocked = true
        default:
            break
        }
        if i == 0 { server.markDirty(self) }
        if unblocked { process() }
    }

    /// Writes every reply that is next in line. Called once per loop iteration.
    func flushOutput() {
        isDirty = false
        guard connection.isOpen else { return }
        out.removeAll(keepingCapacity: true)
        var closeAfter = false
        while let first = slots.first, let r = first.reply {
            r.render(into: &out)
            if first.kind == .quit { closeAfter = true }
            slots.removeFirst()
            baseSeq += 1
        }
        if !out.isEmpty {
            connection.write(out)
            server.metrics.bytesOut += out.count
        }
        if out.capacity > 1 << 20 { out = [] }
        if closeAfter || (inputEnded && slots.isEmpty && held == nil) {
            connection.closeAfterFlush()
        } else {
            applyBackpressure()
        }
    }

    // A client that sends without reading its replies would make us buffer
    // without bound: stop reading it until it catches up.
    private func applyBackpressure() {
        guard connection.isOpen, !quitting, !inputEnded else { return }
        let tooMuch = connection.pendingOutputBytes > Self.backpressureBytes
            || framer.bufferedBytes > Self.backpressureBytes
        if tooMuch, !readPaused {
            readPaused = true
            connection.pauseReading()
        } else if !tooMuch, readPaused {
            readPaused = false
            connection.resumeReading()
        }
    }

    var isAuthenticated: Bool { authenticated }

    /// Waiting on nothing: no reply owed, no command held, no line half-read.
    var owesNothing: Bool { slots.isEmpty && held == nil && !blocked }

    /// The delay of a wrong AUTH is over: answer it and read on.
    func releaseAuthPenalty() {
        guard let p = authPenalty else { return }
        authPenalty = nil
        fill(p.seq, .error(.auth, "wrong token"))
    }

    /// Closes for a timeout: `reply` is the last line, after every reply
    /// already owed (a wrong AUTH still waiting is answered first); with no
    /// reply (only when it owes nothing) the connection just closes.
    func expire(_ reply: Reply?) {
        guard !quitting else { return }
        releaseAuthPenalty()
        quitting = true
        if let reply {
            fill(allocate(.quit), reply)
        } else {
            connection.closeAfterFlush()
        }
    }

    func endOfInput() {
        inputEnded = true
        process()
        server.markDirty(self)
    }

    func drained() {
        if readPaused {
            applyBackpressure()
            if !readPaused { process() }
        }
    }
}
