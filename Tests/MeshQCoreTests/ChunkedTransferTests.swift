import Testing
import MeshQTestSupport
@testable import MeshQCore

/// The chunked transfer's two ends on their own: assembly, the window, and
/// what duplicate, out-of-order, stale and superseded chunks do.
@Suite struct ChunkedTransferTests {
    static func blob(_ n: Int, seed: UInt8 = 1) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 * 31) &+ seed } }

    static func sender(_ blob: [UInt8], transfer: UInt64 = 1, epoch: UInt64 = 3, chunk: Int = 10, window: Int = 3) -> ChunkSender {
        ChunkSender(kind: .snapshot, epoch: epoch, transfer: transfer, index: 77, blob: blob, chunkBytes: chunk, window: window)
    }

    struct Ignored: Error {}

    /// A chunk the assembler must answer (not ignore as malformed).
    static func take(_ a: inout ChunkAssembler, _ c: Chunk, _ from: Int) throws -> ChunkAssembler.Outcome {
        guard let o = a.accept(c, from: from) else { throw Ignored() }
        return o
    }

    @Test func inOrderChunksAssembleTheBlobOnceAndTheWindowBoundsWhatIsInFlight() throws {
        let data = Self.blob(95)
        var s = Self.sender(data)
        var a = ChunkAssembler()
        var first = s.next()
        #expect(first.count == 3, "the window is three chunks")
        #expect(s.next().isEmpty, "nothing more until an acknowledgement")
        #expect(first.allSatisfy { $0.bytes.count <= 10 && $0.total == 95 })
        var result: [UInt8]?
        var rounds = 0
        while !first.isEmpty {
            rounds += 1
            var more: [Chunk] = []
            for c in first {
                let out = try Self.take(&a, c, 3)
                #expect(result == nil, "the blob is handed out once")
                if let b = out.blob { result = b }
                s.acknowledged(received: out.received)
                more += s.next()
            }
            first = more
        }
        #expect(result == data)
        #expect(s.done)
        #expect(rounds >= 3)
        #expect(a.partialBytes == 0, "a finished transfer holds no memory")
    }

    @Test func duplicatesAndOutOfOrderChunksChangeNothingAndTheSenderGoesBack() throws {
        let data = Self.blob(50)
        var s = Self.sender(data, window: 5)
        let chunks = s.next()
        var a = ChunkAssembler()
        #expect(try Self.take(&a, chunks[0], 3).received == 10)
        // The second chunk is lost; the third arrives: held bytes stay 10.
        #expect(try Self.take(&a, chunks[2], 3).received == 10)
        // A duplicate of the first: still 10.
        #expect(try Self.take(&a, chunks[0], 3).received == 10)
        #expect(a.bytes == Array(data[0..<10]))
        // The sender hears 10 and, after a silence, resends from there.
        s.acknowledged(received: 10)
        s.rewind()
        let again = s.next()
        #expect(again.first?.offset == 10)
        var done: [UInt8]?
        for c in again { done = try Self.take(&a, c, 3).blob ?? done }
        #expect(done == data)
        // A late duplicate of a finished transfer is recognised as such.
        let late = try Self.take(&a, chunks[1], 3)
        #expect(late.alreadyComplete && late.received == 50 && late.blob == nil)
    }

    @Test func aStaleOrForeignChunkNeverMixesIntoAPartialTransfer() throws {
        var a = ChunkAssembler()
        var s1 = Self.sender(Self.blob(40, seed: 1), transfer: 1)
        let c1 = s1.next()
        _ = a.accept(c1[0], from: 3)
        // The middle of a transfer we never started: answered "start over".
        var s9 = Self.sender(Self.blob(40, seed: 9), transfer: 9)
        let c9 = s9.next()
        #expect(try Self.take(&a, c9[1], 3).received == 0)
        // The same transfer id from another node is another transfer.
        #expect(try Self.take(&a, c1[1], 2).received == 0)
        // The partial one is untouched and goes on.
        #expect(try Self.take(&a, c1[1], 3).received == 20)
        // Malformed chunks are ignored.
        var bad = c1[2]
        bad.offset = 35
        #expect(a.accept(bad, from: 3) == nil)
        bad = c1[2]
        bad.bytes = []
        #expect(a.accept(bad, from: 3) == nil)
        #expect(a.bytes == Array(Self.blob(40, seed: 1)[0..<20]))
    }

    @Test func aNewTransferOrANewerEpochDiscardsAPartialOne() throws {
        var a = ChunkAssembler()
        var old = Self.sender(Self.blob(40, seed: 1), transfer: 1, epoch: 3)
        let oc = old.next()
        _ = a.accept(oc[0], from: 3)
        _ = a.accept(oc[1], from: 3)
        // A new leader (epoch 4) starts mid-way for us: the old partial goes.
        var newer = Self.sender(Self.blob(40, seed: 5), transfer: 1, epoch: 4)
        let nc = newer.next()
        #expect(try Self.take(&a, nc[1], 2).received == 0)
        #expect(a.partialBytes == 0)
        // The old leader's next chunk cannot resume what was dropped.
        #expect(try Self.take(&a, oc[2], 3).received == 0)
        // The new transfer from its start assembles, with none of the old bytes.
        var got: [UInt8]?
        for c in nc { got = try Self.take(&a, c, 2).blob ?? got }
        newer.acknowledged(received: 30)
        for c in newer.next() { got = try Self.take(&a, c, 2).blob ?? got }
        #expect(got == Self.blob(40, seed: 5))
        // Same sender, same epoch, a new transfer id from offset 0: replaces.
        var b = ChunkAssembler()
        _ = b.accept(oc[0], from: 3)
        var again = Self.sender(Self.blob(40, seed: 7), transfer: 2, epoch: 3)
        let ac = again.next()
        #expect(try Self.take(&b, ac[0], 3).received == 10)
        #expect(b.bytes == Array(Self.blob(40, seed: 7)[0..<10]))
    }

    @Test func aReceiverThatLostItsBytesMakesTheSenderStartOver() {
        var s = Self.sender(Self.blob(60), window: 2)
        _ = s.next()
        s.acknowledged(received: 20)
        #expect(s.next().map(\.offset) == [20, 30])
        // It restarted: it holds nothing of this transfer.
        s.acknowledged(received: 0)
        #expect(s.next().map(\.offset) == [0, 10])
        // A bogus acknowledgement past the end is ignored.
        s.acknowledged(received: 1_000)
        #expect(s.acked == 0)
        #expect(s.lastChunk().offset == 50 && s.lastChunk().bytes.count == 10)
    }

    @Test func chunksAndTheirAcknowledgementsRoundTripAndOversizedFramesAreRefused() throws {
        let bodies: [PeerEnvelope.Body] = [
            .chunk(Chunk(kind: .snapshot, epoch: 4, transfer: 9, index: 100, total: 3, offset: 0, bytes: [1, 2, 3])),
            .chunk(Chunk(kind: .recovery, epoch: 5, transfer: 1, index: 0, total: 1 << 33, offset: 1 << 32, bytes: [7])),
            .chunkAck(kind: .recovery, epoch: 5, transfer: 1, received: 1 << 32),
            .recoverReply(epoch: 4, id: 7, snapshot: QueueSnapshot(lastIndex: 3, lastEpoch: 1, lamport: 9, highestTaskId: 2,
                                                                  tasks: []), entries: []),
        ]
        var reader = PeerFrameReader()
        let sent = bodies.map { PeerEnvelope(from: 1, to: 2, lamport: 1, epoch: 4, body: $0) }
        for e in sent { reader.append(e.framed()) }
        var got: [PeerEnvelope] = []
        while case .success(let f)? = reader.next() {
            got.append(try PeerEnvelope.decode(frame: f).get())
        }
        #expect(got == sent)
        // An unknown chunk kind is garbage.
        var frame = sent[0].framed()
        frame[4 + 2 + 24] = 9
        #expect(PeerEnvelope.decode(frame: Array(frame[4...])) == .failure(.truncated))
        // The frame limit: a batch plus one largest entry, and no more.
        #expect(PeerEnvelope.maxFrameBytes >= PeerEnvelope.maxBatchBytes + PeerEnvelope.maxEntryBytes)
        #expect(PeerEnvelope.maxFrameBytes < PeerEnvelope.maxBatchBytes + PeerEnvelope.maxEntryBytes + (1 << 20))
        let n = PeerEnvelope.maxFrameBytes + 1
        var big = PeerFrameReader()
        big.append([UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), UInt8((n >> 16) & 0xFF), UInt8(n >> 24), 2])
        #expect(big.next() == .failure(.badLength(n)))
    }

    /// A snapshot streamed task by task is byte for byte its `encoded()`,
    /// whatever the chunk size, across go-backs, holding only the window.
    @Test func aStreamedSnapshotIsExactlyItsEncoding() throws {
        var rng = SplitMix64(seed: 7)
        for round in 0..<20 {
            let n = Int(rng.next() % 30)
            let tasks = (0..<n).map { i in
                QueuedTask(id: UInt64(i + 1), lamport: rng.next() % 1_000, enqueuedAtMs: Int64(rng.next() % 99),
                           payload: (0..<Int(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            }
            let parked = round % 2 == 0 ? [:] : [2: rng.next() % 50, 1: 9]
            let snap = QueueSnapshot(lastIndex: 100 + UInt64(round), lastEpoch: 3, lamport: 42, highestTaskId: UInt64(n),
                                     tasks: tasks, parkedApplied: parked)
            let want = snap.encoded()
            #expect(ChunkSource.encodedSize(snap) == want.count)
            let chunk = 1 + Int(rng.next() % 64)
            var s = ChunkSender(kind: .snapshot, epoch: 1, transfer: 1, index: snap.lastIndex, source: .snapshot(snap),
                                chunkBytes: chunk, window: 3)
            var a = ChunkAssembler()
            var got: [UInt8]?
            var steps = 0
            while got == nil && steps < 10_000 {
                steps += 1
                var chunks = s.next()
                // Now and then the window is lost and resent from the last ack.
                if rng.next() % 5 == 0 { s.rewind(); chunks = s.next() }
                for c in chunks {
                    let out = try Self.take(&a, c, 3)
                    s.acknowledged(received: out.received)
                    got = out.blob ?? got
                }
            }
            #expect(got == want, "round \(round): \(n) tasks, chunk \(chunk)")
            #expect(QueueSnapshot.decode(try #require(got)) == snap)
            #expect(s.lastChunk().bytes == Array(want[((want.count - 1) / chunk * chunk)...]))
        }
    }

    @Test func aRecoveryBlobRoundTrips() throws {
        let snap = QueueSnapshot(lastIndex: 5, lastEpoch: 2, lamport: 11, highestTaskId: 4,
                                 tasks: [QueuedTask(id: 4, lamport: 10, enqueuedAtMs: 1, payload: [1, 2])])
        let entries = [LogEntry(index: 6, epoch: 2, lamport: 12, op: .noop)]
        let blob = PeerEnvelope.recoveryBlob(snapshot: snap, entries: entries)
        let back = try #require(PeerEnvelope.decodeRecoveryBlob(blob))
        #expect(back.snapshot == snap && back.entries == entries)
        #expect(PeerEnvelope.decodeRecoveryBlob(Array(blob.dropLast())) == nil)
        #expect(PeerEnvelope.decodeRecoveryBlob(blob + [0]) == nil)
    }
}
