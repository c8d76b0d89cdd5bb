// QueueClient: one logical connection to "the cluster". It connects to the
// first node that answers HELLO (with the client's Lamport clock), keeps that
// connection, and moves to the next node when one fails or cannot serve.
// What it sends again follows docs/protocol.md (see ReplyOutcome):
//  - a command that never left whole (connect refused, send failed) or that a
//    node refused without applying (NOLEADER: no leader reachable) goes to the
//    next node, for up to `retryForMs` while a new leader is elected;
//  - a command whose outcome is unknown (NOQUORUM, a NOLEADER that says it may
//    have been applied, the connection lost or timed out after the whole line
//    was sent) is sent again only when repeating it is harmless (DEQUEUE, TAKE,
//    TOUCH, STATS, PEEK, PAUSE; ACK, NACK and BURY, where a repeat of one that
//    took gets NOTFOUND; a PUT with a key, which the server stores once and
//    answers `dup`). ENQUEUE, a PUT without a key and KICK are not: the caller
//    gets UnknownOutcome and must say so rather than risk a duplicate.
// A line whose send failed part-way is not applied: the server drops a partial
// line when the connection closes. A reused connection is checked with PING
// before a command that must not be repeated, so a node that died while we
// were idle is found before the command is sent, not mistaken for a lost reply.
import Glibc
import MeshQClient
import MeshQCore
import Reactor

/// The command may have taken effect (or may still): it must not be sent again blindly.
struct UnknownOutcome: Error, CustomStringConvertible {
    let node: HostPort
    let reason: String
    var description: String { "outcome unknown at \(node): \(reason)" }
}

final class QueueClient {
    let nodes: [HostPort]
    let clientId: String
    private(set) var lamport = LamportTracker()
    private var conn: LineClient?
    private var connUsed = false
    private var current = 0
    var timeoutMs = 10_000
    /// How long a command keeps moving from node to node while the cluster
    /// has no leader (a failover takes well under a second with the defaults).
    var retryForMs = 30_000
    /// Told of every command sent again and why (for `-v`).
    var onRetry: ((String) -> Void)?
    /// Told of every command sent again although its first outcome was
    /// unknown (a keyed PUT, an ACK): `meshq put` always says so on stderr.
    var onResendAfterUnknown: ((String) -> Void)?

    struct Answer {
        let reply: String
        /// An earlier attempt's outcome was unknown (only for repeatable commands):
        /// for ACK or NACK, NOTFOUND then means that attempt took.
        let afterUnknown: Bool
        /// With `until:`, the lines after `reply`, the terminator last.
        var more: [String] = []
    }

    /// How one line of a pipeline ended.
    enum LineResult {
        case reply(String)
        case unknown(UnknownOutcome)
        /// Never sent whole to any node (no node reachable); certainly not applied.
        case notSent(String)
    }

    /// Every connection is TLS with this context (`--tls`).
    let tls: TLSContext?

    init(nodes: [HostPort], clientId: String, tls: TLSContext? = nil) {
        self.nodes = nodes
        self.clientId = clientId
        self.tls = tls
    }

    private func connect(probe: Bool = false) throws -> LineClient {
        if let conn {
            guard probe, connUsed else { return conn }
            if (try? conn.request("PING")) == "PONG" { return conn }
            dropConnection()
        }
        var errors: [String] = []
        for step in 0..<nodes.count {
            let i = (current + step) % nodes.count
            let n = nodes[i]
            do {
                let c = try LineClient(host: n.host, port: n.port, timeoutMs: timeoutMs, tls: tls)
                let hello = try c.request("HELLO \(clientId) \(lamport.tickForSend())")
                guard hello.hasPrefix("HELLO ") else {
                    errors.append("\(n): \(hello)")
                    continue
                }
                lamport.observe(reply: hello)
                conn = c
                connUsed = false
                current = i
                return c
            } catch {
                errors.append("\(n): \(error)")
            }
        }
        throw Failure("no node reachable (\(errors.joined(separator: "; ")))")
    }

    private func dropConnection() {
        conn?.close()
        conn = nil
        current = (current + 1) % nodes.count
    }

    /// Waits a little once every node was tried in a row, so an election can run.
    private func pause(beforeAttempt attempt: Int) {
        if attempt >= nodes.count && attempt % nodes.count == 0 { usleep(100_000) }
    }

    /// Sends one command, moving to the next node as the header says, until
    /// `retryForMs` has passed. Throws UnknownOutcome for a non-repeatable
    /// command that may have been applied, Failure when it certainly was not.
    /// `why` says why a repeat is harmless (in the message when one is sent
    /// again). With `until`, a reply that is not ERR is followed by lines up
    /// to and including `until` (STATS without a queue), read into `more`.
    /// `wanted`, checked before each attempt after the first, ends the tries
    /// early (Failure) once the command is no longer wanted.
    func request(_ line: String, repeatable: Bool, why: String = "repeating it is harmless",
                 until terminator: String? = nil, wanted: (() -> Bool)? = nil) throws -> Answer {
        var last = ""
        var afterUnknown = false
        let deadline = Clock.monotonicMs() + Int64(retryForMs)
        var attempt = 0
        while attempt < nodes.count || Clock.monotonicMs() < deadline {
            if attempt > 0, let wanted, !wanted() { throw Failure("no longer wanted after: \(last)") }
            pause(beforeAttempt: attempt)
            attempt += 1
            // Every node was tried and none answers: the cluster is down, say so now.
            let c: LineClient
            do {
                c = try connect(probe: !repeatable)
            } catch {
                // An earlier attempt may have taken: that is no plain failure.
                if afterUnknown { throw UnknownOutcome(node: nodes[current], reason: "\(last); then \(error)") }
                throw error
            }
            let node = nodes[current]
            connUsed = true
            do {
                try c.send(line + "\n")
            } catch {
                last = "\(node): \(error)"
                onRetry?("\(Self.shown(line)): not sent whole to \(node) (\(error)); trying the next node")
                dropConnection()
                continue
            }
            let r: String
            var more: [String] = []
            do {
                r = try c.readLine()
                if let terminator, r != terminator, !r.hasPrefix("ERR ") {
                    while more.last != terminator { more.append(try c.readLine()) }
                }
            } catch {
                dropConnection()
                let lost = UnknownOutcome(node: node, reason: "no reply before the connection failed (\(error))")
                guard repeatable else { throw lost }
                last = "\(lost)"
                afterUnknown = true
                resent("\(Self.shown(line)): \(lost); sending it again (\(why))")
                continue
            }
            lamport.observe(reply: r)
            switch ReplyOutcome(reply: r) {
            case .answered:
                return Answer(reply: r, afterUnknown: afterUnknown, more: more)
            case .unknown:
                guard repeatable else { throw UnknownOutcome(node: node, reason: r) }
                afterUnknown = true
                resent("\(Self.shown(line)): outcome unknown at \(node): \(r); sending it again (\(why))")
            case .notApplied:
                onRetry?("\(Self.shown(line)): not applied at \(node): \(r); trying the next node")
            }
            last = r
            dropConnection()
        }
        if afterUnknown { throw UnknownOutcome(node: nodes[current], reason: "\(last) (sent again until out of time)") }
        throw Failure(last)
    }

    private func resent(_ message: String) {
        onRetry?(message)
        onResendAfterUnknown?(message)
    }

    /// Pipelines commands that must not be repeated (ENQUEUEs): all of them
    /// go out on one node and the replies come back in order. Lines refused
    /// without effect, or never sent whole, go to the next node; lines whose
    /// outcome is unknown are not sent again. One result per line, in order.
    func pipelineOnce(_ lines: [String]) -> [LineResult] {
        pipeline(lines, resendUnknown: nil)
    }

    /// Like pipelineOnce, but with `resendUnknown` (why a repeat is harmless,
    /// e.g. each line's idempotency key) lines whose outcome is unknown go to
    /// the next node too, until `retryForMs` has passed; one still unknown
    /// then is reported unknown.
    func pipeline(_ lines: [String], resendUnknown: String?) -> [LineResult] {
        var results = [LineResult?](repeating: nil, count: lines.count)
        var pending = Array(lines.indices)
        var refusal: [Int: LineResult] = [:]
        // Lines resent after an unknown outcome: never "not sent" after that.
        var wasUnknown: [Int: UnknownOutcome] = [:]
        func unanswered(_ i: Int, _ otherwise: LineResult) -> LineResult {
            wasUnknown[i].map { .unknown($0) } ?? otherwise
        }
        let deadline = Clock.monotonicMs() + Int64(retryForMs)
        var attempt = 0
        while !pending.isEmpty, attempt < nodes.count || Clock.monotonicMs() < deadline {
            pause(beforeAttempt: attempt)
            attempt += 1
            let c: LineClient
            do {
                c = try connect(probe: true)
            } catch {
                for i in pending { results[i] = unanswered(i, .notSent("\(error)")) }
                pending = []
                break
            }
            let node = nodes[current]
            connUsed = true
            var sent = 0
            for i in pending {
                do {
                    try c.send(lines[i] + "\n")
                    sent += 1
                } catch {
                    refusal[i] = .notSent("\(node): \(error)")
                    onRetry?("\(Self.shown(lines[i])) and the \(pending.count - sent - 1) lines after it: not sent whole to "
                        + "\(node) (\(error)); trying the next node")
                    break
                }
            }
            var again = Array(pending[sent...])
            var lost: UnknownOutcome?
            func unknown(_ i: Int, _ u: UnknownOutcome) {
                if let why = resendUnknown {
                    wasUnknown[i] = u
                    again.append(i)
                    resent("\(Self.shown(lines[i])): \(u); sending it again (\(why))")
                } else {
                    results[i] = .unknown(u)
                }
            }
            for i in pending[..<sent] {
                if let lost {
                    unknown(i, lost)
                    continue
                }
                do {
                    let r = try c.readLine()
                    lamport.observe(reply: r)
                    switch ReplyOutcome(reply: r) {
                    case .answered: results[i] = .reply(r)
                    case .unknown: unknown(i, UnknownOutcome(node: node, reason: r))
                    case .notApplied:
                        refusal[i] = .reply(r)
                        again.append(i)
                        onRetry?("\(Self.shown(lines[i])): not applied at \(node): \(r); trying the next node")
                    }
                } catch {
                    let u = UnknownOutcome(node: node, reason: "no reply before the connection failed (\(error))")
                    lost = u
                    unknown(i, u)
                }
            }
            if lost != nil || !again.isEmpty { dropConnection() }
            pending = again.sorted()
        }
        // Out of time: what is left was refused (or, resent, unknown) every
        // time; the last such answer stands.
        for i in pending { results[i] = unanswered(i, refusal[i] ?? .notSent("no node took it")) }
        return results.map { $0! }
    }

    /// A command as it appears in a message: cut after 60 characters.
    static func shown(_ line: String) -> String {
        line.count <= 60 ? line : "\(line.prefix(60))... (\(line.utf8.count) bytes)"
    }

    func close() {
        if let c = conn { _ = try? c.request("QUIT") }
        conn?.close()
        conn = nil
    }
}
