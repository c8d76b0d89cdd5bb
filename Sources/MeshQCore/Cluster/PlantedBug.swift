// PlantedBug: deliberate faults the simulator's tests switch on (through
// @testable import only) to prove that each invariant check can fail. The
// switches exist only in builds with -D MESHQ_TESTING (`make test`, `make
// sim`); elsewhere every check of them is the constant `false`, so release
// binaries carry no way to plant anything.

enum PlantedBug: Hashable, Sendable {
    /// BullyElection votes for every candidate of an epoch (invariant 1).
    case voteTwicePerEpoch
    /// NodeCore ignores the Lamport stamp of received messages (invariant 5).
    case skipLamportMerge
    /// BullyElection never lets a higher node take over from a lower leader (liveness).
    case noBullyTakeover
    /// A new leader serves from its own log without adopting its best voter's (invariant 2).
    case skipRecovery
    /// A committed ACK leaves the task in the queue (invariant 3).
    case ackNotApplied
    /// Ricart-Agrawala replies at once even from inside the section (invariant 4).
    case mutexNeverDefers
    /// A parked task is applied on every delivery, duplicates included (invariant 6).
    case parkedAppliedTwice
    /// A leader keeps serving DEQUEUE from local state without knowing a
    /// majority still hears it (the task-after-ACK check).
    case leaseNeverExpires
    /// A follower acts on an ABORT whatever its epoch and round (log agreement).
    case abortIgnoresEpoch
    /// A follower accepts PREPARE from an epoch older than it promised (log agreement).
    case prepareWithoutPromise
    /// A new leader recovers from the voter with the highest last index,
    /// ignoring the epoch of that entry (invariant 2).
    case recoveryByIndexOnly
    /// Installing a snapshot drops the log's suffix even when it matches.
    case snapshotDropsSuffix
    /// The failure detector believes the transport: a peer is alive while its
    /// connection is open, however silent (liveness under freezes and cuts).
    case trustTransport
    /// A node whose log was found corrupt (records it wrote, and may have
    /// acknowledged, cut away) votes at once, as after a torn tail, instead
    /// of catching up first (invariant 2: an OK'd task is lost). Only where
    /// records remain: a log cut to nothing is `emptyLogVotesAtOnce`'s.
    case corruptionAsTornTail
    /// A node that starts with an empty log (a wiped data_dir) votes at once,
    /// as a new node would, instead of catching up first (invariant 2).
    case emptyLogVotesAtOnce
}
