// NodeCore's catch-up of any size: a snapshot for a follower, or a recovery
// reply for a new leader, that does not fit one chunk goes as a chunked
// transfer (ChunkedTransfer): a window of chunks in flight, the next sent as
// the receiver acknowledges. The leader's snapshot transfers ride on the
// follower's replication Progress (LeaderReplication); a voter's recovery
// reply is pulled by the recovering leader's acknowledgements, and a
// repeated request for the same state reuses the blob already cut.
// Invariant: a receiver installs or adopts only a whole transfer, checked
// against what its chunks announced (kind, epoch, id, index, size), from
// the node it expects (the leader it accepts, the voter it asked); a
// partial one is dropped when a newer transfer or epoch starts.

/// The catch-up transfers a node takes part in besides the leader's
/// per-follower ones (those live in `LeaderReplication`).
struct CatchUpTransfers {
    var chunkBytes = ChunkLimits.chunkBytes
    var window = ChunkLimits.window
    /// Following: the snapshot being received from a leader.
    var snapshotIn = ChunkAssembler()
    /// Recovering as a new leader: the best voter's reply being received.
    var recoveryIn = ChunkAssembler()
    /// Voting: the reply being sent to a recovering leader, and the state it
    /// was cut from (a request for the same state reuses it).
    var recoveryOut: (key: RecoveryKey, sender: ChunkSender)?

    struct RecoveryKey: Equatable {
        var to: Int
        var epoch: UInt64
        var after: UInt64
        var position: LogPosition
        var commit: UInt64
    }
}

extension NodeCore {
    /// Leader: sends follower `id` the snapshot reserved for it, in one
    /// frame when small, else as a transfer encoded as it goes.
    func sendSnapshot(to id: Int) {
        let snap = committedSnapshot()
        let source = ChunkSource.snapshot(snap)
        emit(.debug, "sync", [("node", "\(nodeId)"), ("peer", "\(id)"), ("mode", "snapshot"),
                              ("index", "\(snap.lastIndex)"), ("tasks", "\(snap.tasks.count)"), ("bytes", "\(source.count)")])
        guard source.count > transfers.chunkBytes else {
            sendPeer(to: id, .snapshot(snap))
            return
        }
        guard let leader else { return }
        let chunks = leader.replication.startTransfer(to: id, epoch: epoch, index: snap.lastIndex, source: source,
                                                      chunkBytes: transfers.chunkBytes, window: transfers.window)
        emit(.info, "snapshot_transfer", [("node", "\(nodeId)"), ("peer", "\(id)"), ("index", "\(snap.lastIndex)"),
                                         ("bytes", "\(source.count)"), ("tasks", "\(snap.tasks.count)")])
        for c in chunks { sendPeer(to: id, .chunk(c)) }
    }

    /// Leader: the chunks of a transfer in flight to `id` that may go now.
    /// False when no transfer is in flight to it.
    func sendTransferChunks(to id: Int) -> Bool {
        guard let leader, leader.replication.transfers[id] != nil else { return false }
        for c in leader.replication.pendingChunks(to: id) { sendPeer(to: id, .chunk(c)) }
        return true
    }

    func receiveChunk(_ c: Chunk, from: Int, epoch e: UInt64, now: Int64) {
        switch c.kind {
        case .snapshot: receiveSnapshotChunk(c, from: from, epoch: e, now: now)
        case .recovery: receiveRecoveryChunk(c, from: from, now: now)
        }
    }

    func receiveChunkAck(kind: Chunk.Kind, epoch e: UInt64, transfer: UInt64, received: UInt64, from: Int, now: Int64) {
        switch kind {
        case .snapshot:
            guard let leader, e == epoch else { return }
            let chunks = leader.replication.chunkAcknowledged(by: from, transfer: transfer, received: received, now: now)
            for c in chunks { sendPeer(to: from, .chunk(c)) }
        case .recovery:
            guard var out = transfers.recoveryOut, out.key.to == from, out.key.epoch == e,
                  out.sender.transfer == transfer else { return }
            out.sender.acknowledged(received: received)
            var chunks = out.sender.next()
            // No progress and the window full: what is in flight was lost
            // (the recovering leader repeats its count when it stalls).
            if chunks.isEmpty && !out.sender.done {
                out.sender.rewind()
                chunks = out.sender.next()
            }
            transfers.recoveryOut = out.sender.done ? nil : out
            for c in chunks { sendPeer(to: from, .chunk(c)) }
        }
    }

    /// Follower: a piece of the leader's snapshot. Only a leader we accept
    /// (its epoch is at least the one we promised) is heard; the whole
    /// snapshot, once assembled and consistent with its chunks, is installed
    /// as if it had come in one frame.
    func receiveSnapshotChunk(_ c: Chunk, from: Int, epoch e: UInt64, now: Int64) {
        guard role != .leader, c.epoch == e, fence.accept(epoch: e) else { return }
        guard let out = transfers.snapshotIn.accept(c, from: from) else { return }
        if out.alreadyComplete && unsyncedPersists == 0 && matched.epoch == e && matched.through >= c.index {
            // Installed and durable, and the leader still asks: it missed our answer.
            sendPeer(to: from, .replicateAck(round: 0, matched: true, index: max(c.index, commitIndex)))
            return
        }
        sendPeer(to: from, .chunkAck(kind: .snapshot, epoch: e, transfer: c.transfer, received: out.received))
        guard let blob = out.blob else { return }
        guard let snap = QueueSnapshot.decode(blob), snap.lastIndex == c.index else {
            emit(.warn, "snapshot_transfer_refused", [("node", "\(nodeId)"), ("from", "\(from)"),
                                                     ("index", "\(c.index)"), ("bytes", "\(blob.count)")])
            return
        }
        receiveSnapshot(snap, encoded: blob, from: from, epoch: e, now: now)
    }

    /// Recovering leader: a piece of the best voter's reply to our latest
    /// request. Each piece renews the recovery's deadline (a large reply
    /// takes longer than commit_timeout_ms, but keeps moving); the whole
    /// reply is taken as if it had come in one frame.
    func receiveRecoveryChunk(_ c: Chunk, from: Int, now: Int64) {
        guard let leader, var r = leader.recovering, r.from == from, c.epoch == epoch, c.transfer == r.request,
              let out = transfers.recoveryIn.accept(c, from: from) else { return }
        sendPeer(to: from, .chunkAck(kind: .recovery, epoch: c.epoch, transfer: c.transfer, received: out.received))
        r.deadline = max(r.deadline, now + Int64(settings.commitTimeoutMs))
        r.nextAsk = max(r.nextAsk, now + retransmitMs)
        leader.phase = .recovering(r)
        guard let blob = out.blob else { return }
        guard let reply = PeerEnvelope.decodeRecoveryBlob(blob) else {
            emit(.warn, "recovery_reply_refused", [("node", "\(nodeId)"), ("epoch", "\(epoch)"), ("from", "\(from)"),
                                                  ("reason", "undecodable"), ("bytes", "\(blob.count)")])
            return
        }
        receiveRecovery(from: from, epoch: c.epoch, id: c.transfer, snapshot: reply.snapshot,
                        entries: reply.entries, now: now)
    }

    /// Voter: answers a recovering leader with `reply()` (built only when
    /// the same state was not cut for it already), in one frame when small.
    func sendRecoveryReply(to: Int, epoch e: UInt64, id: UInt64, after: UInt64,
                           reply: () -> (snapshot: QueueSnapshot?, entries: [LogEntry])) {
        let key = CatchUpTransfers.RecoveryKey(to: to, epoch: e, after: after, position: log.position, commit: commitIndex)
        let blob: [UInt8]
        if let out = transfers.recoveryOut, out.key == key, let b = out.sender.source.wholeBlob {
            blob = b
        } else {
            let r = reply()
            blob = PeerEnvelope.recoveryBlob(snapshot: r.snapshot, entries: r.entries)
            guard blob.count > transfers.chunkBytes else {
                transfers.recoveryOut = nil
                sendPeer(to: to, .recoverReply(epoch: e, id: id, snapshot: r.snapshot, entries: r.entries))
                return
            }
            emit(.info, "recovery_transfer", [("node", "\(nodeId)"), ("to", "\(to)"), ("epoch", "\(e)"),
                                             ("after", "\(after)"), ("bytes", "\(blob.count)")])
        }
        var sender = ChunkSender(kind: .recovery, epoch: e, transfer: id, index: after, blob: blob,
                                 chunkBytes: transfers.chunkBytes, window: transfers.window)
        let chunks = sender.next()
        transfers.recoveryOut = (key, sender)
        for c in chunks { sendPeer(to: to, .chunk(c)) }
    }
}
