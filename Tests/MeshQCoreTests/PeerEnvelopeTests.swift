import Testing
@testable import MeshQCore

@Suite struct PeerEnvelopeTests {
    static let samples: [PeerEnvelope.Body] = [
        .hello(nodeId: 3, proof: []), .hello(nodeId: 3, proof: [UInt8](repeating: 7, count: 32)),
        .challenge(nonce: [1, 2, 3]),
        .election(.election(epoch: 9, position: LogPosition(epoch: 8, index: 1_000))),
        .election(.vote(epoch: 9, position: .zero, leaseWaitMs: 0, leaseHolder: 0)),
        .election(.vote(epoch: 9, position: .zero, leaseWaitMs: 499, leaseHolder: 2)),
        .election(.answer(epoch: 9)), .election(.coordinator(epoch: 9)),
        .election(.heartbeat(epoch: UInt64.max, sentAt: 123)), .election(.heartbeatAck(epoch: 0, sentAt: -5)),
        .links(direct: [1, 3], heard: [1, 2, 3]), .links(direct: [], heard: []),
        .recoverRequest(id: 7, after: 12),
        .recoverReply(epoch: 4, id: 7, snapshot: nil, entries: []),
        .timeRequest(seq: 42), .timeReply(seq: 42, serverMs: 1_790_000_000_123),
        .rejoinProbe(id: 5), .rejoinTarget(epoch: 3, id: 5, index: 77), .logProbe(id: 7),
        .logReport(id: 7, lastIndex: 0, votedEpoch: 0, promisedEpoch: 0),
        .logReport(id: 1 << 62, lastIndex: 1 << 40, votedEpoch: 12, promisedEpoch: 9),
    ]

    @Test func everyMessageRoundTripsThroughAFrame() {
        var reader = PeerFrameReader()
        var sent: [PeerEnvelope] = []
        for (i, b) in Self.samples.enumerated() {
            let e = PeerEnvelope(from: 1, to: 2, lamport: UInt64(i * 7), epoch: 4, body: b)
            sent.append(e)
            reader.append(e.framed())
        }
        var got: [PeerEnvelope] = []
        while case .success(let f)? = reader.next() {
            guard case .success(let e) = PeerEnvelope.decode(frame: f) else {
                Issue.record("decode failed")
                return
            }
            got.append(e)
        }
        #expect(got == sent)
    }

    @Test func framesSplitAtEveryByteReassemble() {
        let e = PeerEnvelope(from: 2, to: 3, lamport: 5, epoch: 1, body: .election(.heartbeat(epoch: 1, sentAt: 10)))
        let bytes = e.framed()
        for cut in 1..<bytes.count {
            var reader = PeerFrameReader()
            reader.append(Array(bytes[..<cut]))
            #expect(reader.next() == nil)
            reader.append(Array(bytes[cut...]))
            guard case .success(let f)? = reader.next(), case .success(let d) = PeerEnvelope.decode(frame: f) else {
                Issue.record("cut \(cut)")
                return
            }
            #expect(d == e)
        }
    }

    @Test func proofMessagesBindNonceAndDirection() {
        let m = PeerEnvelope.proofMessage(nonce: [1, 2], from: 1, to: 2)
        #expect(m == PeerEnvelope.proofMessage(nonce: [1, 2], from: 1, to: 2))
        #expect(m != PeerEnvelope.proofMessage(nonce: [1, 3], from: 1, to: 2))
        #expect(m != PeerEnvelope.proofMessage(nonce: [1, 2], from: 2, to: 1))
    }

    @Test func garbageIsAnErrorNeverACrash() {
        var reader = PeerFrameReader()
        reader.append(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        guard case .failure(.badLength)? = reader.next() else {
            Issue.record("HTTP garbage should be a bad length")
            return
        }
        #expect(PeerEnvelope.decode(frame: []) == .failure(.truncated))
        #expect(PeerEnvelope.decode(frame: [1, 1]) == .failure(.badVersion(1)))
        #expect(PeerEnvelope.decode(frame: [PeerEnvelope.version, 99]) == .failure(.badType(99)))
        #expect(PeerEnvelope.decode(frame: [2, 1]) == .failure(.badVersion(2)))
        var body = Array(PeerEnvelope(from: 1, to: 2, lamport: 0, epoch: 0, body: .hello(nodeId: 1, proof: [])).framed().dropFirst(4))
        #expect(PeerEnvelope.decode(frame: Array(body.dropLast())) == .failure(.truncated))
        body.append(0)
        #expect(PeerEnvelope.decode(frame: body) == .failure(.trailingBytes))
        // Random bytes: any result but a trap.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let junk = (0..<Int.random(in: 0..<64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = PeerEnvelope.decode(frame: junk)
        }
    }
}
