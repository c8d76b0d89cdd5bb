import Testing
@testable import MeshQCore

/// Catch-up and recovery of any size through NodeCore: with a chunk bound of
/// a few dozen bytes, snapshots and recovery replies of a handful of tasks
/// already take many frames, so every path of the chunked flow runs here.
@Suite struct ChunkedCatchUpTests {
    static let chunkBytes = 48

    static func settled() -> ReplicationCluster? {
        guard let c = NodeCoreReplicationTests.settled() else { return nil }
        for id in ReplicationCluster.ids {
            c.node(id).transfers.chunkBytes = chunkBytes
            c.node(id).transfers.window = 2
        }
        return c
    }

    /// ENQUEUEs `n` tasks at `id` and runs until each is answered.
    static func fill(_ c: ReplicationCluster, at id: Int, _ n: Int, tag: String, into expected: inout [UInt64: String]) throws {
        var refs: [(ClientRef, String)] = []
        for i in 0..<n {
            let p = "\(tag)-\(i)-" + String(repeating: "x", count: 30)
            refs.append((c.send(.enqueue(payload: Array(p.utf8)), to: id), p))
            if i % 5 == 4 { c.step() }
        }
        c.run { refs.allSatisfy { c.replies[$0.0] != nil } }
        for (ref, p) in refs {
            expected[try #require(c.taskId(c.replies[ref]), "ENQUEUE \(p): \(String(describing: c.replies[ref]))")] = p
        }
    }

    static func frames(_ c: ReplicationCluster, from mark: Int, to id: Int) -> [PeerEnvelope] {
        c.delivered[mark...].filter { $0.to == id }
    }

    @Test func aFollowerFarBehindGetsItsSnapshotInBoundedChunks() throws {
        let c = try #require(Self.settled())
        c.node(3).logWindow = 5
        var expected: [UInt64: String] = [:]
        c.isolate(1)
        try Self.fill(c, at: 3, 30, tag: "a", into: &expected)
        #expect(c.node(3).log.baseIndex > c.node(1).lastIndex)

        let mark = c.delivered.count
        c.reconnect(1)
        #expect(c.run { c.node(1).commitIndex == c.node(3).commitIndex && c.node(1).leaderId == 3 })
        let sent = Self.frames(c, from: mark, to: 1)
        let chunks = sent.compactMap { env -> Chunk? in if case .chunk(let ch) = env.body { return ch } else { return nil } }
        #expect(chunks.count > 10, "a snapshot of 30 tasks takes many 48-byte chunks, got \(chunks.count)")
        #expect(chunks.allSatisfy { $0.bytes.count <= Self.chunkBytes && $0.kind == .snapshot })
        #expect(!sent.contains { if case .snapshot = $0.body { return true } else { return false } },
                "no whole snapshot in one frame")
        // Flow control: never more than the window ahead of what node 1 acknowledged.
        var acked: UInt64 = 0
        for env in c.delivered[mark...] {
            switch env.body {
            case .chunk(let ch) where env.to == 1:
                #expect(ch.offset < acked + 2 * UInt64(Self.chunkBytes), "chunk at \(ch.offset), acked \(acked)")
            case .chunkAck(_, _, _, let r) where env.from == 1:
                acked = max(acked, r)
            default: break
            }
        }
        #expect(c.installedSnapshots[1]?.count == 1)
        #expect(c.contents(1) == expected)
        #expect(c.node(3).leader?.replication.transfers.isEmpty == true)
        // Caught up, it takes part in the next rounds as usual.
        let id = try #require(c.enqueue("after", at: 1))
        c.run { c.node(1).commitIndex == c.node(3).commitIndex }
        #expect(c.node(1).store.task(id)?.payload == Array("after".utf8))
    }

    @Test func theLeaderKeepsServingWhileAFollowerCatchesUp() throws {
        let c = try #require(Self.settled())
        c.node(3).logWindow = 5
        var expected: [UInt64: String] = [:]
        c.isolate(1)
        try Self.fill(c, at: 3, 20, tag: "old", into: &expected)
        c.reconnect(1)
        // New work goes on at once, alongside the transfer.
        try Self.fill(c, at: 3, 10, tag: "new", into: &expected)
        #expect(c.run { c.node(1).commitIndex == c.node(3).commitIndex })
        #expect(c.contents(1) == expected && c.contents(3) == expected && c.contents(2) == expected)
    }

    /// A new leader whose log is behind its best voter's takes the voter's
    /// reply (a snapshot and entries) in chunks, and serves what it holds.
    @Test func aRecoveringLeaderTakesALargeReplyInChunks() throws {
        let c = try #require(Self.settled())
        var expected: [UInt64: String] = [:]
        try Self.fill(c, at: 3, 5, tag: "both", into: &expected)
        c.run { c.node(2).commitIndex == c.node(3).commitIndex }
        // Node 2 misses a stretch that nodes 1 and 3 commit.
        c.isolate(2)
        c.node(1).logWindow = 5
        try Self.fill(c, at: 3, 25, tag: "miss", into: &expected)
        c.run { c.node(1).commitIndex == c.node(3).commitIndex }
        // The leader goes; node 2 (the highest id left) leads and must recover from node 1.
        let mark = c.delivered.count
        c.isolate(3)
        c.reconnect(2)
        #expect(c.run(withinMs: 10_000) { c.node(2).role == .leader && c.node(2).serving })
        let chunks = c.delivered[mark...].compactMap { env -> Chunk? in
            if case .chunk(let ch) = env.body, env.to == 2 { return ch } else { return nil }
        }
        #expect(chunks.count > 10 && chunks.allSatisfy { $0.kind == .recovery && $0.bytes.count <= Self.chunkBytes })
        #expect(!c.delivered[mark...].contains { if case .recoverReply = $0.body { return true } else { return false } })
        #expect(c.events.contains { $0.name == "leader_recovered" && $0.field("node") == "2" })
        #expect(c.contents(2) == expected)
        let id = try #require(c.enqueue("next", at: 2))
        c.run { c.node(1).commitIndex == c.node(2).commitIndex }
        #expect(c.node(1).store.task(id) != nil)
    }

    /// Entries stream: one message at a time until the follower is known to
    /// match, then up to four batches in flight; a mismatch or a loss goes
    /// back to one at a time, from the oldest unacknowledged batch.
    @Test func batchesStreamOnceTheFollowerMatchesAndFallBackAfterALoss() {
        var l = ReplicatedLog()
        let big = [UInt8](repeating: 7, count: 3 << 20)
        for i in UInt64(1)...12 {
            l.append(LogEntry(index: i, epoch: 1, lamport: i,
                              op: .enqueue(QueuedTask(id: i, lamport: i, enqueuedAtMs: 0, payload: big))))
        }
        var r = LeaderReplication()
        r.maxInflight = 4
        r.start(followers: [2], next: 1)
        func batch(_ now: Int64) -> [UInt64]? {
            guard case .entries(_, _, let es)? = r.nextMessage(to: 2, log: l, commitIndex: 0, now: now) else { return nil }
            return es.map(\.index)
        }
        // Probing: one batch (one 3 MiB entry: the byte bound), then nothing.
        #expect(batch(0) == [1])
        #expect(batch(0) == nil)
        _ = r.acknowledged(by: 2, matched: true, index: 1, lastIndex: 12)
        // Streaming: four in flight.
        #expect([batch(1), batch(1), batch(1), batch(1), batch(1)] == [[2], [3], [4], [5], nil])
        _ = r.acknowledged(by: 2, matched: true, index: 2, lastIndex: 12)
        #expect(batch(2) == [6])
        #expect(batch(2) == nil)
        // Lost: back to the oldest unacknowledged batch, one at a time.
        r.lost(2)
        #expect(r.progress[2]?.next == 3 && r.progress[2]?.inflight == false)
        #expect(batch(3) == [3])
        #expect(batch(3) == nil)
        // A mismatch stops streaming too.
        _ = r.acknowledged(by: 2, matched: true, index: 3, lastIndex: 12)
        #expect(batch(4) == [4] && batch(4) == [5])
        _ = r.acknowledged(by: 2, matched: false, index: 3, lastIndex: 12)
        #expect(r.progress[2]?.next == 4 && r.progress[2]?.match == 3)
        #expect(batch(5) == [4])
        #expect(batch(5) == nil)
    }

    /// A follower receiving one leader's snapshot in chunks sees that leader
    /// replaced mid-transfer: the partial snapshot is dropped, the new
    /// leader's whole snapshot is installed, and the old one's late chunks
    /// change nothing.
    @Test func aLeaderChangeMidTransferDiscardsThePartialSnapshot() throws {
        let f = NodeCore(nodeId: 1, memberIds: [1, 2, 3], settings: ReplicationCluster.settings, snapshot: nil, records: [])
        f.start(now: 0)
        _ = f.takeEffects()
        func snapshot(_ index: UInt64, _ tag: String) -> QueueSnapshot {
            QueueSnapshot(lastIndex: index, lastEpoch: 1, lamport: index, highestTaskId: 10,
                          tasks: (1...10).map { QueuedTask(id: $0, lamport: $0, enqueuedAtMs: 0, payload: Array("\(tag)\($0)".utf8)) })
        }
        func feed(_ ch: Chunk, from: Int, epoch: UInt64) -> [NodeCore.Effect] {
            f.peerMessage(PeerEnvelope(from: from, to: 1, lamport: 1, epoch: epoch, body: .chunk(ch)), now: 10, wallMs: 10)
            return f.takeEffects()
        }
        func acks(_ effects: [NodeCore.Effect]) -> [UInt64] {
            effects.compactMap { if case .sendPeer(let e) = $0, case .chunkAck(_, _, _, let r) = e.body { return r } else { return nil } }
        }
        func installing(_ effects: [NodeCore.Effect]) -> (QueueSnapshot, [UInt8]?)? {
            effects.lazy.compactMap { if case .installSnapshot(let s, let b) = $0 { return (s, b) } else { return nil } }.first
        }
        func installed(_ effects: [NodeCore.Effect]) -> QueueSnapshot? { installing(effects)?.0 }
        let a = snapshot(40, "old")
        var sa = ChunkSender(kind: .snapshot, epoch: 5, transfer: 1, index: 40, blob: a.encoded(), chunkBytes: 32, window: 100)
        let ca = sa.next()
        #expect(ca.count > 4)
        for ch in ca.prefix(3) { #expect(installed(feed(ch, from: 3, epoch: 5)) == nil) }
        #expect(f.transfers.snapshotIn.partialBytes == 96)

        // Node 2 now leads in epoch 6 and sends its own snapshot.
        let b = snapshot(50, "new")
        var sb = ChunkSender(kind: .snapshot, epoch: 6, transfer: 1, index: 50, blob: b.encoded(), chunkBytes: 32, window: 100)
        let cb = sb.next()
        var got: QueueSnapshot?
        var gotBytes: [UInt8]?
        for (i, ch) in cb.enumerated() {
            let eff = feed(ch, from: 2, epoch: 6)
            #expect(acks(eff) == [UInt64(min((i + 1) * 32, b.encoded().count))])
            if let (s, bytes) = installing(eff) { (got, gotBytes) = (s, bytes) }
            // The old leader's late chunks in between: refused (older epoch), nothing answered.
            if i == 1 { #expect(feed(ca[3], from: 3, epoch: 5).isEmpty) }
        }
        #expect(got == b)
        // Written as received, not encoded again.
        #expect(gotBytes == b.encoded())
        f.persisted(now: 20)
        _ = f.takeEffects()
        #expect(f.commitIndex == 50)
        #expect(f.store.task(3)?.payload == Array("new3".utf8))
        // The rest of the old transfer, to its end: nothing is installed.
        for ch in ca.dropFirst(3) { #expect(installed(feed(ch, from: 3, epoch: 5)) == nil) }
        #expect(f.commitIndex == 50)
        // A chunk whose snapshot does not match what the chunks announced is refused.
        let c = snapshot(70, "bad")
        var sc = ChunkSender(kind: .snapshot, epoch: 6, transfer: 2, index: 71, blob: c.encoded(), chunkBytes: 32, window: 100)
        var effects: [NodeCore.Effect] = []
        for ch in sc.next() { effects += feed(ch, from: 2, epoch: 6) }
        #expect(installed(effects) == nil)
        #expect(effects.contains { if case .log(let e) = $0 { return e.name == "snapshot_transfer_refused" } else { return false } })
        #expect(f.commitIndex == 50)
    }
}
