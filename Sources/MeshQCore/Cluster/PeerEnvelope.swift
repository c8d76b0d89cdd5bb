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
    }

    public static let version: UInt8 = 1
    public static let maxFrameBytes = 64 << 20

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
    }

    /// The whole frame, length prefix included.
    public func framed() -> [UInt8] {
        var w = ByteWriter(capacity: 64)
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
            case .coordinator: w.u8(Kind.coordinator.rawValue)
            case .heartbeat: w.u8(Kind.heartbeat.rawValue)
            case .heartbeatAck: w.u8(Kind.heartbeatAck.rawValue)
            }
        case .timeRequest: w.u8(Kind.timeRequest.rawValue)
        case .timeReply: w.u8(Kind.timeReply.rawValue)
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
            case .election(let e, let p), .vote(let e, let p):
                w.u64(e)
                w.u64(p.epoch)
                w.u64(p.index)
            case .answer(let e), .coordinator(let e), .heartbeat(let e), .heartbeatAck(let e):
                w.u64(e)
            }
        case .timeRequest(let seq):
            w.u64(seq)
        case .timeReply(let seq, let ms):
            w.u64(seq)
            w.i64(ms)
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
        case .election, .vote:
            guard let e = r.u64(), let pe = r.u64(), let pi = r.u64() else { return .failure(.truncated) }
            let p = LogPosition(epoch: pe, index: pi)
            body = .election(kind == .election ? .election(epoch: e, position: p) : .vote(epoch: e, position: p))
        case .answer, .coordinator, .heartbeat, .heartbeatAck:
            guard let e = r.u64() else { return .failure(.truncated) }
            switch kind {
            case .answer: body = .election(.answer(epoch: e))
            case .coordinator: body = .election(.coordinator(epoch: e))
            case .heartbeat: body = .election(.heartbeat(epoch: e))
            default: body = .election(.heartbeatAck(epoch: e))
            }
        case .timeRequest:
            guard let seq = r.u64() else { return .failure(.truncated) }
            body = .timeRequest(seq: seq)
        case .timeReply:
            guard let seq = r.u64(), let ms = r.i64() else { return .failure(.truncated) }
            body = .timeReply(seq: seq, serverMs: ms)
        }
        guard r.isAtEnd else { return .failure(.trailingBytes) }
        return .success(PeerEnvelope(from: Int(from), to: Int(to), lamport: lamport, epoch: epoch, body: body))
    }
}

extension PeerEnvelope {
    /// The proof a dialer sends: binds the secret to this challenge and this
    /// direction, so it cannot be replayed on another connection or link.
    public static func proof(secret: String, nonce: [UInt8], from: Int, to: Int) -> [UInt8] {
        var w = ByteWriter()
        w.string("meshq-peer-v1")
        w.blob(nonce)
        w.u32(UInt32(truncatingIfNeeded: from))
        w.u32(UInt32(truncatingIfNeeded: to))
        return SHA256.hmac(key: Array(secret.utf8), message: w.bytes)
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
