// NodeBoot: opening a node's data_dir and rebuilding its NodeCore from what
// is durable: the log (snapshot and records), the vote, the Lamport floor and
// the mailbox. meshqd does it at start, and again in-process when a full disk
// halted the node and space came back (the halted core's memory was ahead of
// its disk, so it is replaced, exactly as a restart would).
// A corrupt log (valid writes after a bad record) is set aside in a cluster
// and the node starts catching up (it votes again once it holds a leader's
// log); a single node refuses to start unless --repair. A cluster node whose
// data_dir holds nothing (new, or wiped: it cannot tell) starts catching up
// too, until its peers' logs show the cluster new (see Rejoin). Invariant: the core
// starts from durable state only, its Lamport clock at or above the stored
// floor, and catching up whenever the marker says so.
import Foundation
import MeshQCore
import MeshQStorage

public enum NodeBoot {
    public enum Outcome {
        case ready(NodeStore, NodeCore)
        /// Refused with this exit status (the reason is logged).
        case refused(Int32)
    }

    public static func open(config: MeshQConfig, me: NodeConfig, repair: Bool, logger: Logger,
                     environment: [String: String]) throws -> Outcome {
        let node = "\(me.id)"
        let store = try NodeStore(directory: me.dataDir, fsync: config.cluster.fsync == .always)
        store.onDiskError = { DiskErrorReport.log($0, logger: logger, node: node) }
        #if MESHQ_TESTING
        // Test-only fault switch, compiled only with -D MESHQ_TESTING (`make test`).
        if let spec = environment["MESHQ_TEST_DISK_FAULT"] {
            guard let f = DiskFaults.parse(spec) else { throw NodeStore.CorruptData(description: "MESHQ_TEST_DISK_FAULT: bad spec '\(spec)'") }
            store.faults = f
            logger.log(.warn, "test_fault_disk", [("node", node), ("fault", spec)])
        }
        #endif
        let cluster = config.nodes.count > 1
        var recovered = try store.recover()
        if let c = recovered.corruption {
            if cluster {
                // The other nodes hold what this one lost: keep what is
                // readable and catch up from the leader, not voting until
                // then (the marker goes first, so a restart still knows).
                try store.markRejoining(reason: "log_corrupt_at_\(c.offset)")
                let aside = try store.repairLog()
                DiskErrorReport.rejoining(c, aside: aside, logger: logger, node: node)
            } else {
                guard repair else { return .refused(DiskErrorReport.refuse(c, logger: logger, node: node, dataDir: me.dataDir)) }
                let aside = try store.repairLog()
                DiskErrorReport.repaired(c, aside: aside, logger: logger, node: node)
            }
        }
        let vote = try store.loadVote()
        let lamportFloor = try store.loadLamportFloor()
        // In a cluster the vote file is created with the data_dir (before
        // the Lamport floor is first written), so a floor without a vote
        // file means the vote was lost, and "never voted" could be a lie.
        if cluster && !store.voteFileExists {
            guard lamportFloor == 0 else { return .refused(DiskErrorReport.voteMissing(logger: logger, node: node, dataDir: me.dataDir)) }
            try store.persistVote(voted: 0, promised: 0)
        }
        let wallMicros = UInt64(max(0, Date().timeIntervalSince1970 * 1_000_000))
        let m = try store.recoverMailbox(wallMicros: wallMicros)
        if let c = m.corruption {
            guard repair else { return .refused(DiskErrorReport.refuse(c, logger: logger, node: node, dataDir: me.dataDir)) }
            let aside = try store.repairMailbox()
            DiskErrorReport.repaired(c, aside: aside, logger: logger, node: node)
        }
        if let moved = recovered.discardedSnapshot {
            logger.log(.warn, "snapshot_discarded", [("node", node), ("moved_to", moved),
                                                     ("reason", "checksum mismatch; the previous generation holds the same state")])
        }
        if recovered.droppedTailBytes > 0 {
            logger.log(.warn, "log_torn_tail", [("node", node), ("dropped_bytes", "\(recovered.droppedTailBytes)")])
        }
        // The clock starts at the stored floor: above every stamp handed out
        // before, even those the log does not hold. A snapshot at index 0
        // with no tasks is the empty state, so one stands in when there is none.
        if lamportFloor > 0 {
            if recovered.snapshot != nil {
                recovered.snapshot!.lamport = max(recovered.snapshot!.lamport, lamportFloor)
            } else {
                recovered.snapshot = QueueSnapshot(lastIndex: 0, lastEpoch: 0, lamport: lamportFloor, highestTaskId: 0, tasks: [])
            }
        }
        let rejoining = NodeCore.startsRejoining(members: config.nodes.count, marked: store.rejoiningMarked,
                                                 snapshot: recovered.snapshot, records: recovered.records,
                                                 votedEpoch: vote.voted, promisedEpoch: vote.promised)
        // Durable before anything is written: a restart while catching up still knows.
        if rejoining && !store.rejoiningMarked { try store.markRejoining(reason: "data_dir_empty") }
        let core = NodeCore(nodeId: me.id, memberIds: config.nodes.map(\.id), settings: config.cluster,
                            snapshot: recovered.snapshot, records: recovered.records, votedEpoch: vote.voted,
                            promisedEpoch: vote.promised, relayIdBase: UInt64.random(in: 1...(UInt64.max / 2)),
                            mailbox: m.mailbox, rejoining: rejoining)
        #if MESHQ_TESTING
        // Test-only: how many committed entries stay in memory for catch-up
        // (fewer makes a lagging follower get a snapshot sooner).
        if let w = environment["MESHQ_TEST_LOG_WINDOW"].flatMap({ Int($0) }), w > 0 {
            core.logWindow = w
            logger.log(.warn, "test_log_window", [("node", node), ("entries", "\(w)")])
        }
        #endif
        // The Lamport floor: written now, before any stamp leaves.
        try store.advanceLamportFloor(clock: core.clock.time)
        return .ready(store, core)
    }
}
