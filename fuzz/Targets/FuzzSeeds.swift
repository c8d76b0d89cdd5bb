// FuzzSeeds: the seed corpus, made by the real encoders so it tracks the
// formats: valid client lines, every kind of peer frame, configs, log records,
// snapshots and log files with batch markers. FuzzCorpusTests writes them to
// fuzz/corpus/<target>/ when MESHQ_WRITE_FUZZ_SEEDS=1 and replays them always.

import MeshQCore
import MeshQStorage

extension FuzzTargets {
    public static func seeds(_ target: Target) -> [(name: String, bytes: [UInt8])] {
        switch target {
        case .lines: return lineSeeds()
        case .peer: return peerSeeds()
        case .config: return configSeeds()
        case .storage: return storageSeeds()
        }
    }

    static func lineSeeds() -> [(name: String, bytes: [UInt8])] {
        // The first byte sets the line limit (8 + 4 * byte), the next the chunking.
        let sessions = [
            "ENQUEUE hello world\r\nDEQUEUE\nDEQUEUE 100\nACK 1\nNACK 2\nTOUCH 3 500\n",
            "AUTH secret\nPING\nHELP\nSTATUS\nQUIT\n",
            "PUT jobs key=abc hello\nGET jobs 100\nSTATS jobs\n   \n\t\nDEQUEUE -5\nACK abc\n",
            "ENQUEUE " + String(repeating: "x", count: 300) + "\nPING\n",
            "\u{0}\u{ff}garbage\r\r\n\n\nenqueue lower case\n",
        ]
        return sessions.enumerated().map { i, s in ("session\(i)", [UInt8(i * 40 + 20)] + Array(s.utf8)) }
    }

    static func peerSeeds() -> [(name: String, bytes: [UInt8])] {
        let task = QueuedTask(id: 7, lamport: 9, enqueuedAtMs: 1_700_000_000_000, payload: Array("payload".utf8))
        let entries = [
            LogEntry(index: 1, epoch: 1, lamport: 2, op: .noop),
            LogEntry(index: 2, epoch: 1, lamport: 3, op: .enqueue(task)),
            LogEntry(index: 3, epoch: 1, lamport: 4, op: .ack(taskId: 7)),
            LogEntry(index: 4, epoch: 1, lamport: 5, op: .enqueueParked(task, from: 2, seq: 1)),
        ]
        let snap = QueueSnapshot(lastIndex: 4, lastEpoch: 1, lamport: 5, highestTaskId: 7, tasks: [task],
                                 parkedApplied: [2: 1])
        let pos = LogPosition(epoch: 1, index: 4)
        let bodies: [PeerEnvelope.Body] = [
            .challenge(nonce: Array(repeating: 0xAB, count: 32)),
            .hello(nodeId: 2, proof: Array(repeating: 1, count: 32)),
            .election(.election(epoch: 3, position: pos)),
            .election(.vote(epoch: 3, position: pos, leaseWaitMs: 400, leaseHolder: 1)),
            .election(.heartbeat(epoch: 3, sentAt: 123)),
            .timeRequest(seq: 1),
            .timeReply(seq: 1, serverMs: 1_700_000_000_000),
            .replicate(.init(round: 1, prevIndex: 0, prevEpoch: 0, commit: 0, entries: entries)),
            .replicateAck(round: 1, matched: true, index: 4),
            .commit(round: 1, through: 4),
            .abort(round: 2, keep: 4),
            .snapshot(snap),
            .recoverRequest(id: 1, after: 2),
            .recoverReply(epoch: 3, id: 1, snapshot: snap, entries: entries),
            .forward(id: 5, owner: "2:17", command: .enqueue(payload: Array("x".utf8))),
            .forwardReply(id: 5, reply: Array("QUEUED 7 9".utf8)),
            .deliverParked([MailboxEntry(seq: 1, payload: Array("p".utf8), enqueuedAtMs: 5)]),
            .parkedDelivered(through: 1),
            .links(direct: [1, 3], heard: [1]),
        ]
        var out: [(name: String, bytes: [UInt8])] = []
        var stream: [UInt8] = []
        for (i, body) in bodies.enumerated() {
            let e = PeerEnvelope(from: 2, to: 1, lamport: UInt64(10 + i), epoch: 3, body: body)
            let framed = e.framed()
            out.append(("frame\(i)", framed))
            stream += framed
            if i == 2 {
                let relay = PeerEnvelope(from: 2, to: 3, lamport: 1, epoch: 3,
                                         body: .relay(id: 1, origin: 2, dest: 1, ttl: 3, inner: .init(e)))
                out.append(("relay", relay.framed()))
            }
        }
        out.append(("stream", stream))
        return out
    }

    static func configSeeds() -> [(name: String, bytes: [UInt8])] {
        let full = """
            [cluster]
            heartbeat_interval_ms = 100    ; leader -> followers
            leader_timeout_ms     = 500
            election_timeout_ms   = 300
            ack_timeout_ms        = 30000
            commit_timeout_ms     = 2000
            time_sync_interval_ms = 5000
            route_ttl             = 3
            max_payload_bytes     = 65536
            fsync                 = always
            max_connections       = 10000
            max_memory_mb         = 1024
            log_level             = info
            cluster_secret        = s3cret
            client_token          = t0ken
            auth_timeout_ms       = 10000
            idle_timeout_ms       = 0

            [node.1]
            peer   = 10.0.0.1:7100
            client = 10.0.0.1:7000
            listen_peer = 0.0.0.0:7100
            data_dir = /var/lib/meshq/1
            metrics = 10.0.0.1:9187

            [node.2]
            peer   = [::1]:7101
            client = [::1]:7001

            """
        let small = "[node.1]\npeer=127.0.0.1:7100\r\nclient=127.0.0.1:7000\n# comment\n"
        let bad = "[cluster]\nfsync = sometimes\nleader_timeout_ms = 50\n[node.0]\n[node.x]\npeer = nohost\n"
        return [("full", Array(full.utf8)), ("small", Array(small.utf8)), ("bad", Array(bad.utf8))]
    }

    static func storageSeeds() -> [(name: String, bytes: [UInt8])] {
        let task = QueuedTask(id: 1, lamport: 2, enqueuedAtMs: 3, payload: Array("job".utf8))
        let records: [LogRecord] = [
            .entry(LogEntry(index: 1, epoch: 1, lamport: 1, op: .noop)),
            .entry(LogEntry(index: 2, epoch: 1, lamport: 2, op: .enqueue(task))),
            .entry(LogEntry(index: 3, epoch: 1, lamport: 3, op: .ack(taskId: 1))),
            .entry(LogEntry(index: 4, epoch: 2, lamport: 4, op: .enqueueParked(task, from: 3, seq: 9))),
            .commit(3),
            .truncate(after: 3),
        ]
        var out: [(name: String, bytes: [UInt8])] = records.enumerated().map { ("record\($0)", $1.encoded()) }
        let snap = QueueSnapshot(lastIndex: 4, lastEpoch: 2, lamport: 4, highestTaskId: 1, tasks: [task],
                                 parkedApplied: [3: 9])
        out.append(("snapshot", snap.encoded()))
        // A log file: one plain frame, then two batches behind markers
        // (LogFrames' layout: [len][crc32c][body]; [0xFFFFFFFF][crc32c][batch length]).
        func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        func frame(_ body: [UInt8]) -> [UInt8] { le32(UInt32(body.count)) + le32(CRC32C.checksum(body)) + body }
        var file = frame(records[0].encoded())
        for batch in [records[1...3], records[4...5]] {
            let frames = batch.flatMap { frame($0.encoded()) }
            let length = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(frames.count) >> (8 * $0)) }
            file += le32(0xFFFF_FFFF) + le32(CRC32C.checksum(length)) + length + frames
        }
        out.append(("logfile", file))
        var torn = file
        torn.removeLast(5)
        out.append(("logfile-torn", torn))
        return out
    }
}
