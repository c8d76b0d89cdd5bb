// ClusterSimulator's options and profiles: rates of the network's faults,
// the fault schedule, the disks' faults, the client load, and the scripted
// freeze; and the Violation a failed run reports (with the seed to replay).
// Invariant: a profile is plain data; the same options and seed give the
// same run.
@testable import MeshQCore

extension ClusterSimulator {
    struct Options {
        var nodes = 3
        var faultPhaseMs: Int64 = 8_000
        var settleMs: Int64 = 6_000
        var stepMs: Int64 = 5
        var dropRate = 0.05
        var duplicateRate = 0.02
        var maxDelayMs = 25
        /// A share of messages arrive 1-3 s late.
        var lateRate = 0.01
        /// Time between two faults.
        var faultEveryMs = 100...800
        /// Faults include pauses of 0.3-5 s (a frozen process).
        var pauses = true
        /// Instead of random faults: one node frozen for a while (the leader
        /// when `node` is nil) on an otherwise healthy network, and the
        /// availability check that comes with it (`FrozenNode`).
        var frozen: FrozenNode?
        /// Mean time between client operations.
        var clientOpEveryMs = 20
        var plantedBugs: Set<PlantedBug> = []
        /// Committed entries each node keeps in memory: small, so followers
        /// behind it catch up by snapshot in every run.
        var logWindow = 64
        /// Disk faults (fault phase only): per write, a failed fsync or a
        /// full disk; per boot, a corrupt record.
        var fsyncErrorRate = 0.002
        var diskFullRate = 0.002
        var corruptionAtBootRate = 0.2
        /// Per boot (when not corrupt): the replicated state is gone.
        var wipeAtBootRate = 0.05
        /// Snapshots and recovery replies past this many bytes go as chunks:
        /// small, so the chunked transfers (meant for GiB-sized state) run
        /// in every seed. Not smaller: a snapshot of the protocol-2 state
        /// (tens of KB) in 256-byte chunks, four in flight, each drop costing
        /// a 200 ms retransmit, took 3-4 s, and a wiped node caught up twice
        /// could not finish within the 6 s settle (seeds 1925, 11076).
        var chunkBytes = 1024
        /// Check 10 (no vote while rejoining); off to see whether the
        /// data checks alone catch a node that votes too early.
        var checkRejoinVotes = true
        /// The protocol-2 clients and checks 12-16 (SimProtocolTwo.swift);
        /// off, a seed runs exactly as it did before they existed.
        var protocolTwo = true
    }

    /// Disks that lose data often: most boots find a record corrupt.
    static func corruptionOptions() -> Options {
        var o = Options()
        o.corruptionAtBootRate = 0.8
        return o
    }

    /// Disks that are replaced: many boots find the data_dir empty.
    static func wipedOptions() -> Options {
        var o = Options()
        o.corruptionAtBootRate = 0
        o.wipeAtBootRate = 0.5
        return o
    }

    /// A scripted freeze: availability must survive it. Every client command
    /// sent to a node that is not frozen, from `settleMs` after the freeze
    /// until the thaw, gets an answer that is not an error within `answerMs`.
    struct FrozenNode {
        var node: Int?
        var from: Int64 = 1_500
        var forMs: Int64 = 6_000
        var settleMs: Int64 = 1_000
        var answerMs: Int64 = 1_500
    }


    /// More of everything: late messages, drops, faults twice as often.
    static func hostileOptions() -> Options {
        var o = Options()
        o.lateRate = 0.05
        o.dropRate = 0.1
        o.duplicateRate = 0.05
        o.maxDelayMs = 60
        o.faultEveryMs = 50...400
        return o
    }

    /// Freeze `node` (nil: the leader) on a network that loses nothing.
    static func frozenOptions(_ node: Int?) -> Options {
        var o = Options()
        o.frozen = FrozenNode(node: node)
        o.dropRate = 0
        o.duplicateRate = 0
        o.lateRate = 0
        o.fsyncErrorRate = 0
        o.diskFullRate = 0
        o.corruptionAtBootRate = 0
        o.wipeAtBootRate = 0
        o.faultPhaseMs = 8_000
        return o
    }

    struct Violation: Error, CustomStringConvertible {
        let seed: UInt64
        let what: String
        let trace: [String]
        var description: String {
            "seed \(seed): \(what)\nreplay: MESHQ_SIM_SEED=\(seed) swift test --filter SimulationTests\nlast events:\n  "
                + trace.joined(separator: "\n  ")
        }
    }
}
