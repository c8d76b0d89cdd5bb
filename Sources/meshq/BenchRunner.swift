// BenchRunner: the load generator of `meshq bench`, on one libevent loop.
// Each connection keeps `pipeline` requests in flight and records, per
// request, the time from send to reply (FIFO per connection: replies come in
// command order). Phase 1 enqueues payloads that name the run and a sequence
// number; phase 2 drains with DEQUEUE + ACK and checks that every payload of
// the run came back exactly once.
import Histogram
import MeshQCore
import Reactor

final class BenchRunner {
    struct PhaseResult {
        var name: String
        var messages: Int
        var seconds: Double
        var histogram: Histogram<UInt64>
        var errors: Int
        var firstError: String?
    }

    private enum Pending { case enqueue(UInt64), dequeue(UInt64), ack(UInt64) }

    private final class Client {
        let conn: Connection
        var buffer: [UInt8] = []
        var inflight: [Pending] = []
        var head = 0
        var inflightCount: Int { inflight.count - head }
        init(_ c: Connection) { conn = c }

        func push(_ p: Pending, _ line: String) {
            inflight.append(p)
            conn.write(line)
        }

        func pop() -> Pending? {
            guard head < inflight.count else { return nil }
            defer {
                head += 1
                if head > 4_096 && head * 2 > inflight.count {
                    inflight.removeFirst(head)
                    head = 0
                }
            }
            return inflight[head]
        }
    }

    let loop = EventLoop()
    let nodes: [HostPort]
    let connections: Int
    let pipeline: Int
    let messages: Int
    let payloadBytes: Int
    let runId = UInt64.random(in: 1...UInt64(UInt32.max))
    var progress: ((String) -> Void)?

    private var clients: [Client] = []
    private var phase = 0
    private var started: UInt64 = 0
    private var sent = 0
    private var done = 0
    /// Replies the phase waits for: every message for the enqueues; for the
    /// drain, only the enqueues that got OK or QUEUED (an ENQUEUE answered
    /// with an error left no task to drain, so waiting for it would never end).
    private var target = 0
    private var enqueuedOK = 0
    /// When `done` last grew: a phase that stops progressing for 30 s ends.
    private var lastProgressAt: UInt64 = 0
    private var doneAtLastTick = 0
    private var errors = 0
    private var firstError: String?
    private var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    private var lastReplyAt: UInt64 = 0
    private var aborted: String?
    private var seen: [UInt8]
    private(set) var duplicates = 0
    private(set) var foreign = 0
    private var outstandingDequeues = 0
    /// Tasks of other producers leased during the drain, NACKed at the end.
    private(set) var foreignIds: [String] = []

    /// Every connection is TLS with this context.
    let tls: TLSContext?
    /// PUT's options instead of ENQUEUE (`key=auto`: a key per message); nil: ENQUEUE.
    var putOptions: String? {
        didSet { putTemplate = putOptions.map(PutTemplate.init) }
    }
    private var putTemplate: PutTemplate?

    init(nodes: [HostPort], connections: Int, pipeline: Int, messages: Int, payloadBytes: Int, tls: TLSContext? = nil) {
        self.tls = tls
        self.nodes = nodes
        self.connections = connections
        self.pipeline = pipeline
        self.messages = messages
        self.payloadBytes = payloadBytes
        seen = [UInt8](repeating: 0, count: messages)
    }

    private func payload(_ seq: Int) -> String {
        let head = "b\(runId)-\(seq)-"
        return head.count >= payloadBytes ? head : head + String(repeating: "x", count: payloadBytes - head.count)
    }

    /// The sequence number of one of our payloads, nil for a foreign task.
    private func sequence(of payload: ArraySlice<UInt8>) -> Int? {
        let prefix = Array("b\(runId)-".utf8)
        guard payload.starts(with: prefix) else { return nil }
        var v = 0
        var i = payload.startIndex + prefix.count
        while i < payload.endIndex, payload[i] >= 0x30, payload[i] <= 0x39 {
            v = v * 10 + Int(payload[i] - 0x30)
            i += 1
        }
        return v < messages ? v : nil
    }

    // MARK: running

    func connect() throws {
        var failures: [String] = []
        var pendingConnects = connections
        for i in 0..<connections {
            let n = nodes[i % nodes.count]
            let addr = try SocketAddress.resolve(host: n.host, port: n.port)
            Connection.connect(loop: loop, to: addr, timeoutMs: 5_000, tls: tls, serverName: n.host) { [unowned self] c, err in
                pendingConnects -= 1
                if let c {
                    let client = Client(c)
                    c.onReadable = { [unowned self, unowned client] _ in self.readable(client) }
                    c.onClose = { [unowned self] _, reason in
                        if self.phase != 0 { self.abort("a connection closed: \(reason)") }
                    }
                    clients.append(client)
                } else {
                    failures.append("\(n): \(err ?? "failed")")
                }
                if pendingConnects == 0 { loop.stop() }
            }
        }
        loop.run()
        if !failures.isEmpty { throw Failure("cannot connect: \(failures.first!) (\(failures.count) of \(connections))") }
    }

    func runEnqueue() -> PhaseResult {
        begin(phase: 1)
        target = messages
        enqueuedOK = 0
        for c in clients { fillEnqueue(c) }
        return finish("Enqueue")
    }

    func runDrain() -> PhaseResult {
        begin(phase: 2)
        target = enqueuedOK
        for c in clients { fillDrain(c) }
        return finish("Dequeue+Ack")
    }

    private func begin(phase p: Int) {
        phase = p
        sent = 0
        done = 0
        errors = 0
        firstError = nil
        histogram.reset()
        started = Clock.monotonicNs()
        lastReplyAt = started
        lastProgressAt = started
        doneAtLastTick = 0
    }

    private func finish(_ name: String) -> PhaseResult {
        let ticker = Reactor.Timer(loop: loop, repeating: true) { [unowned self] in self.tick() }
        ticker.schedule(afterMs: 1_000)
        if done < target && aborted == nil { loop.run() }
        ticker.cancel()
        let secs = Double(Clock.monotonicNs() - started) / 1e9
        phase = 0
        return PhaseResult(name: name, messages: done, seconds: secs, histogram: histogram, errors: errors,
                           firstError: aborted ?? firstError)
    }

    private func tick() {
        let now = Clock.monotonicNs()
        let secs = Double(now - started) / 1e9
        progress?("\(phase == 1 ? "enqueue" : "drain"): \(done)/\(target) (\(Int(Double(done) / max(secs, 0.001)))/s)")
        if done != doneAtLastTick {
            doneAtLastTick = done
            lastProgressAt = now
        }
        if now - lastReplyAt > 30_000_000_000 { abort("no reply for 30 s") }
        // Replies that make no progress (a drain finding EMPTY again and
        // again: a task the cluster lost) must not keep the run going.
        if now - lastProgressAt > 30_000_000_000 { abort("no progress for 30 s (\(done) of \(target))") }
    }

    private func abort(_ why: String) {
        guard aborted == nil else { return }
        aborted = why
        loop.stop()
    }

    var abortReason: String? { aborted }

    private func fillEnqueue(_ c: Client) {
        while c.inflightCount < pipeline && sent < messages {
            if let t = putTemplate {
                c.push(.enqueue(Clock.monotonicNs()), "PUT default \(t.options(runId: runId, message: sent)) \(payload(sent))\n")
            } else {
                c.push(.enqueue(Clock.monotonicNs()), "ENQUEUE \(payload(sent))\n")
            }
            sent += 1
        }
    }

    private func fillDrain(_ c: Client) {
        while c.inflightCount < pipeline && done + outstandingDequeues < target {
            c.push(.dequeue(Clock.monotonicNs()), "DEQUEUE\n")
            outstandingDequeues += 1
        }
    }

    private func readable(_ c: Client) {
        c.conn.read(into: &c.buffer)
        var start = 0
        while let nl = c.buffer[start...].firstIndex(of: 0x0A) {
            handle(c, c.buffer[start..<nl])
            start = nl + 1
        }
        c.buffer.removeFirst(start)
        if phase == 1 { fillEnqueue(c) } else if phase == 2 { fillDrain(c) }
        if done >= target { loop.stop() }
    }

    private func recordError(_ line: ArraySlice<UInt8>) {
        errors += 1
        if firstError == nil { firstError = String(decoding: line, as: UTF8.self) }
    }

    private func handle(_ c: Client, _ line: ArraySlice<UInt8>) {
        let now = Clock.monotonicNs()
        lastReplyAt = now
        guard let p = c.pop() else { return }
        switch p {
        case .enqueue(let t0):
            if line.starts(with: Array("OK ".utf8)) || line.starts(with: Array("QUEUED ".utf8)) {
                histogram.record((now - t0) / 1_000)
                done += 1
                enqueuedOK += 1
            } else {
                recordError(line)
                // Count it as finished so the phase ends; the error is reported.
                done += 1
            }
        case .dequeue(let t0):
            outstandingDequeues -= 1
            if line.starts(with: Array("TASK ".utf8)) {
                let parts = line.split(separator: 0x20, maxSplits: 3, omittingEmptySubsequences: false)
                let id = String(decoding: parts[1], as: UTF8.self)
                let body = parts.count == 4 ? parts[3] : []
                if let seq = sequence(of: body) {
                    if seen[seq] != 0 { duplicates += 1 }
                    seen[seq] &+= 1
                    outstandingDequeues += 1   // its ACK stands in until it answers
                    c.push(.ack(t0), "ACK \(id)\n")
                } else {
                    // Someone else's task: keep its lease (so we are not handed
                    // it again) and give it back when the run ends.
                    foreign += 1
                    foreignIds.append(id)
                    outstandingDequeues += 1
                    c.push(.dequeue(t0), "DEQUEUE\n")
                }
            } else if line.elementsEqual("EMPTY".utf8) {
                outstandingDequeues += 1
                c.push(.dequeue(t0), "DEQUEUE 100\n")
            } else {
                recordError(line)
            }
        case .ack(let t0):
            outstandingDequeues -= 1
            if line.starts(with: Array("OK ".utf8)) {
                histogram.record((now - t0) / 1_000)
                done += 1
            } else {
                recordError(line)
                done += 1
            }
        }
    }

    /// Payloads never drained, and how many came back more than once.
    func verification() -> (missing: [Int], duplicated: Int) {
        var missing: [Int] = []
        var dup = 0
        for (i, n) in seen.enumerated() {
            if n == 0 { missing.append(i) }
            if n > 1 { dup += 1 }
        }
        return (missing, dup)
    }

    func close() {
        for c in clients { c.conn.close() }
        clients.removeAll()
    }
}

/// PUT's options with `key=auto` split out once, so each message only
/// splices in its own key (the load generator stays cheap).
private struct PutTemplate {
    let before: String
    let after: String?

    init(_ options: String) {
        if let r = options.range(of: "key=auto") {
            before = String(options[..<r.lowerBound])
            after = String(options[r.upperBound...])
        } else {
            before = options
            after = nil
        }
    }

    func options(runId: UInt64, message: Int) -> String {
        guard let after else { return before }
        return "\(before)key=b\(runId)-\(message)\(after)"
    }
}
