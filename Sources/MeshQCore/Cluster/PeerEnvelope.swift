// PeerEnvelope: one message between nodes, with its sender, addressee,
// Lamport time and the sender's epoch, in a compact binary frame:
//   [u32 LE length of what follows][u8 version][u8 type][u32 from][u32 to]
//   [u64 lamport][u64 epoch][type-specific body]
// Decoding never traps: a frame that is short, too long, of an unknown version
// or type, or with trailing bytes is an error, and the transport drops the
// peer that sent it.

public struct PeerEnvelope: Equatable, Sendable {
    public enum Body: Equatable, Sendable {
        /// From the accepting side, first, when cluster_secret is set.
        case challenge(nonce: [UInt8])
        /// First frame from the dialing side: who is speaking, and (with
        /// cluster_secret) HMAC-SHA256(secret, context | nonce | from | to).
        case hello(nodeId: Int, proof: [UInt8])
        case election(BullyElection.Message)
        /// Cristian: a follower asks the leader for its wall clock...
        case timeRequest(seq: UInt64)
        /// ...and the leader answers with it (ms since the epoch).
        case timeReply(seq: UInt64, serverMs: Int64)
        /// Ricart-Agrawala around each replication round.
        case mutex(RicartAgrawalaMutex.Message)
        /// PREPARE: entries after (prevIndex, prevEpoch), and the leader's commit.
        case replicate(Replicate)
        /// A follower's answer: durable and matching the leader through
        /// `index`, or (not matched) a mismatch, `index` being its commit.
        case replicateAck(round: UInt64, matched: Bool, index: UInt64)
        /// COMMIT / ABORT of a round.
        case commit(round: UInt64, through: UInt64)
        /// `keep`: the leader's commit point; entries past it of its epoch are void.
        case abort(round: UInt64, keep: UInt64)
        /// Catch-up past the leader's in-memory log: its committed state.
        case snapshot(QueueSnapshot)
        /// A new leader asks the voter with the best log for its entries
        /// after `after`; `id` names this request within the asking epoch...
        case recoverRequest(id: UInt64, after: UInt64)
        /// ...and gets them (with a snapshot first when they start below
        /// what the voter still holds), echoing the request's epoch and id so
        /// a late answer to an earlier request is never taken for this one.
        case recoverReply(epoch: UInt64, id: UInt64, snapshot: QueueSnapshot?, entries: [LogEntry])
        /// A piece of a snapshot or recovery reply too large for one frame
        /// (ChunkedTransfer)...
        case chunk(Chunk)
        /// ...and the receiver's answer: it holds `received` bytes of it, in order.
        case chunkAck(kind: Chunk.Kind, epoch: UInt64, transfer: UInt64, received: UInt64)
        /// A follower relays a client command to the leader...
        case forward(id: UInt64, owner: String, command: ClientCommand)
        /// ...and gets back the reply line to hand the client.
        case forwardReply(id: UInt64, reply: [UInt8])
        /// A node hands the leader its parked ENQUEUEs, in sequence order...
        case deliverParked([MailboxEntry])
        /// ...and learns they are committed up to `through`.
        case parkedDelivered(through: UInt64)
        /// Sent on every link every heartbeat interval, in both directions: the
        /// peers the sender heard directly within leader_timeout_ms (`heard`,
        /// so the receiver learns whether its own frames arrive), and those of
        /// them that hear it too (`direct`: links it can send on, for routing).
        case links(direct: Set<Int>, heard: Set<Int>)
        /// A message for `dest` taking another way: (origin, id) names it
        /// once, `ttl` counts the hops it may still take.
        case relay(id: UInt64, origin: Int, dest: Int, ttl: Int, inner: Relayed)
        /// A node catching up asks the leader how far it must get (`id`
        /// tells this incarnation's question from any older one).
        case rejoinProbe(id: UInt64)
        /// The leader of `epoch` answers probe `id`: its log's last index
        /// when the probe arrived.
        case rejoinTarget(epoch: UInt64, id: UInt64, index: UInt64)
        /// A node that started with an empty log asks a peer what its log
        /// holds (Rejoin: whether the cluster is new); `id` tells this
        /// incarnation's question from an earlier one's...
        case logProbe(id: UInt64)
        /// ...and any node answers, echoing `id`, with its log's last index,
        /// the epoch of its latest vote (0: it never voted) and the epoch it
        /// promised (0: it never accepted a leader's replication).
        case logReport(id: UInt64, lastIndex: UInt64, votedEpoch: UInt64, promisedEpoch: UInt64)
    }

    /// The envelope inside a relay (boxed: an envelope holding an envelope).
    public final class Relayed: Equatable, Sendable {
        public let envelope: PeerEnvelope
        public init(_ e: PeerEnvelope) { envelope = e }
        public static func == (a: Relayed, b: Relayed) -> Bool { a.envelope == b.envelope }
    }

    public struct Replicate: Equatable, Sendable {
        public var round: UInt64
        public var prevIndex: UInt64
        public var prevEpoch: UInt64
        public var commit: UInt64
        public var entries: [LogEntry]

        public init(round: UInt64, prevIndex: UInt64, prevEpoch: UInt64, commit: UInt64, entries: [LogEntry]) {
            self.round = round
            self.prevIndex = prevIndex
            self.prevEpoch = prevEpoch
            self.commit = commit
            self.entries = entries
        }
    }

    /// 3: protocol 2's relayed commands and parked PUTs (a node of an older
    /// build is refused as a bad version, never misread).
    public static let version: UInt8 = 3
    /// Entries a replication message carries, in payload bytes (past one entry).
    public static let maxBatchBytes = 4 << 20
    /// The largest payload an entry may hold (max_payload_bytes' upper bound).
    public static let maxEntryBytes = 64 << 20
    /// No legitimate frame is larger: a batch or chunk plus one largest entry
    /// and headroom for headers (a relay wraps one frame). Snapshots and
    /// recovery replies of any size go as chunks, so this only stops garbage.
    public static let maxFrameBytes = maxBatchBytes + maxEntryBytes + (1 << 16)

    public var from: Int
    public var to: Int
    public var lamport: UInt64
    public var epoch: UInt64
    public var body: Body

    public init(from: Int, to: Int, lamport: UInt64, epoch: UInt64, body: Body) {
        self.from = from
        self.to = to
        self.lamport = lamport
        self.epoch = epoch
        self.body = body
    }

    private enum Kind: UInt8 {
        case hello = 1, challenge
        case election = 10, vote, answer, coordinator, heartbeat, heartbeatAck
        case timeRequest = 20, timeReply
        case mutexRequest = 30, mutexReply
        case replicate = 40, replicateAck, commit, abort, snapshot, recoverRequest, recoverReply, chunk, chunkAck
        case forward = 50, forwardReply, deliverParked, parkedDelivered
        case links = 60, relay
        case abstain = 16
        case rejoinProbe = 80, rejoinTarget, logProbe, logReport
    }

    /// About the frame's size, so a batch of entries is written into one
    /// allocation instead of a buffer that doubles and copies as it grows.
    private var sizeHint: Int {
        guard case .replicate(let r) = body else { return 64 }
        return 96 + r.entries.reduce(0) { $0 + 48 + $1.payloadSize }
    }

    /// The whole frame, length prefix included.
    public func framed() -> [UInt8] {
        var w = ByteWriter(capacity: sizeHint)
        w.u32(0)
        w.u8(Self.version)
        switch body {
        case .hello: w.u8(Kind.hello.rawValue)
        case .challenge: w.u8(Kind.challenge.rawValue)
        case .election(let m):
            switch m {
            case .election: w.u8(Kind.election.rawValue)
            case .vote: w.u8(Kind.vote.rawValue)
            case .answer: w.u8(Kind.answer.rawValue)
            case .abstain: w.u8(Kind.abstain.rawValue)
            case .coordinator: w.u8(Kind.coordinator.rawValue)
            case .heartbeat: w.u8(Kind.heartbeat.rawValue)
            case .heartbeatAck: w.u8(Kind.heartbeatAck.rawValue)
            }
        case .timeRequest: w.u8(Kind.timeRequest.rawValue)
        case .timeReply: w.u8(Kind.timeReply.rawValue)
        case .mutex(.request): w.u8(Kind.mutexRequest.rawValue)
        case .mutex(.reply): w.u8(Kind.mutexReply.rawValue)
        case .replicate: w.u8(Kind.replicate.rawValue)
        case .replicateAck: w.u8(Kind.replicateAck.rawValue)
        case .commit: w.u8(Kind.commit.rawValue)
        case .abort: w.u8(Kind.abort.rawValue)
        case .snapshot: w.u8(Kind.snapshot.rawValue)
        case .recoverRequest: w.u8(Kind.recoverRequest.rawValue)
        case .recoverReply: w.u8(Kind.recoverReply.rawValue)
        case .chunk: w.u8(Kind.chunk.rawValue)
        case .chunkAck: w.u8(Kind.chunkAck.rawValue)
        case .forward: w.u8(Kind.forward.rawValue)
        case .forwardReply: w.u8(Kind.forwardReply.rawValue)
        case .deliverParked: w.u8(Kind.deliverParked.rawValue)
        case .parkedDelivered: w.u8(Kind.parkedDelivered.rawValue)
        case .links: w.u8(Kind.links.rawValue)
        case .relay: w.u8(Kind.relay.rawValue)
        case .rejoinProbe: w.u8(Kind.rejoinProbe.rawValue)
        case .rejoinTarget: w.u8(Kind.rejoinTarget.rawValue)
        case .logProbe: w.u8(Kind.logProbe.rawValue)
        case .logReport: w.u8(Kind.logReport.rawValue)
        }
        w.u32(UInt32(truncatingIfNeeded: from))
        w.u32(UInt32(truncatingIfNeeded: to))
        w.u64(lamport)
        w.u64(epoch)
        switch body {
        case .hello(let id, let proof):
            w.u32(UInt32(truncatingIfNeeded: id))
            w.blob(proof)
        case .challenge(let nonce):
            w.blob(nonce)
        case .election(let m):
            switch m {
            case .election(let e, let p):
                w.u64(e)
                w.u64(p.epoch)
                w.u64(p.index)
            case .vote(let e, let p, let wait, let holder):
                w.u64(e)
                w.u64(p.epoch)
                w.u64(p.index)
                w.i64(wait)
                w.u32(UInt32(truncatingIfNeeded: holder))
            case .answer(let e), .abstain(let e), .coordinator(let e):
                w.u64(e)
            case .heartbeat(let e, let sentAt), .heartbeatAck(let e, let sentAt):
                w.u64(e)
                w.i64(sentAt)
            }
        case .timeRequest(let seq):
            w.u64(seq)
        case .timeReply(let seq, let ms):
            w.u64(seq)
            w.i64(ms)
        case .mutex(.request(let ts)):
            w.u64(ts)
        case .mutex(.reply(let ts)):
            w.u64(ts)
        case .replicate(let r):
            w.u64(r.round)
            w.u64(r.prevIndex)
            w.u64(r.prevEpoch)
            w.u64(r.commit)
            Self.encode(r.entries, into: &w)
        case .replicateAck(let round, let matched, let index):
            w.u64(round)
            w.u8(matched ? 1 : 0)
            w.u64(index)
        case .commit(let round, let through):
            w.u64(round)
            w.u64(through)
        case .abort(let round, let keep):
            w.u64(round)
            w.u64(keep)
        case .snapshot(let snap):
            w.blob(snap.encoded())
        case .recoverRequest(let id, let after):
            w.u64(id)
            w.u64(after)
        case .recoverReply(let e, let id, let snap, let entries):
            w.u64(e)
            w.u64(id)
            Self.encodeRecovery(snapshot: snap, entries: entries, into: &w)
        case .chunk(let c):
            w.u8(c.kind.rawValue)
            w.u64(c.epoch)
            w.u64(c.transfer)
            w.u64(c.index)
            w.u64(c.total)
            w.u64(c.offset)
            w.blob(c.bytes)
        case .chunkAck(let kind, let e, let transfer, let received):
            w.u8(kind.rawValue)
            w.u64(e)
            w.u64(transfer)
            w.u64(received)
        case .forward(let id, let owner, let command):
            w.u64(id)
            w.string(owner)
            Self.encode(command, into: &w)
        case .forwardReply(let id, let reply):
            w.u64(id)
            w.blob(reply)
        case .deliverParked(let entries):
            w.u32(UInt32(entries.count))
            for e in entries {
                w.u64(e.seq)
                w.i64(e.enqueuedAtMs)
                w.blob(e.payload)
                e.encodeOptions(into: &w)
            }
        case .parkedDelivered(let through):
            w.u64(through)
        case .links(let direct, let heard):
            for ids in [direct, heard] {
                w.u32(UInt32(ids.count))
                for id in ids.sorted() { w.u32(UInt32(truncatingIfNeeded: id)) }
            }
        case .relay(let id, let origin, let dest, let ttl, let inner):
            w.u64(id)
            w.u32(UInt32(truncatingIfNeeded: origin))
            w.u32(UInt32(truncatingIfNeeded: dest))
            w.u8(UInt8(clamping: ttl))
            w.blob(inner.envelope.framed())
        case .rejoinProbe(let id):
            w.u64(id)
        case .rejoinTarget(let e, let id, let index):
            w.u64(e)
            w.u64(id)
            w.u64(index)
        case .logProbe(let id):
            w.u64(id)
        case .logReport(let id, let lastIndex, let voted, let promised):
            w.u64(id)
            w.u64(lastIndex)
            w.u64(voted)
            w.u64(promised)
        }
        var bytes = w.bytes
        let n = UInt32(bytes.count - 4)
        for i in 0..<4 { bytes[i] = UInt8(truncatingIfNeeded: n >> (8 * UInt32(i))) }
        return bytes
    }

    public enum DecodeError: Error, Equatable, Sendable {
        case badLength(Int), badVersion(UInt8), badType(UInt8), truncated, trailingBytes
    }

    /// Decodes one frame body (what follows the length prefix).
    public static func decode(frame: [UInt8]) -> Result<PeerEnvelope, DecodeError> {
        var r = ByteReader(frame)
        guard let v = r.u8() else { return .failure(.truncated) }
        guard v == version else { return .failure(.badVersion(v)) }
        guard let t = r.u8() else { return .failure(.truncated) }
        guard let kind = Kind(rawValue: t) else { return .failure(.badType(t)) }
        guard let from = r.u32(), let to = r.u32(), let lamport = r.u64(), let epoch = r.u64() else {
            return .failure(.truncated)
        }
        let body: Body
        switch kind {
        case .hello:
            guard let id = r.u32(), let proof = r.blob(maxLength: 64) else { return .failure(.truncated) }
            body = .hello(nodeId: Int(id), proof: proof)
        case .challenge:
            guard let nonce = r.blob(maxLength: 64) else { return .failure(.truncated) }
            body = .challenge(nonce: nonce)
        case .election:
            guard let e = r.u64(), let pe = r.u64(), let pi = r.u64() else { return .failure(.truncated) }
            body = .election(.election(epoch: e, position: LogPosition(epoch: pe, index: pi)))
        case .vote:
            guard let e = r.u64(), let pe = r.u64(), let pi = r.u64(), let wait = r.i64(), wait >= 0,
                  let holder = r.u32() else {
                return .failure(.truncated)
            }
            body = .election(.vote(epoch: e, position: LogPosition(epoch: pe, index: pi), leaseWaitMs: wait,
                                   leaseHolder: Int(holder)))
        case .answer, .coordinator:
            guard let e = r.u64() else { return .failure(.truncated) }
            body = .election(kind == .answer ? .answer(epoch: e) : .coordinator(epoch: e))
        case .abstain:
            guard let e = r.u64() else { return .failure(.truncated) }
            body = .election(.abstain(epoch: e))
        case .rejoinProbe:
            guard let id = r.u64() else { return .failure(.truncated) }
            body = .rejoinProbe(id: id)
        case .rejoinTarget:
            guard let e = r.u64(), let id = r.u64(), let index = r.u64() else { return .failure(.truncated) }
            body = .rejoinTarget(epoch: e, id: id, index: index)
        case .logProbe:
            guard let id = r.u64() else { return .failure(.truncated) }
            body = .logProbe(id: id)
        case .logReport:
            guard let id = r.u64(), let i = r.u64(), let v = r.u64(), let e = r.u64() else { return .failure(.truncated) }
            body = .logReport(id: id, lastIndex: i, votedEpoch: v, promisedEpoch: e)
        case .heartbeat, .heartbeatAck:
            guard let e = r.u64(), let at = r.i64() else { return .failure(.truncated) }
            body = .election(kind == .heartbeat ? .heartbeat(epoch: e, sentAt: at) : .heartbeatAck(epoch: e, sentAt: at))
        case .timeRequest:
            guard let seq = r.u64() else { return .failure(.truncated) }
            body = .timeRequest(seq: seq)
        case .timeReply:
            guard let seq = r.u64(), let ms = r.i64() else { return .failure(.truncated) }
            body = .timeReply(seq: seq, serverMs: ms)
        case .mutexRequest:
            guard let ts = r.u64() else { return .failure(.truncated) }
            body = .mutex(.request(ts: ts))
        case .mutexReply:
            guard let ts = r.u64() else { return .failure(.truncated) }
            body = .mutex(.reply(ts: ts))
        case .replicate:
            guard let round = r.u64(), let pi = r.u64(), let pe = r.u64(), let c = r.u64(),
                  let entries = decodeEntries(&r) else { return .failure(.truncated) }
            body = .replicate(Replicate(round: round, prevIndex: pi, prevEpoch: pe, commit: c, entries: entries))
        case .replicateAck:
            guard let round = r.u64(), let m = r.u8(), m <= 1, let i = r.u64() else { return .failure(.truncated) }
            body = .replicateAck(round: round, matched: m == 1, index: i)
        case .commit:
            guard let round = r.u64(), let t = r.u64() else { return .failure(.truncated) }
            body = .commit(round: round, through: t)
        case .abort:
            guard let round = r.u64(), let keep = r.u64() else { return .failure(.truncated) }
            body = .abort(round: round, keep: keep)
        case .snapshot:
            guard let b = r.blob(), let snap = QueueSnapshot.decode(b) else { return .failure(.truncated) }
            body = .snapshot(snap)
        case .recoverRequest:
            guard let id = r.u64(), let after = r.u64() else { return .failure(.truncated) }
            body = .recoverRequest(id: id, after: after)
        case .recoverReply:
            guard let e = r.u64(), let id = r.u64(), let reply = decodeRecovery(&r) else { return .failure(.truncated) }
            body = .recoverReply(epoch: e, id: id, snapshot: reply.snapshot, entries: reply.entries)
        case .chunk:
            guard let k = r.u8().flatMap(Chunk.Kind.init(rawValue:)), let e = r.u64(), let transfer = r.u64(),
                  let index = r.u64(), let total = r.u64(), let offset = r.u64(), let bytes = r.blob() else {
                return .failure(.truncated)
            }
            body = .chunk(Chunk(kind: k, epoch: e, transfer: transfer, index: index, total: total, offset: offset,
                                bytes: bytes))
        case .chunkAck:
            guard let k = r.u8().flatMap(Chunk.Kind.init(rawValue:)), let e = r.u64(), let transfer = r.u64(),
                  let received = r.u64() else { return .failure(.truncated) }
            body = .chunkAck(kind: k, epoch: e, transfer: transfer, received: received)
        case .forward:
            guard let id = r.u64(), let owner = r.string(maxLength: 4096),
                  let cmd = decodeCommand(&r) else { return .failure(.truncated) }
            body = .forward(id: id, owner: owner, command: cmd)
        case .forwardReply:
            guard let id = r.u64(), let reply = r.blob() else { return .failure(.truncated) }
            body = .forwardReply(id: id, reply: reply)
        case .deliverParked:
            guard let n = r.u32(), Int(n) <= r.remaining else { return .failure(.truncated) }
            var entries: [MailboxEntry] = []
            for _ in 0..<n {
                guard let seq = r.u64(), let at = r.i64(), let p = r.blob() else { return .failure(.truncated) }
                var e = MailboxEntry(seq: seq, payload: p, enqueuedAtMs: at)
                guard e.decodeOptions(&r) else { return .failure(.truncated) }
                entries.append(e)
            }
            body = .deliverParked(entries)
        case .parkedDelivered:
            guard let t = r.u64() else { return .failure(.truncated) }
            body = .parkedDelivered(through: t)
        case .links:
            var sets: [Set<Int>] = []
            for _ in 0..<2 {
                guard let n = r.u32(), n <= 4096 else { return .failure(.truncated) }
                var ids: Set<Int> = []
                for _ in 0..<n {
                    guard let id = r.u32() else { return .failure(.truncated) }
                    ids.insert(Int(id))
                }
                sets.append(ids)
            }
            body = .links(direct: sets[0], heard: sets[1])
        case .relay:
            guard let id = r.u64(), let origin = r.u32(), let dest = r.u32(), let ttl = r.u8(),
                  let framed = r.blob(), framed.count >= 4 else { return .failure(.truncated) }
            let inner = decode(frame: Array(framed[4...]))
            // One level only: a relay inside a relay is garbage.
            guard case .success(let env) = inner else { return inner }
            if case .relay = env.body { return .failure(.badType(Kind.relay.rawValue)) }
            body = .relay(id: id, origin: Int(origin), dest: Int(dest), ttl: Int(ttl), inner: Relayed(env))
        }
        guard r.isAtEnd else { return .failure(.trailingBytes) }
        return .success(PeerEnvelope(from: Int(from), to: Int(to), lamport: lamport, epoch: epoch, body: body))
    }
}

extension PeerEnvelope {
    /// A recovery reply's snapshot (empty when none) and entries: the body of
    /// `recoverReply`, and the blob a chunked one carries.
    static func encodeRecovery(snapshot: QueueSnapshot?, entries: [LogEntry], into w: inout ByteWriter) {
        w.blob(snapshot?.encoded() ?? [])
        encode(entries, into: &w)
    }

    static func decodeRecovery(_ r: inout ByteReader) -> (snapshot: QueueSnapshot?, entries: [LogEntry])? {
        guard let b = r.blob(), let entries = decodeEntries(&r) else { return nil }
        guard !b.isEmpty else { return (nil, entries) }
        guard let s = QueueSnapshot.decode(b) else { return nil }
        return (s, entries)
    }

    /// A whole recovery reply as one blob (for a chunked transfer).
    public static func recoveryBlob(snapshot: QueueSnapshot?, entries: [LogEntry]) -> [UInt8] {
        var w = ByteWriter(capacity: 64 + entries.reduce(0) { $0 + 64 + $1.payloadSize })
        encodeRecovery(snapshot: snapshot, entries: entries, into: &w)
        return w.bytes
    }

    public static func decodeRecoveryBlob(_ bytes: [UInt8]) -> (snapshot: QueueSnapshot?, entries: [LogEntry])? {
        var r = ByteReader(bytes)
        guard let reply = decodeRecovery(&r), r.isAtEnd else { return nil }
        return reply
    }

    private static func encode(_ entries: [LogEntry], into w: inout ByteWriter) {
        w.u32(UInt32(entries.count))
        for e in entries { e.encode(into: &w) }
    }

    private static func decodeEntries(_ r: inout ByteReader) -> [LogEntry]? {
        guard let n = r.u32(), Int(n) <= r.remaining else { return nil }
        var out: [LogEntry] = []
        out.reserveCapacity(Int(n))
        for _ in 0..<n {
            guard let e = LogEntry.decode(&r) else { return nil }
            out.append(e)
        }
        return out
    }

    /// Only the commands a follower relays (the rest are answered locally).
    private static func encode(_ c: ClientCommand, into w: inout ByteWriter) {
        switch c {
        case .enqueue(let p): w.u8(1); w.blob(p)
        case .dequeue(let ms): w.u8(2); w.i64(Int64(ms ?? -1))
        case .ack(let id): w.u8(3); w.u64(id)
        case .nack(let id, let delay):
            if let delay { w.u8(13); w.u64(id); w.i64(Int64(delay)) } else { w.u8(4); w.u64(id) }
        case .put(let q, let o, let p):
            w.u8(5); w.string(q); w.u32(o.priority); w.i64(Int64(o.delayMs)); w.string(o.key ?? ""); w.blob(p)
        case .take(let qs, let ms):
            w.u8(6); w.u32(UInt32(qs.count)); for q in qs { w.string(q) }; w.i64(Int64(ms ?? -1))
        case .touch(let id, let ms): w.u8(7); w.u64(id); w.i64(Int64(ms ?? -1))
        case .bury(let id): w.u8(8); w.u64(id)
        case .kick(let q, let n): w.u8(9); w.string(q); w.i64(Int64(n ?? -1))
        case .pause(let q, let ms): w.u8(10); w.string(q); w.i64(Int64(ms))
        case .stats(let q): w.u8(11); w.string(q ?? "")
        case .peek(let q): w.u8(12); w.string(q)
        default: preconditionFailure("\(c) is answered by the node that received it")
        }
    }

    private static func decodeCommand(_ r: inout ByteReader) -> ClientCommand? {
        switch r.u8() {
        case 1: return r.blob().map { .enqueue(payload: $0) }
        case 2:
            guard let ms = r.i64(), ms >= -1, ms <= Int64(Int32.max) else { return nil }
            return .dequeue(waitMs: ms < 0 ? nil : Int(ms))
        case 3: return r.u64().map { .ack(taskId: $0) }
        case 4: return r.u64().map { .nack(taskId: $0) }
        case 13:
            guard let id = r.u64(), let d = r.i64(), d >= 0, d <= Int64(LineParser.maxDelayMs) else { return nil }
            return .nack(taskId: id, delayMs: Int(d))
        case 5:
            guard let q = queueName(&r), let pri = r.u32(), let d = r.i64(), d >= 0, d <= Int64(LineParser.maxDelayMs),
                  let k = r.string(maxLength: LineParser.maxKeyBytes), let p = r.blob() else { return nil }
            return .put(queue: q, options: PutOptions(priority: pri, delayMs: Int(d), key: k.isEmpty ? nil : k), payload: p)
        case 6:
            guard let n = r.u32(), n >= 1, n <= 64 else { return nil }
            var qs: [String] = []
            for _ in 0..<n {
                guard let q = queueName(&r) else { return nil }
                qs.append(q)
            }
            guard let ms = optionalMs(&r, max: Int64(LineParser.maxWaitMs)) else { return nil }
            return .take(queues: qs, waitMs: ms.value)
        case 7:
            guard let id = r.u64(), let ms = optionalMs(&r, max: Int64(LineParser.maxDelayMs)) else { return nil }
            return .touch(taskId: id, ms: ms.value)
        case 8: return r.u64().map { .bury(taskId: $0) }
        case 9:
            guard let q = queueName(&r), let n = optionalMs(&r, max: Int64(UInt32.max)) else { return nil }
            return .kick(queue: q, count: n.value)
        case 10:
            guard let q = queueName(&r), let ms = r.i64(), ms >= 0, ms <= Int64(LineParser.maxDelayMs) else { return nil }
            return .pause(queue: q, ms: Int(ms))
        case 11:
            guard let q = r.string(maxLength: 64) else { return nil }
            if q.isEmpty { return .stats(queue: nil) }
            guard LineParser.isValidQueueName(q) else { return nil }
            return .stats(queue: q)
        case 12: return queueName(&r).map { .peek(queue: $0) }
        default: return nil
        }
    }

    private static func queueName(_ r: inout ByteReader) -> String? {
        guard let q = r.string(maxLength: LineParser.maxQueueNameBytes), LineParser.isValidQueueName(q) else { return nil }
        return q
    }

    /// -1 for none; a box so that "none" is not mistaken for "malformed".
    private struct OptionalInt { var value: Int? }

    private static func optionalMs(_ r: inout ByteReader, max: Int64) -> OptionalInt? {
        guard let v = r.i64(), v >= -1, v <= max else { return nil }
        return OptionalInt(value: v < 0 ? nil : Int(v))
    }

    /// What a dialer's proof signs (with HMAC-SHA256 under cluster_secret,
    /// in MeshQNode): this challenge and this direction, so the proof cannot
    /// be replayed on another connection or link.
    public static func proofMessage(nonce: [UInt8], from: Int, to: Int) -> [UInt8] {
        var w = ByteWriter()
        w.string("meshq-peer-v1")
        w.blob(nonce)
        w.u32(UInt32(truncatingIfNeeded: from))
        w.u32(UInt32(truncatingIfNeeded: to))
        return w.bytes
    }
}

/// Cuts a peer byte stream into frames; a bad length poisons the stream.
public struct PeerFrameReader {
    public private(set) var buffer: [UInt8] = []
    private var start = 0

    public init() {}

    public mutating func append(_ bytes: [UInt8]) {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 65_536 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    public mutating func withBuffer<R>(_ body: (inout [UInt8]) -> R) -> R {
        append([])
        return body(&buffer)
    }

    /// The next complete frame body, nil when more bytes are needed.
    public mutating func next() -> Result<[UInt8], PeerEnvelope.DecodeError>? {
        guard buffer.count - start >= 4 else { return nil }
        let n = Int(UInt32(buffer[start]) | UInt32(buffer[start + 1]) << 8 | UInt32(buffer[start + 2]) << 16
            | UInt32(buffer[start + 3]) << 24)
        guard n >= 2, n <= PeerEnvelope.maxFrameBytes else { return .failure(.badLength(n)) }
        guard buffer.count - start - 4 >= n else { return nil }
        let frame = Array(buffer[(start + 4)..<(start + 4 + n)])
        start += 4 + n
        return .success(frame)
    }
}
